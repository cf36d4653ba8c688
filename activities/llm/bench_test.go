package llm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gateflow/gateflow/activities/llm/llmtest"
	"github.com/gateflow/gateflow/analytics/producer"
	"github.com/gateflow/gateflow/deploy/embedded"
	"github.com/gateflow/gateflow/deploy/embedded/embeddedtest"
)

// Gateway overhead per model call against calling the same local provider
// server directly with net/http, in the same run:
//
//	go test -run XXX -bench . ./activities/llm/
//
// "direct" marshals the request, POSTs it and decodes the answer, as a
// bare client would; "gateway" does Chat through routing, estimates,
// budget, adapter translation, cost and a call record. The difference is
// the gateway's overhead.
//
// The call record goes where it goes in production: Emit of the analytics
// producer (encode, enqueue), whose background goroutine writes batches to
// Kafka (an in-process kfake broker here). The compared paths run
// interleaved (see runInterleaved), so one iteration (b.N) is one call of
// each path and ns/op is their sum; the per-path figures are the reported
// metrics: <path>-ns/call, -p50-ns, -p99-ns, -cpu-ns/call (user + system
// time of the whole process, so it includes the producer's background
// writes and the in-process broker), -allocs/call and -B/call (process-wide,
// as -benchmem counts them).

// benchRecorder is the real call-record path: an analytics producer with
// a spool directory, writing to an in-process kfake broker. It is closed
// (flushing what is queued) when the benchmark ends.
func benchRecorder(b *testing.B) Recorder {
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

// benchMode is one of the paths a benchmark compares: call makes one call
// and returns the latency to report for it (the whole call, or the time to
// the first token).
type benchMode struct {
	name string
	call func() time.Duration
}

// benchRounds is how many rounds runInterleaved splits b.N into.
const benchRounds = 10

// runInterleaved runs b.N calls of every mode in benchRounds rounds, the
// order of the modes reversed every other round (A B C, C B A, A B C, ...),
// so that a change of load on the shared machine hits every mode alike,
// and reports per mode the figures listed at the top of this file.
func runInterleaved(b *testing.B, modes []benchMode) {
	b.Helper()
	type acc struct {
		lat           latencies
		wall, cpu     time.Duration
		allocs, bytes uint64
	}
	accs := make([]acc, len(modes))
	for i := range accs {
		accs[i].lat = make(latencies, 0, b.N)
	}
	var ms runtime.MemStats
	b.ResetTimer()
	for r := range benchRounds {
		n := b.N*(r+1)/benchRounds - b.N*r/benchRounds
		if n == 0 {
			continue
		}
		order := make([]int, len(modes))
		for i := range order {
			order[i] = i
		}
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, i := range order {
			a := &accs[i]
			runtime.ReadMemStats(&ms)
			m0, b0, c0, t0 := ms.Mallocs, ms.TotalAlloc, processCPU(), time.Now()
			for range n {
				a.lat = append(a.lat, modes[i].call())
			}
			a.wall += time.Since(t0)
			a.cpu += processCPU() - c0
			runtime.ReadMemStats(&ms)
			a.allocs += ms.Mallocs - m0
			a.bytes += ms.TotalAlloc - b0
		}
	}
	b.StopTimer()
	for i, m := range modes {
		a := &accs[i]
		calls := float64(len(a.lat))
		if calls == 0 {
			continue
		}
		name := strings.Join(strings.Fields(m.name), "_") // units take no spaces
		b.ReportMetric(float64(a.wall.Nanoseconds())/calls, name+"-ns/call")
		b.ReportMetric(float64(a.cpu.Nanoseconds())/calls, name+"-cpu-ns/call")
		b.ReportMetric(float64(a.allocs)/calls, name+"-allocs/call")
		b.ReportMetric(float64(a.bytes)/calls, name+"-B/call")
		a.lat.report(b, name+"-")
	}
}

// processCPU is the user and system CPU time this process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

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

func benchGateway(b *testing.B, url string, withBudget bool, rec Recorder) *Gateway {
	return benchGatewayWith(b, url, benchVariant{budget: withBudget}, rec)
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

func benchGatewayWith(b *testing.B, url string, v benchVariant, rec Recorder) *Gateway {
	var budget BudgetChecker
	if v.budget {
		budget = NewBudgets(&fakeSpend{}, LimitFunc(func(string) (int64, int64) { return 1 << 40, 0 }), SystemClock{}, BudgetPolicy{})
	}
	gw, err := NewGateway(benchConfig(url, v), Deps{
		HTTP:      NewHTTPClient(),
		Budget:    budget,
		Recorder:  rec,
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

// BenchmarkChat: direct, and the gateway with each variant (budget,
// balancing, the response cache), interleaved.
func BenchmarkChat(b *testing.B) {
	url := benchProvider(b)
	req := benchRequest()
	rec := benchRecorder(b)
	client := NewHTTPClient()
	direct := func() time.Duration {
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
		return time.Since(start)
	}
	// One mode per gateway variant (routing only, budget, balancing, the
	// response cache bypassed, missed and stored, hit), each on its own
	// gateway, warmed once (connections; the hit variant's entry).
	modes := []benchMode{{"direct", direct}}
	for _, v := range benchVariants() {
		gw := benchGatewayWith(b, url, v, rec)
		opts := CallOptions{Tenant: "acme", StepID: "s"}
		if _, err := gw.Chat(context.Background(), v.request(-1), opts); err != nil {
			b.Fatal(err)
		}
		n := 0
		modes = append(modes, benchMode{v.name, func() time.Duration {
			r := v.request(n)
			n++
			start := time.Now()
			resp, err := gw.Chat(context.Background(), r, opts)
			if err != nil || len(resp.Choices) == 0 {
				b.Fatal(err)
			}
			return time.Since(start)
		}})
	}
	runInterleaved(b, modes)
}

// BenchmarkStreamTTFT measures time to the first content chunk of a
// stream (reported as ttft-p50-ns / ttft-p99-ns); each iteration then
// reads the stream to its end so that connections are reused.
func BenchmarkStreamTTFT(b *testing.B) {
	url := benchProvider(b)
	req := benchRequest()
	client := NewHTTPClient()
	direct := func() time.Duration {
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
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var ttft time.Duration
		for sc.Scan() {
			line := sc.Bytes()
			if !bytes.HasPrefix(line, []byte("data: ")) || bytes.Equal(line, []byte("data: [DONE]")) {
				continue
			}
			var c ChatChunk
			if err := json.Unmarshal(line[6:], &c); err != nil {
				b.Fatal(err)
			}
			if ttft == 0 && len(c.Choices) > 0 && c.Choices[0].Delta.Content != nil && *c.Choices[0].Delta.Content != "" {
				ttft = time.Since(start)
			}
		}
		return ttft
	}
	gw := benchGateway(b, url, false, benchRecorder(b))
	viaGateway := func() time.Duration {
		start := time.Now()
		s, err := gw.ChatStream(context.Background(), req, CallOptions{Tenant: "acme"})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		var ttft time.Duration
		for {
			c, err := s.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if ttft == 0 && len(c.Choices) > 0 && c.Choices[0].Delta.Content != nil && *c.Choices[0].Delta.Content != "" {
				ttft = time.Since(start)
			}
		}
		return ttft
	}
	runInterleaved(b, []benchMode{{"direct-ttft", direct}, {"gateway-ttft", viaGateway}})
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
// gateway's own CPU cost per call against a bare client's, plain and
// streaming (to the first chunk), interleaved.
func BenchmarkChatInMemory(b *testing.B) {
	rt := cannedTransport{plain: llmtest.Fixture(b, "openai/chat_response.json"), stream: llmtest.Fixture(b, "openai/chat_stream.sse")}
	client := &http.Client{Transport: rt}
	req := benchRequest()
	rec := benchRecorder(b)
	newGW := func(models map[string]Model) *Gateway {
		gw, err := NewGateway(oneProvider(KindOpenAI, "http://provider.invalid/v1", models), Deps{
			HTTP: client, Recorder: rec, LookupEnv: func(string) (string, bool) { return testKey, true },
		})
		if err != nil {
			b.Fatal(err)
		}
		return gw
	}
	gw := newGW(map[string]Model{"m": {InputPerMTok: 1, OutputPerMTok: 1, ContextTokens: 128000}})
	gwStream := newGW(map[string]Model{"m": {}})
	timed := func(f func()) func() time.Duration {
		return func() time.Duration {
			start := time.Now()
			f()
			return time.Since(start)
		}
	}
	runInterleaved(b, []benchMode{
		{"direct", timed(func() {
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
		})},
		{"gateway", timed(func() {
			if _, err := gw.Chat(context.Background(), req, CallOptions{Tenant: "acme"}); err != nil {
				b.Fatal(err)
			}
		})},
		{"direct-stream", timed(func() {
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
		})},
		{"gateway-stream", timed(func() {
			s, err := gwStream.ChatStream(context.Background(), req, CallOptions{Tenant: "acme"})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.Recv(); err != nil {
				b.Fatal(err)
			}
			s.Close()
		})},
	})
}
