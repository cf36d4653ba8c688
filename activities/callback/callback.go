// Package callback implements the asynchronous completion of http steps.
//
// An http step with a callback block gets, from the HTTP activity, a
// one-time URL it hands to the service it calls (header
// Gateflow-Callback-Url): <public URL>/v1/callbacks/<token>. The service
// answers its call at once and POSTs the result to the URL later; the
// ingress verifies the token and completes the step's activity through
// Temporal's asynchronous activity completion. The token is
//
//	v1.<base64url(claims JSON)>.<base64url(HMAC-SHA256(key, "v1."+claims))>
//
// where the claims hold the tenant, the workflow and step, the activity
// attempt's Temporal task token and an expiry. It is signed with the
// callback signing key of gateflow.yaml (a secret reference, resolved at
// each use so that a rotated key applies at once; previous keys keep
// verifying tokens already handed out). Nothing in it is secret, and it
// can only complete that one attempt: once completed (or timed out, or
// retried), Temporal refuses the task token, so a second POST finds
// nothing.
package callback

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors of Verify and of the Completer. The ingress maps them to 401, 410
// and 404.
var (
	// ErrInvalidToken: the token is malformed or its signature does not
	// verify with any configured key.
	ErrInvalidToken = errors.New("invalid callback token")
	// ErrExpired: the token's expiry has passed.
	ErrExpired = errors.New("callback expired")
	// ErrNotFound: Temporal no longer has the attempt (already completed,
	// timed out, retried, or its orchestration closed).
	ErrNotFound = errors.New("callback not found")
	// ErrNotConfigured: no signing key is configured.
	ErrNotConfigured = errors.New("callbacks are not configured (gateflow.yaml callbacks.signing_key)")
)

// version prefixes every token.
const version = "v1"

// MaxTokenLength bounds a token accepted in a URL.
const MaxTokenLength = 4096

// Claims are what a token carries.
type Claims struct {
	Tenant     string `json:"t"`
	WorkflowID string `json:"w"`
	StepID     string `json:"s"`
	// Target is the service (or URL host) the step called, for records.
	Target  string `json:"g,omitempty"`
	Attempt int32  `json:"a"`
	// TaskToken is Temporal's token of the activity attempt.
	TaskToken []byte `json:"k"`
	// IssuedAt and Expires are Unix milliseconds.
	IssuedAt int64 `json:"i"`
	Expires  int64 `json:"e"`
	// Trigger is the run's trigger label, for the completion's record.
	Trigger string `json:"r,omitempty"`
}

// Mint signs claims with key.
func Mint(key []byte, c Claims) (string, error) {
	if len(key) == 0 {
		return "", ErrNotConfigured
	}
	raw, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("callback claims: %w", err)
	}
	body := version + "." + base64.RawURLEncoding.EncodeToString(raw)
	return body + "." + base64.RawURLEncoding.EncodeToString(sign(key, body)), nil
}

func sign(key []byte, body string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(body))
	return m.Sum(nil)
}

// Verify checks token against keys (any may have signed it) and its
// expiry at now, and returns its claims.
func Verify(keys [][]byte, token string, now time.Time) (Claims, error) {
	if len(keys) == 0 {
		return Claims{}, ErrNotConfigured
	}
	if len(token) > MaxTokenLength {
		return Claims{}, ErrInvalidToken
	}
	i := strings.LastIndexByte(token, '.')
	if i < 0 || !strings.HasPrefix(token, version+".") {
		return Claims{}, ErrInvalidToken
	}
	body, sig64 := token[:i], token[i+1:]
	sig, err := base64.RawURLEncoding.DecodeString(sig64)
	if err != nil {
		return Claims{}, ErrInvalidToken
	}
	ok := false
	for _, k := range keys {
		// hmac.Equal compares in constant time.
		if len(k) > 0 && hmac.Equal(sign(k, body), sig) {
			ok = true
		}
	}
	if !ok {
		return Claims{}, ErrInvalidToken
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(body, version+"."))
	if err != nil {
		return Claims{}, ErrInvalidToken
	}
	var c Claims
	if err := json.Unmarshal(raw, &c); err != nil || c.Tenant == "" || len(c.TaskToken) == 0 {
		return Claims{}, ErrInvalidToken
	}
	// Tenant-bound: the orchestration must be the tenant's own.
	if !strings.HasPrefix(c.WorkflowID, c.Tenant+"/") {
		return Claims{}, ErrInvalidToken
	}
	if now.UnixMilli() >= c.Expires {
		return c, ErrExpired
	}
	return c, nil
}

// Settings are the callback settings of the system configuration.
type Settings struct {
	// BaseURL is where services reach the ingress (its public URL).
	BaseURL string
	// Keys are the signing keys, resolved: the first signs new tokens,
	// all verify.
	Keys [][]byte
}

// Source returns the current settings; the worker and the ingress read
// them from the configuration at each use.
type Source func() (Settings, error)

// PathPrefix is the route of callbacks under the ingress.
const PathPrefix = "/v1/callbacks/"

// URL returns the callback URL of token.
func (s Settings) URL(token string) string {
	return strings.TrimRight(s.BaseURL, "/") + PathPrefix + token
}
