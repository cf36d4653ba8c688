package signature

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"testing"
	"time"
)

// Known vectors, none computed by this package:
//   - GitHub's documented example ("Validating webhook deliveries"):
//     secret "It's a Secret to Everybody", payload "Hello, World!".
//   - The Standard Webhooks specification's test vector (also used by its
//     reference libraries).
//   - Stripe publishes no secret with its examples: this vector was
//     computed with `printf '%s' '1700000000.<body>' | openssl dgst
//     -sha256 -hmac whsec_test_secret`, the scheme of Stripe's "verify
//     manually" guide.
//   - HMAC (base64, Shopify-style): `openssl dgst -sha256 -hmac shpss_key
//     -binary | base64`.
const (
	githubSecret = "It's a Secret to Everybody"
	githubBody   = "Hello, World!"
	githubHeader = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

	standardSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	standardID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	standardTS     = "1614265330"
	standardBody   = `{"test": 2432232314}`
	standardSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

	stripeSecret = "whsec_test_secret"
	stripeBody   = `{"id":"evt_1","type":"charge.succeeded"}`
	stripeHeader = "t=1700000000,v1=c0475716eb2200f1fe97fcf35a3c05d1fd4f8ba9a07a596730c8d18bb87c0672,v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"

	hmacSecret = "shpss_key"
	hmacBody   = `{"id":1}`
	hmacValue  = "AzXcSZoO4gzFAp8rWGt/yN2Z1WkbuayBqRdevu2sGfI="
)

func keys(s ...string) [][]byte {
	var out [][]byte
	for _, k := range s {
		out = append(out, []byte(k))
	}
	return out
}

func TestGitHub(t *testing.T) {
	for _, tc := range []struct {
		name    string
		secrets [][]byte
		body    string
		header  string
		want    error
	}{
		{"documented example", keys(githubSecret), githubBody, githubHeader, nil},
		{"during a secret roll", keys("new-secret", githubSecret), githubBody, githubHeader, nil},
		{"tampered body", keys(githubSecret), "Hello, World?", githubHeader, ErrMismatch},
		{"wrong secret", keys("It's no secret"), githubBody, githubHeader, ErrMismatch},
		{"missing", keys(githubSecret), githubBody, "", ErrMissing},
		{"sha1 header", keys(githubSecret), githubBody, "sha1=0123", ErrMalformed},
		{"short", keys(githubSecret), githubBody, "sha256=757107ea", ErrMalformed},
		{"no secret", nil, githubBody, githubHeader, ErrNoSecret},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := GitHub(tc.secrets, []byte(tc.body), tc.header); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestStandard(t *testing.T) {
	key, err := StandardKey(standardSecret)
	if err != nil {
		t.Fatal(err)
	}
	signedAt := time.Unix(1614265330, 0)
	for _, tc := range []struct {
		name              string
		id, ts, sig, body string
		now               time.Time
		want              error
	}{
		{"specification vector", standardID, standardTS, standardSig, standardBody, signedAt, nil},
		{"several signatures", standardID, standardTS, "v1,bm90IGl0 v1a,xyz " + standardSig, standardBody, signedAt.Add(time.Minute), nil},
		{"altered body", standardID, standardTS, standardSig, `{"test": 2432232315}`, signedAt, ErrMismatch},
		{"another id", "msg_other", standardTS, standardSig, standardBody, signedAt, ErrMismatch},
		{"replayed later", standardID, standardTS, standardSig, standardBody, signedAt.Add(6 * time.Minute), ErrStale},
		{"from the future", standardID, standardTS, standardSig, standardBody, signedAt.Add(-6 * time.Minute), ErrStale},
		{"timestamp changed", standardID, "1614265331", standardSig, standardBody, signedAt, ErrMismatch},
		{"missing id", "", standardTS, standardSig, standardBody, signedAt, ErrMissing},
		{"bad timestamp", standardID, "yesterday", standardSig, standardBody, signedAt, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Standard([][]byte{key}, []byte(tc.body), tc.id, tc.ts, tc.sig, tc.now, 5*time.Minute)
			if !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := StandardKey("whsec_not base64!"); err == nil {
		t.Error("a bad secret was accepted")
	}
}

func TestStripe(t *testing.T) {
	signedAt := time.Unix(1700000000, 0)
	for _, tc := range []struct {
		name    string
		secrets [][]byte
		body    string
		header  string
		now     time.Time
		want    error
	}{
		{"openssl vector", keys(stripeSecret), stripeBody, stripeHeader, signedAt.Add(time.Minute), nil},
		{"rolled secret, two v1", keys(stripeSecret), stripeBody, "t=1700000000,v1=00," + stripeHeader[len("t=1700000000,"):], signedAt, nil},
		{"tampered", keys(stripeSecret), `{"id":"evt_2","type":"charge.succeeded"}`, stripeHeader, signedAt, ErrMismatch},
		{"replayed after the tolerance", keys(stripeSecret), stripeBody, stripeHeader, signedAt.Add(10 * time.Minute), ErrStale},
		{"timestamp moved", keys(stripeSecret), stripeBody, "t=1700000100,v1=c0475716eb2200f1fe97fcf35a3c05d1fd4f8ba9a07a596730c8d18bb87c0672", signedAt.Add(100 * time.Second), ErrMismatch},
		{"no v1", keys(stripeSecret), stripeBody, "t=1700000000,v0=abcd", signedAt, ErrMalformed},
		{"missing", keys(stripeSecret), stripeBody, "", signedAt, ErrMissing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Stripe(tc.secrets, []byte(tc.body), tc.header, tc.now, 5*time.Minute); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestHMAC(t *testing.T) {
	if err := HMAC(keys(hmacSecret), []byte(hmacBody), hmacValue, "", "base64"); err != nil {
		t.Errorf("base64 vector: %v", err)
	}
	if err := HMAC(keys(githubSecret), []byte(githubBody), githubHeader, "sha256=", "hex"); err != nil {
		t.Errorf("hex with prefix: %v", err)
	}
	if err := HMAC(keys(hmacSecret), []byte(hmacBody+" "), hmacValue, "", "base64"); !errors.Is(err, ErrMismatch) {
		t.Errorf("tampered: %v", err)
	}
	if err := HMAC(keys(hmacSecret), []byte(hmacBody), hmacValue, "sha256=", "base64"); !errors.Is(err, ErrMalformed) {
		t.Errorf("missing prefix: %v", err)
	}
}

// BenchmarkVerify is the signature check's cost per delivery (a 2 KiB
// body), the part of webhook handling that is not I/O.
func BenchmarkVerify(b *testing.B) {
	body := make([]byte, 2048)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	now := time.Unix(1700000000, 0)
	key, _ := StandardKey(standardSecret)
	gh := "sha256=" + hexMAC([]byte(githubSecret), body)
	st := "t=1700000000,v1=" + hexMAC([]byte(stripeSecret), []byte("1700000000."), body)
	sw := "v1," + b64MAC(key, []byte("msg_1.1700000000."), body)
	b.Run("github", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if err := GitHub(keys(githubSecret), body, gh); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stripe", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if err := Stripe(keys(stripeSecret), body, st, now, 5*time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("standard", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if err := Standard([][]byte{key}, body, "msg_1", "1700000000", sw, now, 5*time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func hexMAC(key []byte, parts ...[]byte) string { return hex.EncodeToString(mac(key, parts...)) }

func b64MAC(key []byte, parts ...[]byte) string {
	return base64.StdEncoding.EncodeToString(mac(key, parts...))
}
