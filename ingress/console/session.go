package console

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// A session is the API key a user signed in with, sealed (AES-256-GCM) in
// an HttpOnly, SameSite=Strict cookie scoped to /console. The server keeps
// no session state besides the ids of sessions signed out before they
// expire, so any replica holding the same secret serves the user; the key
// never reaches the page's JavaScript, a URL or the browser's storage.
type session struct {
	ID  string `json:"sid"`
	Key string `json:"key"`
	// Exp is when the session ends (Unix seconds), whatever the cookie says.
	Exp int64 `json:"exp"`
}

// Errors of opening a session cookie. All of them mean "signed out".
var (
	errNoSession      = errors.New("no session")
	errBadSession     = errors.New("session cookie not valid")
	errExpiredSession = errors.New("session expired")
	errSignedOut      = errors.New("session signed out")
)

// sealer seals and opens session cookies and derives CSRF tokens.
type sealer struct {
	aead   cipher.AEAD
	macKey []byte
	now    func() time.Time

	mu      sync.Mutex
	revoked map[string]int64 // session id -> its expiry (Unix s)
}

// newSealer derives the cookie and CSRF keys from secret (at least 32
// bytes), each for its own purpose.
func newSealer(secret []byte, now func() time.Time) (*sealer, error) {
	if len(secret) < 32 {
		return nil, fmt.Errorf("console: the session secret must have at least 32 bytes, has %d", len(secret))
	}
	derive := func(purpose string) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte("gateflow console v1 " + purpose))
		return m.Sum(nil)
	}
	block, err := aes.NewCipher(derive("session cookie"))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead, macKey: derive("csrf token"), now: now, revoked: map[string]int64{}}, nil
}

// newSession starts a session for key lasting ttl.
func (s *sealer) newSession(key string, ttl time.Duration) session {
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	return session{ID: base64.RawURLEncoding.EncodeToString(id), Key: key, Exp: s.now().Add(ttl).Unix()}
}

// seal returns the cookie value of a session.
func (s *sealer) seal(ss session) (string, error) {
	plain, err := json.Marshal(ss)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, []byte(cookieAAD))), nil
}

// cookieAAD binds sealed values to their use.
const cookieAAD = "gateflow console session"

// open returns the session of a cookie value.
func (s *sealer) open(value string) (session, error) {
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(raw) < s.aead.NonceSize() {
		return session{}, errBadSession
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], []byte(cookieAAD))
	if err != nil {
		return session{}, errBadSession
	}
	var ss session
	if err := json.Unmarshal(plain, &ss); err != nil || ss.ID == "" || ss.Key == "" {
		return session{}, errBadSession
	}
	if s.now().Unix() >= ss.Exp {
		return session{}, errExpiredSession
	}
	s.mu.Lock()
	_, out := s.revoked[ss.ID]
	s.mu.Unlock()
	if out {
		return session{}, errSignedOut
	}
	return ss, nil
}

// revoke ends a session before its expiry on this replica (a copy of the
// cookie kept elsewhere stops working here at once, on other replicas when
// it expires; the cookie itself is cleared by sign-out).
func (s *sealer) revoke(ss session) {
	now := s.now().Unix()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, exp := range s.revoked {
		if exp <= now {
			delete(s.revoked, id)
		}
	}
	s.revoked[ss.ID] = ss.Exp
}

// csrf returns the session's CSRF token: pages send it back in
// X-CSRF-Token with every change, which a page of another site cannot
// read or guess.
func (s *sealer) csrf(ss session) string {
	m := hmac.New(sha256.New, s.macKey)
	m.Write([]byte(ss.ID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkCSRF reports whether token is the session's CSRF token.
func (s *sealer) checkCSRF(ss session, token string) bool {
	want := s.csrf(ss)
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(want)) == 1
}

// cookieName is the session cookie's name: with the __Secure- prefix when
// the cookie is Secure, so that a plain-HTTP page can never set it.
func cookieName(secure bool) string {
	if secure {
		return "__Secure-gateflow_console"
	}
	return "gateflow_console"
}

// sessionCookie returns the cookie that sets (value != "") or clears a
// session.
func sessionCookie(value string, secure bool, exp time.Time) *http.Cookie {
	c := &http.Cookie{
		Name: cookieName(secure), Value: value, Path: basePath,
		HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode,
	}
	if value == "" {
		c.MaxAge = -1
	} else {
		c.Expires = exp
	}
	return c
}

// sessionOf reads and opens the request's session cookie: the one named
// for the request's Secure mode, so that over TLS a cookie without Secure
// (which a plain-HTTP page could have planted) is never read.
func (s *sealer) sessionOf(r *http.Request, mode SecureMode) (session, error) {
	c, err := r.Cookie(cookieName(isSecure(r, mode)))
	if err != nil {
		return session{}, errNoSession
	}
	return s.open(c.Value)
}

// SecureMode says when the session cookie is marked Secure.
type SecureMode string

// Secure modes.
const (
	// SecureAuto marks it Secure when the request came over TLS, directly
	// or through a proxy that says so in X-Forwarded-Proto.
	SecureAuto SecureMode = "auto"
	// SecureAlways always marks it Secure (the console then works over
	// HTTPS only, except on localhost, which browsers treat as secure).
	SecureAlways SecureMode = "always"
	// SecureNever never does (plain HTTP behind a trusted network only).
	SecureNever SecureMode = "never"
)

// isSecure decides the Secure attribute for a request. Trusting
// X-Forwarded-Proto is safe here: it can only make the cookie stricter.
func isSecure(r *http.Request, mode SecureMode) bool {
	switch mode {
	case SecureAlways:
		return true
	case SecureNever:
		return false
	}
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}
