package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/gateflow/gateflow/ingress"
	"github.com/gateflow/gateflow/workflows/wire"
)

// The fault run's clients: plain API calls, submissions retried with an
// Idempotency-Key, and an approval bot. Every request carries an
// X-Request-Id of the client's own, and the clients log each one with
// whether its answer arrived: the log is what the checks compare with
// ClickHouse and with the orchestrations' outcomes.

// callEntry is one request as the client saw it.
type callEntry struct {
	id       string
	at       time.Time
	answered bool // a whole HTTP response arrived
}

// callLog is the clients' log of requests.
type callLog struct {
	mu      sync.Mutex
	entries []callEntry
	// sent holds every request id before its request leaves, so that a
	// record stored while its request was still in flight is never taken
	// for one no client sent.
	sent map[string]struct{}
	n    atomic.Int64 // answered
}

// markSent notes id before its request is sent.
func (l *callLog) markSent(id string) {
	l.mu.Lock()
	if l.sent == nil {
		l.sent = map[string]struct{}{}
	}
	l.sent[id] = struct{}{}
	l.mu.Unlock()
}

// wasSent reports whether a client sent (or was sending) id.
func (l *callLog) wasSent(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.sent[id]
	return ok
}

func (l *callLog) add(e callEntry) {
	l.mu.Lock()
	l.entries = append(l.entries, e)
	l.mu.Unlock()
	if e.answered {
		l.n.Add(1)
	}
}

func (l *callLog) answered() int64 { return l.n.Load() }

// submission is one orchestration the client submits until accepted.
type submission struct {
	n        int
	key      string
	accepted bool
	id       string // the workflow id, once accepted
	attempts int
}

// expectation is what the run of submission n must end with.
type expectation struct {
	amount   float64
	approval string // "", "approve" or "reject"
	state    wire.RunState
	failedAt string // the step that fails, for failed runs
}

// expect derives a submission's input and outcome from n: most succeed
// without approval, some need one (approved, or rejected: compensations
// run), some are declined by the payments service (compensation of the
// reservation runs).
func expect(n int) expectation {
	switch {
	case n%10 == 9:
		return expectation{amount: 200000, state: wire.RunFailed, failedAt: "charge"}
	case n%10 >= 5 && n%20 == 5:
		return expectation{amount: 5000, approval: wire.Reject, state: wire.RunFailed, failedAt: "manager_approval"}
	case n%10 >= 5:
		return expectation{amount: 5000, approval: wire.Approve, state: wire.RunSucceeded}
	default:
		return expectation{amount: 50, state: wire.RunSucceeded}
	}
}

// faultLoad runs the clients of one fault run.
type faultLoad struct {
	r     *faultRun
	hc    *http.Client
	runID string
	seq   atomic.Int64
	calls callLog

	mu            sync.Mutex
	subs          []*submission
	byWorkflow    map[string]*submission
	votes         map[string]*vote // by workflow id
	submitRetries atomic.Int64
	// proxyCalls counts the calls sent through the gateway.
	proxyCalls atomic.Int64
	subsDone   sync.WaitGroup
	problems   []string
	// botStop ends the approval bot (after the settle), botDone closes
	// when it has.
	botStop func()
	botDone chan struct{}
}

// vote is the bot's decision on one workflow's approval.
type vote struct {
	decision string
	// accepted: answered 200; lostAnswer: an attempt's answer was lost
	// and a retry found the vote recorded (409).
	accepted, lostAnswer int
	attempts             int
}

func newFaultLoad(r *faultRun) *faultLoad {
	tr := &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}
	return &faultLoad{r: r, runID: strconv.FormatUint(r.rng.Uint64()%1e9, 36),
		hc:         &http.Client{Transport: tr, Timeout: 15 * time.Second},
		byWorkflow: map[string]*submission{}, votes: map[string]*vote{}}
}

func (l *faultLoad) problem(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.problems) < 50 {
		l.problems = append(l.problems, fmt.Sprintf(format, args...))
	}
}

func (l *faultLoad) accepted() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.subs {
		if s.accepted {
			n++
		}
	}
	return n
}

// do sends one request to base with the client's request id, logs it, and
// returns the status and body (err: no whole answer arrived).
func (l *faultLoad) do(ctx context.Context, base, method, path, key string, body []byte, hdr map[string]string) (int, []byte, error) {
	id := "fr-" + l.runID + "-" + strconv.FormatInt(l.seq.Add(1), 36)
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set(ingress.HeaderRequestID, id)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	at := time.Now()
	l.calls.markSent(id)
	resp, err := l.hc.Do(req)
	if err != nil {
		l.calls.add(callEntry{id: id, at: at})
		return 0, nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	l.calls.add(callEntry{id: id, at: at, answered: err == nil})
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, b, nil
}

func (l *faultLoad) ingressURL(rng *rand.Rand) string {
	return l.r.ingressURLs[rng.IntN(len(l.r.ingressURLs))]
}

// run starts the clients; the returned channel closes when the plain
// calls and the submission generator have stopped (submissions in flight
// and the bot go on until settleAndCheck).
func (l *faultLoad) run(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	var wg sync.WaitGroup
	lim := rate.NewLimiter(rate.Limit(l.r.cfg.CallRate), max(1, l.r.cfg.CallRate/50))
	workers := min(64, max(4, l.r.cfg.CallRate/50))
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := 0; lim.Wait(ctx) == nil; i++ {
				if i%2 == 1 {
					l.proxied(ctx, rng)
					continue
				}
				_, _, _ = l.do(ctx, l.ingressURL(rng), http.MethodGet, "/v1/definitions/fr-order/versions/1", l.r.keys.client, nil, nil)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.submitLoop(ctx)
	}()
	// The bot outlives the load: approvals of the last submissions are
	// decided while the run settles.
	botCtx, botStop := context.WithCancel(context.WithoutCancel(ctx))
	l.botStop, l.botDone = botStop, make(chan struct{})
	go func() {
		defer close(l.botDone)
		l.approvalBot(botCtx)
	}()
	go func() {
		wg.Wait()
		close(done)
	}()
	return done
}

// proxied sends one plain call through the gateway (/gw/fr-echo/echo,
// balanced over the echo service's two instances) and checks the answer is
// the upstream's echo of the body sent.
func (l *faultLoad) proxied(ctx context.Context, rng *rand.Rand) {
	body := []byte(`{"n":` + strconv.FormatUint(rng.Uint64()%1e12, 10) + `}`)
	l.proxyCalls.Add(1)
	status, got, err := l.do(ctx, l.ingressURL(rng), http.MethodPost, "/gw/fr-echo/echo", l.r.keys.client, body, nil)
	if err != nil || status >= 500 {
		return // not answered, or the gateway said so: the record check covers both
	}
	if status != http.StatusOK || !bytes.Equal(got, body) {
		l.problem("proxied call: %d %q, want 200 %q", status, got, body)
	}
}

// submitLoop submits orchestrations at SubmitRate until ctx ends; each
// submission retries on its own until accepted.
func (l *faultLoad) submitLoop(ctx context.Context) {
	every := time.Duration(float64(time.Second) / l.r.cfg.SubmitRate)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s := &submission{n: n, key: fmt.Sprintf("fr-%s-%d", l.runID, n)}
		l.mu.Lock()
		l.subs = append(l.subs, s)
		l.mu.Unlock()
		l.subsDone.Add(1)
		go func() {
			defer l.subsDone.Done()
			l.submit(s)
		}()
	}
}

// submitInput is submission n's request body.
func submitInput(n int) []byte {
	e := expect(n)
	body, _ := json.Marshal(map[string]any{"definition": "fr-order", "input": map[string]any{
		"n": n, "amount": e.amount,
		"items": []map[string]any{{"sku": fmt.Sprintf("SKU-%d", n%7), "qty": 1}, {"sku": "SKU-X", "qty": 2}},
	}})
	return body
}

// submit retries s with its Idempotency-Key until it is accepted, for at
// most the run's settle time after the load (a submission is never
// abandoned while the parts are being killed).
func (l *faultLoad) submit(s *submission) {
	rng := rand.New(rand.NewPCG(uint64(s.n), 11))
	body := submitInput(s.n)
	deadline := time.Now().Add(l.r.cfg.Duration + l.r.cfg.Settle)
	for attempt := 1; time.Now().Before(deadline); attempt++ {
		if attempt > 1 {
			l.submitRetries.Add(1)
			time.Sleep(min(time.Duration(attempt)*200*time.Millisecond, 2*time.Second))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		status, b, err := l.do(ctx, l.ingressURL(rng), http.MethodPost, "/v1/workflows", l.r.keys.client, body,
			map[string]string{"Idempotency-Key": s.key})
		cancel()
		l.mu.Lock()
		s.attempts = attempt
		l.mu.Unlock()
		if err != nil || status >= 500 || status == http.StatusTooManyRequests {
			continue
		}
		if status != http.StatusCreated && status != http.StatusOK {
			l.problem("submission %d: answered %d: %s", s.n, status, b)
			return
		}
		var res wire.StartResult
		if err := json.Unmarshal(b, &res); err != nil || res.ID == "" {
			l.problem("submission %d: bad answer %q: %v", s.n, b, err)
			return
		}
		l.mu.Lock()
		s.accepted, s.id = true, res.ID
		l.byWorkflow[res.ID] = s
		l.mu.Unlock()
		return
	}
	l.problem("submission %d: not accepted before the deadline", s.n)
}

// approvalBot decides every pending approval of the run's workflows, once,
// until ctx ends: approve, or reject when the submission's n says so.
func (l *faultLoad) approvalBot(ctx context.Context) {
	rng := rand.New(rand.NewPCG(3, 5))
	inflight := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
		// Listing approvals queries every running orchestration of the
		// tenant: every 2 s is what a dashboard would do.
		status, b, err := l.do(ctx, l.ingressURL(rng), http.MethodGet, "/v1/approvals", l.r.keys.bot, nil, nil)
		if err != nil || status != http.StatusOK {
			continue
		}
		var list wire.Approvals
		if err := json.Unmarshal(b, &list); err != nil {
			l.problem("approvals list: %v", err)
			continue
		}
		for _, a := range list.Items {
			l.mu.Lock()
			s := l.byWorkflow[a.WorkflowID]
			v := l.votes[a.WorkflowID]
			l.mu.Unlock()
			mu.Lock()
			busy := inflight[a.WorkflowID]
			mu.Unlock()
			if s == nil || busy || (v != nil && (v.accepted > 0 || v.lostAnswer > 0)) {
				continue // not ours yet, or decided already (the list lags)
			}
			mu.Lock()
			inflight[a.WorkflowID] = true
			mu.Unlock()
			wg.Add(1)
			go func(wf, step string, n int) {
				defer wg.Done()
				l.decide(ctx, wf, step, n)
				mu.Lock()
				delete(inflight, wf)
				mu.Unlock()
			}(a.WorkflowID, a.StepID, s.n)
		}
	}
}

// decide sends the bot's vote until it is known to be recorded.
func (l *faultLoad) decide(ctx context.Context, wf, step string, n int) {
	rng := rand.New(rand.NewPCG(uint64(n), 13))
	d := expect(n).approval
	l.mu.Lock()
	v := l.votes[wf]
	if v == nil {
		v = &vote{decision: d}
		l.votes[wf] = v
	}
	l.mu.Unlock()
	body, _ := json.Marshal(map[string]string{"decision": d})
	for attempt := 1; ctx.Err() == nil; attempt++ {
		if attempt > 1 {
			time.Sleep(min(time.Duration(attempt)*200*time.Millisecond, 2*time.Second))
		}
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		status, b, err := l.do(rctx, l.ingressURL(rng), http.MethodPost, "/v1/workflows/"+wf+"/approvals/"+step, l.r.keys.bot, body, nil)
		cancel()
		l.mu.Lock()
		v.attempts++
		earlier := v.attempts > 1
		l.mu.Unlock()
		switch {
		case err != nil || status >= 500 || status == http.StatusTooManyRequests:
			continue
		case status == http.StatusOK:
			l.mu.Lock()
			v.accepted++
			l.mu.Unlock()
			return
		case status == http.StatusConflict && earlier:
			// An earlier attempt was recorded but its answer was lost.
			l.mu.Lock()
			v.lostAnswer++
			l.mu.Unlock()
			return
		default:
			l.problem("vote on %s/%s: answered %d: %s", wf, step, status, b)
			return
		}
	}
}
