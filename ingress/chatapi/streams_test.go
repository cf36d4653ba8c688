package chatapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gateflow/gateflow/activities/llm/llmtest"
	"github.com/gateflow/gateflow/ingress"
	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/chatapi"
	"github.com/gateflow/gateflow/ingress/internal/gwtest"
)

const firstChunk = `data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m1","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}` + "\n\n"

// stallingStack is a provider that sends one chunk of a streamed answer
// and then stalls until the call goes away, and an ingress with the given
// stream bounds.
func stallingStack(t *testing.T, mod func(*ingress.Config)) *gwtest.Ingress {
	t.Helper()
	prov := llmtest.NewProvider(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		llmtest.WriteSSE(w, []byte(firstChunk))
		<-r.Context().Done()
	})
	gw := gwtest.Gateway(t, gwtest.Config(prov.URL), &gwtest.Recorder{}, nil)
	return gwtest.NewIngressWith(t, gwtest.NewOrch(), mod, chatapi.Routes(gw, chatapi.Options{}))
}

const streamBody = `{"model":"local/m1","stream":true,"messages":[{"role":"user","content":"hi"}]}`

// TestChatStreamCap: a key holds at most StreamsPerKey streamed
// completions; another one is 429 too_many_streams in the error shape;
// another key is not affected.
func TestChatStreamCap(t *testing.T) {
	in := stallingStack(t, func(c *ingress.Config) { c.StreamsPerKey, c.MaxStreamAge = 1, 2*time.Second })
	req, _ := http.NewRequest("POST", in.URL+"/v1/chat/completions", strings.NewReader(streamBody))
	req.Header.Set("Authorization", "Bearer "+gwtest.Token("submitter"))
	first, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Body.Close()
	if first.StatusCode != 200 {
		t.Fatalf("first stream: %d", first.StatusCode)
	}
	resp, body := in.Do(t, "submitter", "POST", "/v1/chat/completions", streamBody)
	var e api.Body
	if err := json.Unmarshal(body, &e); err != nil || resp.StatusCode != 429 || e.Error == nil || e.Error.Code != "too_many_streams" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("second stream: %d %s", resp.StatusCode, body)
	}
	if resp, body := in.Do(t, "model", "POST", "/v1/chat/completions", streamBody); resp.StatusCode != 200 {
		t.Fatalf("another key's stream: %d %s", resp.StatusCode, body)
	}
}

// TestChatStreamMaxAge: a streamed completion that reaches the maximum
// age ends with an error chunk in OpenAI's shape (code stream_max_age)
// and no [DONE].
func TestChatStreamMaxAge(t *testing.T) {
	in := stallingStack(t, func(c *ingress.Config) { c.MaxStreamAge = 300 * time.Millisecond })
	resp, body := in.Do(t, "submitter", "POST", "/v1/chat/completions", streamBody)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"content":"Hel"`) ||
		!strings.Contains(string(body), `"code":"stream_max_age"}}`) || strings.Contains(string(body), "[DONE]") {
		t.Fatalf("%d: %s", resp.StatusCode, body)
	}
}
