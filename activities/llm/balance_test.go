package llm

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gateflow/gateflow/activities/llm/llmtest"
	"github.com/gateflow/gateflow/analytics/record"
)

// balanced is an alias "pool" over a/m and b/m with the given strategy and
// weights.
func balanced(a, b string, strategy string, wa, wb int) Config {
	cfg := twoProviders(a, b)
	cfg.Aliases = map[string]Alias{"pool": {Strategy: strategy, Targets: []AliasTarget{{Model: "a/m", Weight: wa}, {Model: "b/m", Weight: wb}}}}
	cfg.Cache = CachePolicy{Disabled: true}
	return cfg
}

func okProvider(t *testing.T) *llmtest.Provider {
	return llmtest.NewProvider(t, llmtest.JSON(200, llmtest.Fixture(t, "openai/chat_response.json")))
}

func TestWeightedDistribution(t *testing.T) {
	a, b := okProvider(t), okProvider(t)
	env := newTestGateway(t, balanced(a.URL, b.URL, StrategyWeighted, 3, 1), nil)
	const n = 400
	for i := 0; i < n; i++ {
		if _, err := env.gw.Chat(context.Background(), userRequest("pool", "hi"), CallOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	na, nb := len(a.Requests()), len(b.Requests())
	if na+nb != n {
		t.Fatalf("%d + %d calls", na, nb)
	}
	// 3:1 is 75% on a; with 400 draws the seeded source lands within a
	// few points of it (a binomial standard deviation is ~2.2 points).
	if share := float64(na) / n; share < 0.68 || share > 0.82 {
		t.Errorf("a took %.1f%% of the calls, want about 75%%", 100*share)
	}
}

// The weighted order draws without replacement: the second target is the
// fallback of every call.
func TestWeightedOrderIsAPermutation(t *testing.T) {
	ts := []*target{{name: "a", state: &deployment{}}, {name: "b", state: &deployment{}}, {name: "c", state: &deployment{}}}
	p := &pool{strategy: StrategyWeighted, targets: ts, weights: []int{5, 1, 1}}
	rnd := globalRand{}
	for i := 0; i < 50; i++ {
		order := p.order(rnd, time.Now(), false)
		seen := map[string]bool{}
		for _, t := range order {
			seen[t.name] = true
		}
		if len(order) != 3 || len(seen) != 3 {
			t.Fatalf("order %v", order)
		}
	}
}

func TestLeastBusy(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	arrived := make(chan string, 2)
	hold := func(name string) llmtest.Responder {
		return func(n int, w http.ResponseWriter, r *http.Request) {
			arrived <- name
			if n == 0 {
				<-release // the first call to each provider waits
			}
			llmtest.WriteJSON(w, 200, llmtest.Fixture(t, "openai/chat_response.json"))
		}
	}
	a, b := llmtest.NewProvider(t, hold("a")), llmtest.NewProvider(t, hold("b"))
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	env := newTestGateway(t, balanced(a.URL, b.URL, StrategyLeastBusy, 1, 1), nil)
	done := make(chan error, 1)
	go func() {
		_, err := env.gw.Chat(context.Background(), userRequest("pool", "hi"), CallOptions{})
		done <- err
	}()
	first := <-arrived // one call is in flight at first
	go func() {
		_, err := env.gw.Chat(context.Background(), userRequest("pool", "hi"), CallOptions{})
		done <- err
	}()
	second := <-arrived
	if first == second {
		t.Errorf("both calls went to %s while it had one in flight", first)
	}
	once.Do(func() { close(release) })
	for i := 0; i < 2; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	// Nothing in flight afterwards.
	for _, name := range []string{"a/m", "b/m"} {
		if n := env.gw.stateFor(name).inflight.Load(); n != 0 {
			t.Errorf("%s: %d in flight", name, n)
		}
	}
}

func TestLatencyStrategy(t *testing.T) {
	a, b := okProvider(t), okProvider(t)
	env := newTestGateway(t, balanced(a.URL, b.URL, StrategyLatency, 1, 1), nil)
	// Unmeasured targets go first, so both get measured.
	env.gw.stateFor("a/m").succeeded(400*time.Millisecond, false)
	order := env.gw.routes.Load().aliases["pool"].order(env.gw.rnd, env.clock.Now(), false)
	if order[0].name != "b/m" {
		t.Errorf("unmeasured b/m not first: %v", names(order))
	}
	env.gw.stateFor("b/m").succeeded(40*time.Millisecond, false)
	for i := 0; i < 20; i++ {
		if _, err := env.gw.Chat(context.Background(), userRequest("pool", "hi"), CallOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if len(a.Requests()) != 0 || len(b.Requests()) != 20 {
		t.Errorf("slow a got %d calls, fast b %d", len(a.Requests()), len(b.Requests()))
	}
}

func names(ts []*target) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.name
	}
	return out
}

// A 429 with Retry-After cools the deployment down for that long: calls in
// the meantime go to the other target without calling it.
func TestCooldownHonoursRetryAfter(t *testing.T) {
	a := llmtest.NewProvider(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 0 {
			llmtest.WriteJSON(w, 429, llmtest.Fixture(t, "openai/error_rate_limit.json"), "Retry-After", "30")
			return
		}
		llmtest.WriteJSON(w, 200, llmtest.Fixture(t, "openai/chat_response.json"))
	})
	b := okProvider(t)
	env := newTestGateway(t, balanced(a.URL, b.URL, StrategyOrdered, 1, 1), nil)
	call := func() string {
		t.Helper()
		resp, err := env.gw.Chat(context.Background(), userRequest("pool", "hi"), CallOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Model
	}
	if got := call(); got != "b/m" {
		t.Fatalf("first call answered by %s", got)
	}
	for i := 0; i < 5; i++ {
		if got := call(); got != "b/m" {
			t.Fatalf("call during the cool-down answered by %s", got)
		}
	}
	if n := len(a.Requests()); n != 1 {
		t.Errorf("a called %d times during its Retry-After", n)
	}
	env.clock.Advance(31 * time.Second)
	if got := call(); got != "a/m" {
		t.Errorf("after the Retry-After, answered by %s", got)
	}
}

// Without Retry-After a rate limit cools the deployment down for
// cooldown.rate_limit; consecutive 5xx eject it after cooldown.failures,
// doubling; a success resets.
func TestCooldownAfterFailures(t *testing.T) {
	var mu sync.Mutex
	status := 500
	a := llmtest.NewProvider(t, func(n int, w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		s := status
		mu.Unlock()
		if s != 200 {
			llmtest.WriteJSON(w, s, llmtest.Fixture(t, "openai/error_server.json"))
			return
		}
		llmtest.WriteJSON(w, 200, llmtest.Fixture(t, "openai/chat_response.json"))
	})
	b := okProvider(t)
	cfg := balanced(a.URL, b.URL, StrategyOrdered, 1, 1)
	cfg.Cooldown = CooldownPolicy{Failures: 2, Duration: "10s", MaxDuration: "15s"}
	env := newTestGateway(t, cfg, nil)
	call := func() {
		t.Helper()
		if _, err := env.gw.Chat(context.Background(), userRequest("pool", "hi"), CallOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	call()
	call() // second consecutive failure: a is ejected for 10s
	if n := len(a.Requests()); n != 2 {
		t.Fatalf("a called %d times", n)
	}
	call()
	if n := len(a.Requests()); n != 2 {
		t.Errorf("ejected a called: %d", n)
	}
	env.clock.Advance(11 * time.Second)
	call() // a is back first, fails (1)
	call() // fails (2): ejected again, for 20s capped at 15s
	env.clock.Advance(11 * time.Second)
	call()
	if n := len(a.Requests()); n != 4 {
		t.Errorf("a called %d times, want 4 (second ejection longer)", n)
	}
	env.clock.Advance(5 * time.Second)
	mu.Lock()
	status = 200
	mu.Unlock()
	call()
	if n := len(a.Requests()); n != 5 {
		t.Errorf("a not tried after its ejection: %d", n)
	}
	if d := env.gw.stateFor("a/m"); d.failures != 0 || d.ejections != 0 {
		t.Errorf("success did not reset: %+v", d)
	}

	// A 429 without Retry-After: a short cool-down.
	mu.Lock()
	status = 429
	mu.Unlock()
	call()
	n := len(a.Requests())
	call()
	if len(a.Requests()) != n {
		t.Error("rate limited a called within cooldown.rate_limit")
	}
	env.clock.Advance(6 * time.Second)
	call()
	if len(a.Requests()) != n+1 {
		t.Error("a not tried after cooldown.rate_limit")
	}
}

// An ejected deployment is still tried when it is the only one: a blip
// does not turn a single-target model into an outage.
func TestEjectedSingleTargetStillTried(t *testing.T) {
	srv := llmtest.NewProvider(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n < 3 {
			llmtest.WriteJSON(w, 502, llmtest.Fixture(t, "openai/error_server.json"))
			return
		}
		llmtest.WriteJSON(w, 200, llmtest.Fixture(t, "openai/chat_response.json"))
	})
	cfg := oneProvider(KindOpenAI, srv.URL, map[string]Model{"m": {}})
	cfg.Retry = RetryPolicy{MaxAttempts: 1}
	env := newTestGateway(t, cfg, nil)
	for i := 0; i < 3; i++ {
		_, _ = env.gw.Chat(context.Background(), userRequest("p/m", "hi"), CallOptions{})
	}
	if _, err := env.gw.Chat(context.Background(), userRequest("p/m", "hi"), CallOptions{}); err != nil {
		t.Errorf("ejected single target not tried: %v", err)
	}
}

// When every target is cooling down after a Retry-After, a call without
// retries fails at once with the earliest delay and no provider call; with
// retries it waits for it.
func TestAllTargetsCoolingDown(t *testing.T) {
	n := 0
	var mu sync.Mutex
	srv := llmtest.NewProvider(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		first := n == 1
		mu.Unlock()
		if first {
			llmtest.WriteJSON(w, 429, llmtest.Fixture(t, "openai/error_rate_limit.json"), "Retry-After", "20")
			return
		}
		llmtest.WriteJSON(w, 200, llmtest.Fixture(t, "openai/chat_response.json"))
	})
	cfg := oneProvider(KindOpenAI, srv.URL, map[string]Model{"m": {}})
	env := newTestGateway(t, cfg, nil)
	if _, err := env.gw.Chat(context.Background(), userRequest("p/m", "hi"), CallOptions{NoRetry: true}); ClassOf(err) != ClassRateLimit {
		t.Fatalf("first call: %v", err)
	}
	before := len(env.recs.All())
	env.clock.Advance(5 * time.Second)
	_, err := env.gw.Chat(context.Background(), userRequest("p/m", "hi"), CallOptions{NoRetry: true})
	if ClassOf(err) != ClassRateLimit || RetryAfterOf(err) != 15*time.Second || !errors.Is(err, ErrCoolingDown) {
		t.Fatalf("cooling call: %v (retry after %s)", err, RetryAfterOf(err))
	}
	if len(srv.Requests()) != 1 {
		t.Errorf("provider called during its Retry-After: %d", len(srv.Requests()))
	}
	recs := env.recs.All()[before:]
	if len(recs) != 1 || recs[0].Outcome != record.OutcomeRejected || recs[0].ErrorClass != ClassRateLimit {
		t.Errorf("records %+v", recs)
	}
	// With retries, the gateway waits the 15 s and calls.
	resp, err := env.gw.Chat(context.Background(), userRequest("p/m", "hi"), CallOptions{})
	if err != nil || resp == nil {
		t.Fatalf("retried call: %v", err)
	}
	if s := env.clock.Sleeps(); len(s) != 1 || s[0] < 15*time.Second {
		t.Errorf("sleeps %v", s)
	}
}

// Deployment state outlives reloads.
func TestStateSurvivesReload(t *testing.T) {
	a, b := okProvider(t), okProvider(t)
	cfg := balanced(a.URL, b.URL, StrategyOrdered, 1, 1)
	env := newTestGateway(t, cfg, nil)
	env.gw.stateFor("a/m").failed(&Error{Class: ClassRateLimit, RetryAfter: time.Minute}, env.clock.Now(), cooldownPolicy{})
	if err := env.gw.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	resp, err := env.gw.Chat(context.Background(), userRequest("pool", "hi"), CallOptions{})
	if err != nil || resp.Model != "b/m" || len(a.Requests()) != 0 {
		t.Errorf("after reload: %v %v, a called %d", resp, err, len(a.Requests()))
	}
}
