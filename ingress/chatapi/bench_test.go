package chatapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gateflow/gateflow/activities/llm"
	"github.com/gateflow/gateflow/activities/llm/llmtest"
	"github.com/gateflow/gateflow/analytics/producer"
	"github.com/gateflow/gateflow/deploy/embedded"
	"github.com/gateflow/gateflow/deploy/embedded/embeddedtest"
	"github.com/gateflow/gateflow/ingress"
	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/chatapi"
	"github.com/gateflow/gateflow/ingress/internal/gwtest"
	"github.com/gateflow/gateflow/ingress/ratelimit"
)

// BenchmarkGatewayOverhead measures what a model call through the whole
// ingress costs on top of calling the provider directly, in the same run:
// each iteration makes one direct call to a local OpenAI-compatible server
// and one call through POST /v1/chat/completions (API key check, rate
// limit, call records, gateway routing and translation both ways) to the
// same server, interleaved so that drift hits both alike.
//
//	plain:  latency of a whole non-streaming call
//	stream: time to first token (the first chunk with content)
//
// Reported: p50 and p99 of each, and their difference (the overhead).
// The order of the two calls alternates every iteration (ABBA). Call
// records (the ingress's and the gateway's) go through the real analytics
// producer into an in-process kfake broker, and the ingress applies its
// key and tenant rate limits (set high enough never to refuse).
//
//	go test -run X -bench GatewayOverhead -benchtime 5000x ./ingress/chatapi/
func BenchmarkGatewayOverhead(b *testing.B) {
	answer := llmtest.Fixture(b, "openai/chat_response.json")
	stream := llmtest.Fixture(b, "openai/chat_stream.sse")
	prov := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if bytes.Contains(readBody(r), []byte(`"stream":true`)) {
			llmtest.WriteSSE(w, stream)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(answer)
	}))
	defer prov.Close()
	rec := benchRecorder(b)
	gw := gwtest.Gateway(b, gwtest.Config(prov.URL), rec, nil)
	inURL := benchIngress(b, rec, chatapi.Routes(gw, chatapi.Options{}))

	const msgs = `"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the benchmark, in one short sentence please."}]`
	direct := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	viaGW := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	// The gateway alone (no ingress, no client hop): what routing,
	// translation and accounting cost, for the breakdown.
	b.Run("gateway-only", func(b *testing.B) {
		body := `{"model":"m1",` + msgs + `}`
		var req llm.ChatRequest
		_ = json.Unmarshal([]byte(`{"model":"local/m1",`+msgs+`}`), &req)
		d := make([]time.Duration, 0, b.N)
		g := make([]time.Duration, 0, b.N)
		directCall := func() {
			start := time.Now()
			resp, err := direct.Post(prov.URL+"/chat/completions", "application/json", strings.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			var cr llm.ChatResponse
			_ = json.NewDecoder(resp.Body).Decode(&cr)
			resp.Body.Close()
			d = append(d, time.Since(start))
		}
		gatewayCall := func() {
			start := time.Now()
			r := req
			if _, err := gw.Chat(context.Background(), &r, llm.CallOptions{Tenant: "acme"}); err != nil {
				b.Fatal(err)
			}
			g = append(g, time.Since(start))
		}
		for i := range b.N {
			if i%2 == 0 {
				directCall()
				gatewayCall()
			} else {
				gatewayCall()
				directCall()
			}
		}
		report(b, d, g)
	})
	for _, mode := range []string{"plain", "stream"} {
		b.Run(mode, func(b *testing.B) {
			streaming := mode == "stream"
			extra := ""
			if streaming {
				extra = `"stream":true,"stream_options":{"include_usage":true},`
			}
			directBody := `{"model":"m1",` + extra + msgs + `}`
			gwBody := `{"model":"local/m1",` + extra + msgs + `}`
			call := func(c *http.Client, url, key, body string) time.Duration {
				req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+key)
				start := time.Now()
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				defer resp.Body.Close()
				if resp.StatusCode != 200 {
					msg, _ := io.ReadAll(resp.Body)
					b.Fatalf("%d: %s", resp.StatusCode, msg)
				}
				if !streaming {
					if _, err := io.Copy(io.Discard, resp.Body); err != nil {
						b.Fatal(err)
					}
					return time.Since(start)
				}
				// Time to first token: the first event with content.
				sc := bufio.NewScanner(resp.Body)
				var ttft time.Duration
				for sc.Scan() {
					if ttft == 0 && strings.Contains(sc.Text(), `"content":"H`) {
						ttft = time.Since(start)
					}
				}
				if ttft == 0 {
					b.Fatal("no content in the stream")
				}
				return ttft
			}
			d := make([]time.Duration, 0, b.N)
			g := make([]time.Duration, 0, b.N)
			// Warm both connection pools and the gateway's.
			for range 20 {
				call(direct, prov.URL+"/chat/completions", gwtest.ProviderKey, directBody)
				call(viaGW, inURL+"/v1/chat/completions", gwtest.Token("submitter"), gwBody)
			}
			b.ResetTimer()
			for i := range b.N {
				if i%2 == 0 {
					d = append(d, call(direct, prov.URL+"/chat/completions", gwtest.ProviderKey, directBody))
					g = append(g, call(viaGW, inURL+"/v1/chat/completions", gwtest.Token("submitter"), gwBody))
				} else {
					g = append(g, call(viaGW, inURL+"/v1/chat/completions", gwtest.Token("submitter"), gwBody))
					d = append(d, call(direct, prov.URL+"/chat/completions", gwtest.ProviderKey, directBody))
				}
			}
			b.StopTimer()
			report(b, d, g)
		})
	}
}

// benchRecorder is the real call-record path: an analytics producer with
// a spool directory, writing to an in-process kfake broker; closed
// (flushing what is queued) when the benchmark ends.
func benchRecorder(b *testing.B) *producer.Producer {
	b.Helper()
	broker := embeddedtest.StartKafka(b, embedded.Topic{Name: "gateflow.calls", Partitions: 6})
	p, err := producer.New(producer.Config{Brokers: []string{broker}, Topic: "gateflow.calls", SpoolDir: b.TempDir()}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			b.Error(err)
		}
	})
	return p
}

// benchIngress serves the group on loopback like gwtest.NewIngress, but
// with rec as the ingress's recorder, until the benchmark ends. The key
// and tenant limits are on, high enough never to refuse a call.
func benchIngress(b *testing.B, rec ingress.Recorder, group api.Group) (url string) {
	b.Helper()
	high := ratelimit.Limit{RPS: 1e6, Burst: 1e6}
	srv, err := ingress.New(ingress.Deps{Orchestrator: gwtest.NewOrch(), Keys: gwtest.KeyStore(b), Recorder: rec, Log: slog.New(slog.DiscardHandler)},
		ingress.Config{KeyLimit: high, TenantLimit: high})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Mount(group); err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("ingress: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// report adds the quantiles of direct (d) and gateway (g) latencies.
func report(b *testing.B, d, g []time.Duration) {
	dp50, dp99 := quantiles(d)
	gp50, gp99 := quantiles(g)
	b.ReportMetric(us(dp50), "direct-p50-µs")
	b.ReportMetric(us(dp99), "direct-p99-µs")
	b.ReportMetric(us(gp50), "gateway-p50-µs")
	b.ReportMetric(us(gp99), "gateway-p99-µs")
	b.ReportMetric(us(gp50-dp50), "overhead-p50-µs")
	b.ReportMetric(us(gp99-dp99), "overhead-p99-µs")
}

func readBody(r *http.Request) []byte {
	b, _ := io.ReadAll(r.Body)
	return b
}

func quantiles(ds []time.Duration) (p50, p99 time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)*50/100], s[min(len(s)*99/100, len(s)-1)]
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
