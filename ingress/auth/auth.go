// Package auth holds the API keys of the ingress: their format, the keys
// file that stores them only as hashes, the store that authenticates bearer
// tokens and reloads the file on demand (SIGHUP), and the dev key of
// `gateflow dev`.
//
// A key is "gf_<id>_<secret>": the id (12 hex digits) is public and names
// the key in logs and call records; only the SHA-256 of the secret is
// stored. The secret has 256 bits of entropy, so a fast hash is enough (no
// password hashing), and it is compared in constant time.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Role is what a key may do.
type Role string

// Built-in roles. Keys may carry other roles too (e.g. "finance"), which
// approval steps can name as approvers.
const (
	RoleSubmitter Role = "submitter" // start and cancel orchestrations
	RoleApprover  Role = "approver"  // list and decide approvals
	RoleAnalyst   Role = "analyst"   // read call analytics
	RoleAdmin     Role = "admin"     // everything in the tenant, publish definitions
	// RoleModel lets a key call models (chat completions and prompt APIs)
	// without being able to start orchestrations: an application that only
	// needs the gateway gets no more than that.
	RoleModel Role = "model"
)

// BuiltinRoles lists the built-in roles in documentation order.
var BuiltinRoles = []Role{RoleSubmitter, RoleApprover, RoleAnalyst, RoleModel, RoleAdmin}

// ModelRoles may call the model endpoints (chat completions, prompt APIs,
// their MCP tools): submitters, who may start orchestrations whose steps
// call models anyway, and model-only keys.
var ModelRoles = []Role{RoleSubmitter, RoleModel}

// Principal is the caller a valid key stands for.
type Principal struct {
	KeyID  string
	Tenant string
	User   string
	Roles  []string
	// RPS and Burst override the default per-key rate limit when > 0.
	RPS   float64
	Burst int
}

// Has reports whether the principal holds role; admin holds every role.
func (p Principal) Has(role Role) bool {
	return slices.Contains(p.Roles, string(role)) || slices.Contains(p.Roles, string(RoleAdmin))
}

// HasAny reports whether the principal holds one of roles (any principal
// when roles is empty).
func (p Principal) HasAny(roles []Role) bool {
	if len(roles) == 0 {
		return true
	}
	for _, r := range roles {
		if p.Has(r) {
			return true
		}
	}
	return false
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal of an authenticated request.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Errors of Authenticate.
var (
	// ErrNoKey: no bearer token was given.
	ErrNoKey = errors.New("missing API key")
	// ErrBadKey: the token is not a valid, enabled key.
	ErrBadKey = errors.New("invalid API key")
)

// TokenPrefix starts every generated key.
const TokenPrefix = "gf_"

var (
	keyIDRe = regexp.MustCompile(`^[a-z0-9]{4,32}$`)
	roleRe  = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)
	userRe  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$`)
)

// ParseToken splits a bearer token into its key id and secret. Tokens not
// in the gf_<id>_<secret> form (e.g. a GATEFLOW_DEV_KEY chosen by hand) get
// an id derived from their hash and the whole token as secret.
func ParseToken(token string) (id, secret string) {
	if rest, ok := strings.CutPrefix(token, TokenPrefix); ok {
		if id, secret, ok := strings.Cut(rest, "_"); ok && keyIDRe.MatchString(id) && len(secret) >= 16 {
			return id, secret
		}
	}
	sum := sha256.Sum256([]byte(token))
	return "h" + hex.EncodeToString(sum[:6]), token
}

// HashSecret returns the stored form of a secret: "sha256:<hex>".
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func parseHash(h string) ([sha256.Size]byte, error) {
	var out [sha256.Size]byte
	hexed, ok := strings.CutPrefix(h, "sha256:")
	if !ok {
		return out, fmt.Errorf(`hash must look like "sha256:<64 hex digits>"`)
	}
	b, err := hex.DecodeString(hexed)
	if err != nil || len(b) != sha256.Size {
		return out, fmt.Errorf(`hash must look like "sha256:<64 hex digits>"`)
	}
	copy(out[:], b)
	return out, nil
}

// NewToken returns a fresh random key token.
func NewToken() (string, error) {
	id := make([]byte, 6)
	secret := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		return "", fmt.Errorf("random key id: %w", err)
	}
	if _, err := rand.Read(secret); err != nil {
		return "", fmt.Errorf("random key secret: %w", err)
	}
	// The secret alphabet avoids "_" so the token reads as three parts.
	s := strings.ReplaceAll(base64.RawURLEncoding.EncodeToString(secret), "_", "-")
	return TokenPrefix + hex.EncodeToString(id) + "_" + s, nil
}

// EntryFor returns the keys-file entry of token (its id and hash).
func EntryFor(token, tenant string, roles []string, user string) Key {
	id, secret := ParseToken(token)
	return Key{ID: id, Hash: HashSecret(secret), Tenant: tenant, Roles: roles, User: user}
}

// compare checks a secret against a stored digest in constant time.
func compare(secret string, want [sha256.Size]byte) bool {
	got := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}
