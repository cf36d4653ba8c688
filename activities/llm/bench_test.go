package llm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gateflow/gateflow/activities/llm/llmtest"
)

// Gateway overhead per model call against calling the same local provider
// server directly with net/http, in the same run:
//
//	go test -run XXX -bench . -benchmem ./activities/llm/
//
// "direct" marshals the request, POSTs it and decodes the answer, as a
// bare client would; "gateway" does Chat through routing, estimates,
// budget, adapter translation, cost and a call record. The difference is
// the gateway's overhead. p50/p99 are per-call latencies.

// benchProvider keeps no request copies (the fake's log would grow).
func benchProvider(b *testing.B) string {
	plain := llmtest.Fixture(b, "openai/chat_response.json")
	stream := llmtest.Fixture(b, "openai/chat_stream.sse")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept") == "text/event-stream" {
			llmtest.WriteSSE(w, stream)
			return
		}
		llmtest.WriteJSON(w, 200, plain)
	}))
	b.Cleanup(srv.Close)
	return srv.URL
}

func benchRequest() *ChatRequest {
	temp := 0.2
	return &ChatRequest{
		Model: "p/m",
		Messages: []Message{
			TextMessage("system", "You are a concise assistant that answers in one sentence."),
			TextMessage("user", "Summarize the following ticket: the customer cannot log in since the last update, error 403 on /api/session. "+strings.Repeat("Details follow. ", 20)),
		},
		Temperature: &temp,
	}
}

func benchGateway(b *testing.B, url string, withBudget bool) *Gateway {
	return benchGatewayWith(b, url, benchVariant{budget: withBudget})
}

// benchVariant selects what a benchmark gateway does beyond routing.
type benchVariant struct {
	name    string
	budget  bool
	balance bool // the request's model is an alias weighted over two deployments
	cache   bool // the response cache is on (off otherwise)
	request func(i int) *ChatRequest
}

// benchVariants are the gateway configurations measured against a bare
// client: routing only; with a budget; with balancing; with balancing
// and the cache on (a request the cache must not take, a deterministic
// one stored on every call, and hits).
func benchVariants() []benchVariant {
	base := benchRequest()
	balanced := func(i int) *ChatRequest { r := *base; r.Model = "pool"; return &r }
	zero := 0.0
	unique := func(i int) *ChatRequest {
		r := *base
		r.Model = "pool"
		r.Temperature = &zero
		r.Messages = append([]Message{TextMessage("system", "request "+strconv.Itoa(i))}, base.Messages[1:]...)
		return &r
	}
	same := func(i int) *ChatRequest { r := *base; r.Model = "pool"; r.Temperature = &zero; return &r }
	return []benchVariant{
		{name: "gateway", request: func(int) *ChatRequest { return base }},
		{name: "gateway+budget", budget: true, request: func(int) *ChatRequest { return base }},
		{name: "gateway+balancing", balance: true, request: balanced},
		{name: "gateway+balancing+cache(not eligible)", balance: true, cache: true, request: balanced},
		{name: "gateway+balancing+cache(miss,store)", balance: true, cache: true, request: unique},
		{name: "gateway+balancing+cache(hit)", balance: true, cache: true, request: same},
	}
}

func benchConfig(url string, v benchVariant) Config {
	m := Model{InputPerMTok: 0.15, OutputPerMTok: 0.6, ContextTokens: 128000}
	cfg := Config{Providers: map[string]Provider{
		"p": {Kind: KindOpenAI, BaseURL: url, APIKeyEnv: "KEY", Models: map[string]Model{"m": m}},
		"q": {Kind: KindOpenAI, BaseURL: url, APIKeyEnv: "KEY", Models: map[string]Model{"m": m}},
	}}
	if v.balance {
		cfg.Aliases = map[string]Alias{"pool": {Strategy: StrategyWeighted, Targets: []AliasTarget{{Model: "p/m", Weight: 3}, {Model: "q/m", Weight: 1}}}}
	}
	cfg.Cache = CachePolicy{Disabled: !v.cache}
	return cfg
}

func benchGatewayWith(b *testing.B, url string, v benchVariant) *Gateway {
	var budget BudgetChecker
	if v.budget {
		budget = NewBudgets(&fakeSpend{}, LimitFunc(func(string) (int64, int64) { return 1 << 40, 0 }), SystemClock{}, BudgetPolicy{})
	}
	gw, err := NewGateway(benchConfig(url, v), Deps{
		HTTP:      NewHTTPClient(),
		Budget:    budget,
		Recorder:  nopRecorder{},
		LookupEnv: func(string) (string, bool) { return testKey, true },
	})
	if err != nil {
		b.Fatal(err)
	}
	return gw
}

// latencies collects per-iteration durations and reports p50/p99.
type latencies []time.Duration

func (l latencies) report(b *testing.B, prefix string) {
	if len(l) == 0 {
		return
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	b.ReportMetric(float64(l[len(l)/2].Nanoseconds()), prefix+"p50-ns")
	b.ReportMetric(float64(l[len(l)*99/100].Nanoseconds()), prefix+"p99-ns")
}

func BenchmarkChat(b *testing.B) {
	url := benchProvider(b)
	req := benchRequest()
	b.Run("direct", func(b *testing.B) {
		client := NewHTTPClient()
		lat := make(latencies, 0, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			start := time.Now()
			r := *req
			r.Model = "m"
			body, err := json.Marshal(&r)
			if err != nil {
				b.Fatal(err)
			}
			hreq, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, url+"/chat/completions", bytes.NewReader(body))
			hreq.Header.Set("Content-Type", "application/json")
			hreq.Header.Set("Authorization", "Bearer "+testKey)
			resp, err := client.Do(hreq)
			if err != nil {
				b.Fatal(err)
			}
			var out ChatResponse
			err = json.NewDecoder(resp.Body).Decode(&out)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || len(out.Choices) == 0 {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		b.StopTimer()
		lat.report(b, "")
	})
	for _, variant := range benchVariants() {
		b.Run(variant.name, func(b *testing.B) {
			gw := benchGatewayWith(b, url, variant)
			lat := make(latencies, 0, b.N)
			opts := CallOptions{Tenant: "acme", StepID: "s"}
			reqs := make([]*ChatRequest, b.N)
			for i := range reqs {
				reqs[i] = variant.request(i)
			}
			if _, err := gw.Chat(context.Background(), variant.request(-1), opts); err != nil {
				b.Fatal(err) // warm: connections, and the entry hits replay
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				resp, err := gw.Chat(context.Background(), reqs[i], opts)
				if err != nil || len(resp.Choices) == 0 {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			lat.report(b, "")
		})
	}
}

// BenchmarkStreamTTFT measures time to the first content chunk of a
// stream (reported as ttft-p50-ns / ttft-p99-ns); each iteration then
// reads the stream to its end so that connections are reused.
func BenchmarkStreamTTFT(b *testing.B) {
	url := benchProvider(b)
	req := benchRequest()
	b.Run("direct", func(b *testing.B) {
		client := NewHTTPClient()
		lat := make(latencies, 0, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			start := time.Now()
			r := *req
			r.Model = "m"
			r.Stream = true
			r.StreamOptions = &StreamOptions{IncludeUsage: true}
			body, _ := json.Marshal(&r)
			hreq, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, url+"/chat/completions", bytes.NewReader(body))
			hreq.Header.Set("Content-Type", "application/json")
			hreq.Header.Set("Accept", "text/event-stream")
			hreq.Header.Set("Authorization", "Bearer "+testKey)
			resp, err := client.Do(hreq)
			if err != nil {
				b.Fatal(err)
			}
			sc := bufio.NewScanner(resp.Body)
			first := true
			for sc.Scan() {
				line := sc.Bytes()
				if !bytes.HasPrefix(line, []byte("data: ")) || bytes.Equal(line, []byte("data: [DONE]")) {
					continue
				}
				var c ChatChunk
				if err := json.Unmarshal(line[6:], &c); err != nil {
					b.Fatal(err)
				}
				if first && len(c.Choices) > 0 && c.Choices[0].Delta.Content != nil && *c.Choices[0].Delta.Content != "" {
					lat = append(lat, time.Since(start))
					first = false
				}
			}
			resp.Body.Close()
		}
		b.StopTimer()
		lat.report(b, "ttft-")
	})
	b.Run("gateway", func(b *testing.B) {
		gw := benchGateway(b, url, false)
		lat := make(latencies, 0, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			start := time.Now()
			s, err := gw.ChatStream(context.Background(), req, CallOptions{Tenant: "acme"})
			if err != nil {
				b.Fatal(err)
			}
			first := true
			for {
				c, err := s.Recv()
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				if first && len(c.Choices) > 0 && c.Choices[0].Delta.Content != nil && *c.Choices[0].Delta.Content != "" {
					lat = append(lat, time.Since(start))
					first = false
				}
			}
			s.Close()
		}
		b.StopTimer()
		lat.report(b, "ttft-")
	})
}

// cannedTransport answers every request in memory with a fixed body, so
// that the in-memory benchmarks measure CPU cost only, without loopback
// networking noise (this machine's cores are shared).
type cannedTransport struct {
	plain, stream []byte
}

func (c cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	body, ct := c.plain, "application/json"
	if r.Header.Get("Accept") == "text/event-stream" {
		body, ct = c.stream, "text/event-stream"
	}
	return &http.Response{
		StatusCode: 200,
		Header:     http.Header{"Content-Type": {ct}},
		Body:       io.NopCloser(bytes.NewReader(body)),
		Request:    r,
	}, nil
}

// BenchmarkChatInMemory is BenchmarkChat over an in-memory transport: the
// gateway's own CPU cost per call against a bare client's.
func BenchmarkChatInMemory(b *testing.B) {
	rt := cannedTransport{plain: llmtest.Fixture(b, "openai/chat_response.json"), stream: llmtest.Fixture(b, "openai/chat_stream.sse")}
	client := &http.Client{Transport: rt}
	req := benchRequest()
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			r := *req
			r.Model = "m"
			body, _ := json.Marshal(&r)
			hreq, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://provider.invalid/v1/chat/completions", bytes.NewReader(body))
			hreq.Header.Set("Content-Type", "application/json")
			hreq.Header.Set("Authorization", "Bearer "+testKey)
			resp, err := client.Do(hreq)
			if err != nil {
				b.Fatal(err)
			}
			var out ChatResponse
			err = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, variant := range benchVariants() {
		if variant.budget {
			continue
		}
		b.Run(variant.name, func(b *testing.B) {
			gw, err := NewGateway(benchConfig("http://provider.invalid/v1", variant), Deps{
				HTTP: client, Recorder: nopRecorder{}, LookupEnv: func(string) (string, bool) { return testKey, true },
			})
			if err != nil {
				b.Fatal(err)
			}
			reqs := make([]*ChatRequest, b.N)
			for i := range reqs {
				reqs[i] = variant.request(i)
			}
			if _, err := gw.Chat(context.Background(), variant.request(-1), CallOptions{Tenant: "acme"}); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := gw.Chat(context.Background(), reqs[i], CallOptions{Tenant: "acme"}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("gateway-stream", func(b *testing.B) {
		gw, err := NewGateway(oneProvider(KindOpenAI, "http://provider.invalid/v1", map[string]Model{"m": {}}), Deps{
			HTTP: client, Recorder: nopRecorder{}, LookupEnv: func(string) (string, bool) { return testKey, true },
		})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			s, err := gw.ChatStream(context.Background(), req, CallOptions{Tenant: "acme"})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.Recv(); err != nil {
				b.Fatal(err)
			}
			s.Close()
		}
	})
	b.Run("direct-stream", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			r := *req
			r.Model = "m"
			r.Stream = true
			body, _ := json.Marshal(&r)
			hreq, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://provider.invalid/v1/chat/completions", bytes.NewReader(body))
			hreq.Header.Set("Accept", "text/event-stream")
			resp, err := client.Do(hreq)
			if err != nil {
				b.Fatal(err)
			}
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if line := sc.Bytes(); bytes.HasPrefix(line, []byte("data: {")) {
					var c ChatChunk
					if err := json.Unmarshal(line[6:], &c); err != nil {
						b.Fatal(err)
					}
					break
				}
			}
			resp.Body.Close()
		}
	})
}

// BenchmarkOverheadInterleaved makes, in every iteration, one call of each
// kind against the same local provider: a bare client, the gateway, and
// the gateway with balancing and the response cache on (a request the
// cache does not take, one it stores, one it answers). Interleaving puts
// them under the same load, which on a shared machine matters more than
// the differences measured; the p50 of each is reported.
//
//	go test -run XXX -bench OverheadInterleaved -benchtime 20000x ./activities/llm/
func BenchmarkOverheadInterleaved(b *testing.B) {
	url := benchProvider(b)
	base := benchRequest()
	variants := benchVariants()
	pick := func(name string) benchVariant {
		for _, v := range variants {
			if v.name == name {
				return v
			}
		}
		b.Fatalf("no variant %s", name)
		return benchVariant{}
	}
	kinds := []struct {
		label string
		v     benchVariant
	}{
		{"gateway", pick("gateway")},
		{"balancing", pick("gateway+balancing")},
		{"balancing+cache-bypass", pick("gateway+balancing+cache(not eligible)")},
		{"balancing+cache-miss", pick("gateway+balancing+cache(miss,store)")},
		{"balancing+cache-hit", pick("gateway+balancing+cache(hit)")},
	}
	gws := make([]*Gateway, len(kinds))
	for i, k := range kinds {
		gws[i] = benchGatewayWith(b, url, k.v)
		if _, err := gws[i].Chat(context.Background(), k.v.request(-1), CallOptions{Tenant: "acme"}); err != nil {
			b.Fatal(err)
		}
	}
	client := NewHTTPClient()
	direct := func() {
		r := *base
		r.Model = "m"
		body, _ := json.Marshal(&r)
		hreq, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, url+"/chat/completions", bytes.NewReader(body))
		hreq.Header.Set("Content-Type", "application/json")
		hreq.Header.Set("Authorization", "Bearer "+testKey)
		resp, err := client.Do(hreq)
		if err != nil {
			b.Fatal(err)
		}
		var out ChatResponse
		err = json.NewDecoder(resp.Body).Decode(&out)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]latencies, len(kinds)+1)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		direct()
		lat[0] = append(lat[0], time.Since(start))
		for k, kind := range kinds {
			req := kind.v.request(i)
			start := time.Now()
			if _, err := gws[k].Chat(context.Background(), req, CallOptions{Tenant: "acme"}); err != nil {
				b.Fatal(err)
			}
			lat[k+1] = append(lat[k+1], time.Since(start))
		}
	}
	b.StopTimer()
	p50 := func(l latencies) time.Duration {
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
		return l[len(l)/2]
	}
	d := p50(lat[0])
	b.ReportMetric(float64(d.Nanoseconds())/1e3, "direct-p50-µs")
	for k, kind := range kinds {
		g := p50(lat[k+1])
		b.ReportMetric(float64(g.Nanoseconds())/1e3, kind.label+"-p50-µs")
	}
}
