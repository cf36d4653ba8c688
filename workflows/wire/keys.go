package wire

import "time"

// API keys managed through the REST API (GET/POST /v1/keys): each tenant's
// keys live in its keys entity workflow as hashes and are replicated to
// every ingress; the keys file stays the operator's way and is listed
// beside them.

// Sources of a key.
const (
	KeySourceFile = "file"
	KeySourceAPI  = "api"
)

// APIKey describes a key, never its secret.
type APIKey struct {
	ID     string   `json:"id"`
	Tenant string   `json:"tenant"`
	Roles  []string `json:"roles"`
	User   string   `json:"user,omitempty"`
	// App names the group of keys the key belongs to (subscriptions may be
	// granted to an app rather than the whole tenant).
	App   string  `json:"app,omitempty"`
	Note  string  `json:"note,omitempty"`
	RPS   float64 `json:"rps,omitempty"`
	Burst int     `json:"burst,omitempty"`
	// Source is "file" (the keys file) or "api".
	Source     string     `json:"source"`
	CreatedAt  *time.Time `json:"created_at,omitempty"`
	CreatedBy  string     `json:"created_by,omitempty"`
	Disabled   bool       `json:"disabled,omitempty"`
	DisabledAt *time.Time `json:"disabled_at,omitempty"`
	DisabledBy string     `json:"disabled_by,omitempty"`
}

// APIKeys answers GET /v1/keys.
type APIKeys struct {
	Items []APIKey `json:"items"`
}

// CreateKeyRequest is the body of POST /v1/keys.
type CreateKeyRequest struct {
	Roles []string `json:"roles"`
	User  string   `json:"user,omitempty"`
	App   string   `json:"app,omitempty"`
	Note  string   `json:"note,omitempty"`
	RPS   float64  `json:"rps,omitempty"`
	Burst int      `json:"burst,omitempty"`
}

// CreatedKey answers POST /v1/keys: the key's description and, this once,
// the key itself.
type CreatedKey struct {
	APIKey
	Key string `json:"key"`
}

// DisableKeyRequest is the (optional) body of POST /v1/keys/{id}/disable.
type DisableKeyRequest struct {
	Reason string `json:"reason,omitempty"`
}
