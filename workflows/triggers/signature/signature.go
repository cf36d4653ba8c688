// Package signature verifies the HMAC-SHA256 signatures of webhook
// deliveries in the schemes senders use:
//
//   - GitHub: X-Hub-Signature-256: sha256=<hex HMAC of the raw body>. No
//     timestamp: replays are caught by the delivery id (X-GitHub-Delivery).
//   - Stripe: Stripe-Signature: t=<unix>,v1=<hex HMAC of "<t>.<body>">
//     (several v1 during a secret roll), the timestamp within a tolerance.
//   - Standard Webhooks: webhook-id, webhook-timestamp and
//     webhook-signature: "v1,<base64 HMAC of "<id>.<timestamp>.<body>">"
//     (space-separated, several during a roll), the key being the base64
//     after "whsec_", the timestamp within a tolerance.
//   - HMAC: a configured header holding the hex or base64 HMAC of the raw
//     body, after an optional prefix (Shopify, Slack-like custom senders).
//
// Every comparison is constant-time (hmac.Equal); errors say what is
// wrong without quoting secrets or expected signatures.
package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Errors of verification; all mean "not from the sender" (401).
var (
	// ErrMissing: the signature (or timestamp) header is absent.
	ErrMissing = errors.New("signature missing")
	// ErrMalformed: a header cannot be parsed.
	ErrMalformed = errors.New("signature malformed")
	// ErrMismatch: no signature matches any secret.
	ErrMismatch = errors.New("signature does not match")
	// ErrStale: the signed timestamp is outside the tolerance (a replay,
	// or a clock far off).
	ErrStale = errors.New("signed timestamp outside the tolerance")
	// ErrNoSecret: no usable secret is configured.
	ErrNoSecret = errors.New("no secret configured")
)

// Header names of the schemes.
const (
	HeaderGitHub            = "X-Hub-Signature-256"
	HeaderGitHubDelivery    = "X-GitHub-Delivery"
	HeaderStripe            = "Stripe-Signature"
	HeaderStandardID        = "Webhook-Id"
	HeaderStandardTimestamp = "Webhook-Timestamp"
	HeaderStandardSignature = "Webhook-Signature"
	// DefaultHMACHeader is the header of the hmac scheme by default.
	DefaultHMACHeader = "X-Signature"
)

func mac(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// anyMatch reports whether sig equals the HMAC of parts under one of keys,
// comparing in constant time and checking every key (so the time taken
// does not tell which key matched).
func anyMatch(keys [][]byte, sig []byte, parts ...[]byte) bool {
	ok := false
	for _, k := range keys {
		if len(k) > 0 && hmac.Equal(mac(k, parts...), sig) {
			ok = true
		}
	}
	return ok
}

// GitHub verifies an X-Hub-Signature-256 value.
func GitHub(secrets [][]byte, body []byte, header string) error {
	if len(secrets) == 0 {
		return ErrNoSecret
	}
	if header == "" {
		return fmt.Errorf("%w: %s", ErrMissing, HeaderGitHub)
	}
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return fmt.Errorf("%w: %s must start with sha256=", ErrMalformed, HeaderGitHub)
	}
	sig, err := hex.DecodeString(hexSig)
	if err != nil || len(sig) != sha256.Size {
		return fmt.Errorf("%w: %s is not a hex SHA-256", ErrMalformed, HeaderGitHub)
	}
	if !anyMatch(secrets, sig, body) {
		return ErrMismatch
	}
	return nil
}

// Stripe verifies a Stripe-Signature value at now.
func Stripe(secrets [][]byte, body []byte, header string, now time.Time, tolerance time.Duration) error {
	if len(secrets) == 0 {
		return ErrNoSecret
	}
	if header == "" {
		return fmt.Errorf("%w: %s", ErrMissing, HeaderStripe)
	}
	var ts string
	var sigs [][]byte
	for _, item := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return fmt.Errorf("%w: %s", ErrMalformed, HeaderStripe)
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil && len(b) == sha256.Size {
				sigs = append(sigs, b)
			}
		}
	}
	if ts == "" || len(sigs) == 0 {
		return fmt.Errorf("%w: %s needs t= and v1=", ErrMalformed, HeaderStripe)
	}
	if err := fresh(ts, now, tolerance); err != nil {
		return err
	}
	ok := false
	for _, sig := range sigs {
		if anyMatch(secrets, sig, []byte(ts), []byte("."), body) {
			ok = true
		}
	}
	if !ok {
		return ErrMismatch
	}
	return nil
}

// StandardKey decodes a Standard Webhooks secret ("whsec_<base64>").
func StandardKey(secret string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("%w: a Standard Webhooks secret is whsec_ followed by base64", ErrNoSecret)
	}
	return b, nil
}

// Standard verifies the headers of Standard Webhooks at now; keys are
// decoded secrets (StandardKey).
func Standard(keys [][]byte, body []byte, id, timestamp, signatures string, now time.Time, tolerance time.Duration) error {
	if len(keys) == 0 {
		return ErrNoSecret
	}
	switch {
	case id == "":
		return fmt.Errorf("%w: %s", ErrMissing, HeaderStandardID)
	case timestamp == "":
		return fmt.Errorf("%w: %s", ErrMissing, HeaderStandardTimestamp)
	case signatures == "":
		return fmt.Errorf("%w: %s", ErrMissing, HeaderStandardSignature)
	}
	if err := fresh(timestamp, now, tolerance); err != nil {
		return err
	}
	ok := false
	for _, s := range strings.Fields(signatures) {
		v, sig64, found := strings.Cut(s, ",")
		if !found || v != "v1" {
			continue // other versions (v1a: asymmetric) are not ours to check
		}
		sig, err := base64.StdEncoding.DecodeString(sig64)
		if err != nil {
			continue
		}
		if anyMatch(keys, sig, []byte(id), []byte("."), []byte(timestamp), []byte("."), body) {
			ok = true
		}
	}
	if !ok {
		return ErrMismatch
	}
	return nil
}

// HMAC verifies a plain HMAC-SHA256 of the body: value is the header's
// content, prefix is stripped first, encoding is "hex" (default) or
// "base64".
func HMAC(secrets [][]byte, body []byte, value, prefix, encoding string) error {
	if len(secrets) == 0 {
		return ErrNoSecret
	}
	if value == "" {
		return ErrMissing
	}
	enc, ok := strings.CutPrefix(value, prefix)
	if !ok {
		return fmt.Errorf("%w: expected the prefix %q", ErrMalformed, prefix)
	}
	var sig []byte
	var err error
	if encoding == "base64" {
		sig, err = base64.StdEncoding.DecodeString(enc)
	} else {
		sig, err = hex.DecodeString(enc)
	}
	if err != nil || len(sig) != sha256.Size {
		return fmt.Errorf("%w: not a %s SHA-256", ErrMalformed, encoding)
	}
	if !anyMatch(secrets, sig, body) {
		return ErrMismatch
	}
	return nil
}

// fresh checks a Unix-seconds timestamp against now ± tolerance.
func fresh(ts string, now time.Time, tolerance time.Duration) error {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q", ErrMalformed, ts)
	}
	d := now.Sub(time.Unix(sec, 0))
	if d > tolerance || d < -tolerance {
		return ErrStale
	}
	return nil
}
