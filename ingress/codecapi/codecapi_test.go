package codecapi_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"

	"github.com/gateflow/gateflow/ingress"
	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/auth"
	"github.com/gateflow/gateflow/ingress/codecapi"
	"github.com/gateflow/gateflow/ingress/internal/gwtest"
	"github.com/gateflow/gateflow/ingress/ratelimit"
	"github.com/gateflow/gateflow/workflows/payloadcodec"
)

var testKeys = map[string]struct {
	token, tenant string
	roles         []string
}{
	"ops-admin":     {"gf_c00000000001_opsadminsecretopsadminsecret01", "ops", []string{"admin"}},
	"ops-submitter": {"gf_c00000000002_opssubmittersecretopssubmitt02", "ops", []string{"submitter", "approver", "analyst"}},
	"tenant-admin":  {"gf_c00000000003_tenantadminsecrettenantadmin03", "acme", []string{"admin"}},
}

const uiOrigin = "https://temporal-ui.example.com"

func newCodec(t *testing.T, id string) *payloadcodec.Codec {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	c, err := payloadcodec.New([]payloadcodec.KeyEntry{{ID: id, Key: base64.StdEncoding.EncodeToString(b)}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startServer serves a real ingress with the codec group mounted.
func startServer(t *testing.T, codec converter.PayloadCodec) *httptest.Server {
	t.Helper()
	var keys []auth.Key
	for _, k := range testKeys {
		keys = append(keys, auth.EntryFor(k.token, k.tenant, k.roles, ""))
	}
	store, err := auth.NewStore("", keys...)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ingress.New(ingress.Deps{Orchestrator: gwtest.NewOrch(), Keys: store, Log: slog.New(slog.DiscardHandler)},
		ingress.Config{KeyLimit: ratelimit.Limit{RPS: 1e6, Burst: 1e6}, TenantLimit: ratelimit.Limit{RPS: 1e6, Burst: 1e6}})
	if err != nil {
		t.Fatal(err)
	}
	g, err := codecapi.Routes(codec, codecapi.Options{Tenant: "ops", AllowedOrigin: uiOrigin})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Mount(g); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts
}

// remote is the SDK's own client of the remote codec protocol, so the
// test checks the wire format Temporal's tools speak.
func remote(url, key string) converter.PayloadCodec {
	return converter.NewRemotePayloadCodec(converter.RemotePayloadCodecOptions{
		Endpoint: url + "/codec",
		ModifyRequest: func(r *http.Request) error {
			if key != "" {
				r.Header.Set("Authorization", "Bearer "+testKeys[key].token)
			}
			r.Header.Set("X-Namespace", "default")
			return nil
		},
	})
}

func TestCodecEndpointRoundTrip(t *testing.T) {
	codec := newCodec(t, "k1")
	ts := startServer(t, codec)
	plain := []*commonpb.Payload{{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`{"card":"4111"}`)}}

	enc, err := remote(ts.URL, "ops-admin").Encode(plain)
	if err != nil {
		t.Fatal(err)
	}
	if string(enc[0].Metadata["encoding"]) != payloadcodec.EncodingEncrypted || strings.Contains(string(enc[0].Data), "4111") {
		t.Fatalf("not encrypted: %v", enc[0])
	}
	// What a worker encrypted, the endpoint decrypts (and back).
	local, _ := codec.Encode(plain)
	for _, in := range [][]*commonpb.Payload{enc, local} {
		dec, err := remote(ts.URL, "ops-admin").Decode(in)
		if err != nil {
			t.Fatal(err)
		}
		if string(dec[0].Data) != `{"card":"4111"}` {
			t.Fatalf("decoded %q", dec[0].Data)
		}
	}
	// A payload of another key: a clear error in the API's shape.
	foreign, _ := newCodec(t, "k9").Encode(plain)
	status, body := post(t, ts.URL+"/codec/decode", "ops-admin", "", payloadsJSON(t, foreign))
	if status != 400 || !strings.Contains(body, `"codec_failed"`) || !strings.Contains(body, `k9`) {
		t.Errorf("foreign key: %d %s", status, body)
	}
}

func TestCodecEndpointRefusesNonAdmins(t *testing.T) {
	codec := newCodec(t, "k1")
	ts := startServer(t, codec)
	enc, _ := codec.Encode([]*commonpb.Payload{{Data: []byte("secret")}})
	body := payloadsJSON(t, enc)
	for _, tc := range []struct {
		key    string
		status int
	}{
		{"", 401},
		{"ops-submitter", 403},
		{"tenant-admin", 403}, // an admin, but not an operator
	} {
		for _, verb := range []string{"decode", "encode"} {
			status, got := post(t, ts.URL+"/codec/"+verb, tc.key, "", body)
			if status != tc.status || strings.Contains(got, "secret") {
				t.Errorf("%s %q: %d %s", verb, tc.key, status, got)
			}
			var shape api.Body
			if err := json.Unmarshal([]byte(got), &shape); err != nil || shape.Error == nil || shape.Error.Code == "" {
				t.Errorf("%s %q: not the error shape: %s", verb, tc.key, got)
			}
		}
	}
}

func TestCodecEndpointCORS(t *testing.T) {
	codec := newCodec(t, "k1")
	ts := startServer(t, codec)
	enc, _ := codec.Encode([]*commonpb.Payload{{Data: []byte("x")}})

	status, _ := post(t, ts.URL+"/codec/decode", "ops-admin", uiOrigin, payloadsJSON(t, enc))
	if status != 200 {
		t.Fatalf("allowed origin: %d", status)
	}
	if status, _ := post(t, ts.URL+"/codec/decode", "ops-admin", "https://evil.example.com", payloadsJSON(t, enc)); status != 403 {
		t.Errorf("other origin: %d", status)
	}
	for origin, want := range map[string]int{uiOrigin: 204, "https://evil.example.com": 403} {
		req, _ := http.NewRequest(http.MethodOptions, ts.URL+"/codec/decode", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization,content-type,x-namespace")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("preflight from %s: %d, want %d", origin, resp.StatusCode, want)
		}
		if want == 204 && (resp.Header.Get("Access-Control-Allow-Origin") != uiOrigin ||
			!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "X-Namespace")) {
			t.Errorf("preflight headers %v", resp.Header)
		}
		if want != 204 && resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight from %s allowed", origin)
		}
	}
}

func payloadsJSON(t *testing.T, ps []*commonpb.Payload) string {
	t.Helper()
	b, err := json.Marshal(&commonpb.Payloads{Payloads: ps})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func post(t *testing.T, url, key, origin, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+testKeys[key].token)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	_, _ = io.Copy(&sb, resp.Body)
	return resp.StatusCode, sb.String()
}
