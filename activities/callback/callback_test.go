package callback

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gateflow/gateflow/activities"
)

func TestTokenRoundTrip(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000)
	key, old, other := []byte("current-key"), []byte("previous-key"), []byte("someone-else")
	claims := Claims{Tenant: "acme", WorkflowID: "acme/o-1", StepID: "label", Target: "shipping", Attempt: 2,
		TaskToken: []byte{1, 2, 3}, IssuedAt: now.UnixMilli(), Expires: now.Add(time.Hour).UnixMilli()}
	tok, err := Mint(key, claims)
	if err != nil {
		t.Fatal(err)
	}
	byOld, _ := Mint(old, claims)
	foreign, _ := Mint(other, claims)
	crossTenant := claims
	crossTenant.Tenant = "evil"
	crossed, _ := Mint(key, crossTenant)
	tampered := []byte(tok)
	tampered[10] ^= 1

	for _, tc := range []struct {
		name  string
		token string
		keys  [][]byte
		at    time.Time
		want  error
	}{
		{"valid", tok, [][]byte{key}, now, nil},
		{"signed by a previous key", byOld, [][]byte{key, old}, now, nil},
		{"unknown key", foreign, [][]byte{key, old}, now, ErrInvalidToken},
		{"tampered claims", string(tampered), [][]byte{key}, now, ErrInvalidToken},
		{"truncated", tok[:len(tok)-3], [][]byte{key}, now, ErrInvalidToken},
		{"no version", strings.TrimPrefix(tok, "v1."), [][]byte{key}, now, ErrInvalidToken},
		{"another tenant's workflow", crossed, [][]byte{key}, now, ErrInvalidToken},
		{"expired", tok, [][]byte{key}, now.Add(time.Hour), ErrExpired},
		{"no key configured", tok, nil, now, ErrNotConfigured},
		{"garbage", "v1.!!!.###", [][]byte{key}, now, ErrInvalidToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Verify(tc.keys, tc.token, tc.at)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if err == nil && (got.Tenant != "acme" || got.StepID != "label" || got.Attempt != 2 || string(got.TaskToken) != "\x01\x02\x03") {
				t.Errorf("claims %+v", got)
			}
		})
	}
	if strings.Contains(tok, "current-key") {
		t.Error("the token holds the key")
	}
}

func TestIssuerURL(t *testing.T) {
	iss := NewIssuer(func() (Settings, error) {
		return Settings{BaseURL: "https://gw.example.com/", Keys: [][]byte{[]byte("k")}}, nil
	})
	iss.now = func() time.Time { return time.Unix(1_800_000_000, 0) }
	u, exp, err := iss.Issue(ticket())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u, "https://gw.example.com/v1/callbacks/v1.") || !exp.Equal(time.Unix(1_800_003_600, 0)) {
		t.Errorf("url %s expires %s", u, exp)
	}
	tok := strings.TrimPrefix(u, "https://gw.example.com/v1/callbacks/")
	if _, err := Verify([][]byte{[]byte("k")}, tok, time.Unix(1_800_000_001, 0)); err != nil {
		t.Errorf("issued token does not verify: %v", err)
	}
	none := NewIssuer(func() (Settings, error) { return Settings{}, nil })
	if _, _, err := none.Issue(ticket()); !errors.Is(err, ErrNotConfigured) {
		t.Errorf("without keys: %v", err)
	}
}

func ticket() activities.CallbackTicket {
	return activities.CallbackTicket{Tenant: "acme", WorkflowID: "acme/o-1", StepID: "label", Target: "shipping", Attempt: 1,
		TaskToken: []byte("task"), TTL: time.Hour}
}
