package activities

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// ErrUnknownService is returned (wrapped) by Services.Resolve for a name the
// registry does not hold.
var ErrUnknownService = errors.New("unknown service")

// ErrURLNotAllowed is returned (wrapped) by Services.AllowURL for a URL the
// tenant may not call.
var ErrURLNotAllowed = errors.New("url not allowed")

// Endpoint is a registered microservice as the HTTP activity needs it.
type Endpoint struct {
	// Name is the registry name, used as the call record's target.
	Name string
	// BaseURL is joined with the step's path.
	BaseURL string
	// Headers are sent with every call; values may hold secret references
	// (${env:NAME}, ${file:/path}) resolved at call time.
	Headers map[string]string
	// Timeout is the default timeout of one attempt; zero means the
	// activity's default.
	Timeout time.Duration
	// MaxResponseBytes caps a response body from this service; zero means
	// the activity's default.
	MaxResponseBytes int64
}

// Services resolves the targets of http steps. The worker wires it to the
// service registry; lookups happen at call time so that a registry reload
// (new base URL, rotated header) applies to the next attempt.
type Services interface {
	// Resolve returns the service registered under name for the tenant.
	Resolve(tenant, name string) (Endpoint, error)
	// AllowURL reports whether the tenant may call rawURL directly (an
	// http step with a url instead of a service): nil when allowed.
	AllowURL(tenant, rawURL string) error
}

// ResolveSecrets replaces the secret references in v: ${env:NAME} by the
// environment variable NAME and ${file:/path} by the content of the file
// (trailing newline removed). Errors name the reference, never a value.
func ResolveSecrets(v string) (string, error) {
	if !strings.Contains(v, "${") {
		return v, nil
	}
	var b strings.Builder
	rest := v
	for {
		i := strings.Index(rest, "${")
		if i < 0 {
			b.WriteString(rest)
			return b.String(), nil
		}
		j := strings.Index(rest[i:], "}")
		if j < 0 {
			b.WriteString(rest)
			return b.String(), nil
		}
		ref := rest[i+2 : i+j]
		kind, arg, ok := strings.Cut(ref, ":")
		if !ok || (kind != "env" && kind != "file") {
			// Not a secret reference; keep it literally.
			b.WriteString(rest[:i+j+1])
			rest = rest[i+j+1:]
			continue
		}
		b.WriteString(rest[:i])
		switch kind {
		case "env":
			val, found := os.LookupEnv(arg)
			if !found {
				return "", fmt.Errorf("secret ${env:%s}: variable not set", arg)
			}
			b.WriteString(val)
		case "file":
			data, err := os.ReadFile(arg)
			if err != nil {
				return "", fmt.Errorf("secret ${file:%s}: %w", arg, err)
			}
			b.WriteString(strings.TrimRight(string(data), "\r\n"))
		}
		rest = rest[i+j+1:]
	}
}
