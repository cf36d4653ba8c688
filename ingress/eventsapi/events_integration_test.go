//go:build integration

package eventsapi_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gateflow/gateflow/activities/callback"
	"github.com/gateflow/gateflow/workflows/events"
	"github.com/gateflow/gateflow/workflows/orchestrator"
	"github.com/gateflow/gateflow/workflows/schedules"
	"github.com/gateflow/gateflow/workflows/wire"
)

// TestSchedules: a schedule fires on Temporal's clock with its input
// template evaluated per firing; a backfill starts exactly the runs of
// its range; bad specs are 422 with their path; another tenant's schedule
// is not found.
func TestSchedules(t *testing.T) {
	s := getStack(t)

	code, body := s.do(t, "admin", "POST", "/v1/schedules", map[string]any{"id": "bad", "definition": "sched-it", "cron": "61 * * * *"}, nil)
	mustf(t, code == 422 && strings.Contains(string(body), `"path":"cron"`), "invalid cron: %d %s", code, body)
	code, body = s.do(t, "admin", "POST", "/v1/schedules", map[string]any{"id": "nodef", "definition": "no-such-def", "interval": "1m"}, nil)
	mustf(t, code == 404, "unknown definition: %d %s", code, body)
	code, _ = s.do(t, "submitter", "POST", "/v1/schedules", map[string]any{"id": "x", "definition": "sched-it", "interval": "1m"}, nil)
	mustf(t, code == 403, "a submitter created a schedule: %d", code)

	// Fires every second: the first runs arrive on Temporal's own clock.
	code, body = s.do(t, "admin", "POST", "/v1/schedules", map[string]any{"id": "tick", "definition": "sched-it", "interval": "1s",
		"input": map[string]any{"at": "${{ input.scheduled_time }}", "by": "${{ input.schedule }}"}}, nil)
	mustf(t, code == 201, "create: %d %s", code, body)
	var sch wire.Schedule
	decode(t, body, &sch)
	mustf(t, sch.ID == "tick" && sch.Source == "api" && sch.ResolvedVersion == "1" && len(sch.NextRuns) > 0, "schedule %+v", sch)
	waitFor(t, 30*time.Second, "two runs of the schedule", func() bool {
		_, b := s.do(t, "admin", "GET", "/v1/schedules/tick", nil, nil)
		decode(t, b, &sch)
		return len(sch.RecentRuns) >= 2
	})
	code, _ = s.do(t, "admin", "POST", "/v1/schedules/tick/pause", map[string]any{"note": "enough"}, nil)
	mustf(t, code == 200, "pause: %d", code)
	run := sch.RecentRuns[0]
	out, err := s.result(t, "acme/"+run.WorkflowID, 30*time.Second)
	mustf(t, err == nil && out["by"] == "tick" && out["at"] == run.ScheduledAt.UTC().Format(time.RFC3339), "run %s: %v %v", run.WorkflowID, out, err)
	waitFor(t, 10*time.Second, "the schedule record", func() bool {
		for _, r := range s.recs.All() {
			if r.Kind == "schedule" && r.Target == "tick" && r.Tenant == "acme" && r.Labels["trigger"] == "schedule:tick" {
				return true
			}
		}
		return false
	})

	// Another tenant sees nothing of it.
	code, _ = s.do(t, "other", "GET", "/v1/schedules/tick", nil, nil)
	mustf(t, code == 404, "other tenant's get: %d", code)
	code, _ = s.do(t, "other", "POST", "/v1/schedules/tick/trigger", nil, nil)
	mustf(t, code == 404, "other tenant's trigger: %d", code)
	_, body = s.do(t, "other", "GET", "/v1/schedules", nil, nil)
	mustf(t, !strings.Contains(string(body), `"tick"`), "other tenant's list: %s", body)

	// Backfill: a paused minutely schedule, five minutes of 2026.
	code, body = s.do(t, "admin", "POST", "/v1/schedules", map[string]any{"id": "minutely", "definition": "sched-it", "interval": "1m",
		"paused": true, "input": map[string]any{"at": "${{ input.scheduled_time }}"}}, nil)
	mustf(t, code == 201, "create: %d %s", code, body)
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	code, body = s.do(t, "admin", "POST", "/v1/schedules/minutely/backfill", map[string]any{"from": from, "to": from.Add(5 * time.Minute)}, nil)
	mustf(t, code == 202 && strings.Contains(string(body), `"runs":5`), "backfill: %d %s", code, body)
	for i := range 5 {
		at := from.Add(time.Duration(i) * time.Minute).Format(time.RFC3339)
		id := schedules.WorkflowIDBase("acme", "minutely") + "-" + at
		var got map[string]any
		waitFor(t, 30*time.Second, "backfilled run "+id, func() bool {
			out, err := s.result(t, id, 30*time.Second)
			got = out
			return err == nil
		})
		mustf(t, got["at"] == at, "run %s input %v", id, got)
	}
	byMinutely := "TemporalScheduledById = '" + schedules.ScheduleID("acme", "minutely") + "'"
	waitFor(t, 10*time.Second, "five runs in visibility", func() bool { return s.count(t, byMinutely) >= 5 })
	time.Sleep(time.Second)
	if n := s.count(t, byMinutely); n != 5 {
		t.Errorf("the backfill started %d runs, want 5", n)
	}
	code, body = s.do(t, "admin", "POST", "/v1/schedules/minutely/backfill", map[string]any{"from": from, "to": from.Add(24 * time.Hour)}, nil)
	mustf(t, code == 400, "a 1440-run backfill: %d %s", code, body)

	code, _ = s.do(t, "admin", "DELETE", "/v1/schedules/tick", nil, nil)
	mustf(t, code == 204, "delete: %d", code)
	code, _ = s.do(t, "admin", "GET", "/v1/schedules/tick", nil, nil)
	mustf(t, code == 404, "deleted schedule: %d", code)
}

func githubSig(body []byte) string {
	m := hmac.New(sha256.New, []byte(hookSecret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func standardHeaders(t *testing.T, id string, at time.Time, body []byte) http.Header {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(stdSecret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	ts := strconv.FormatInt(at.Unix(), 10)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "." + string(body)))
	return http.Header{"Webhook-Id": {id}, "Webhook-Timestamp": {ts}, "Webhook-Signature": {"v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))}}
}

// TestWebhooks: replayed deliveries start one orchestration; bad or stale
// signatures are 401 and start nothing; an unknown hook is 404, a body
// over the limit 413, an input the definition refuses 422.
func TestWebhooks(t *testing.T) {
	s := getStack(t)
	body := []byte(`{"ref": "refs/heads/main"}`)
	hdr := http.Header{"X-Hub-Signature-256": {githubSig(body)}, "X-Github-Delivery": {"delivery-1"}}

	// The same delivery, five times at once and once more later.
	var wg sync.WaitGroup
	ids := make([]string, 6)
	for i := range 5 {
		wg.Go(func() {
			code, b := s.do(t, "", "POST", "/v1/hooks/gh", body, hdr)
			if code != 202 {
				t.Errorf("delivery %d: %d %s", i, code, b)
				return
			}
			var a wire.HookAccepted
			decode(t, b, &a)
			ids[i] = a.WorkflowID
		})
	}
	wg.Wait()
	code, b := s.do(t, "", "POST", "/v1/hooks/gh", body, hdr)
	var a wire.HookAccepted
	decode(t, b, &a)
	mustf(t, code == 202 && a.Action == "duplicate", "replay: %d %s", code, b)
	ids[5] = a.WorkflowID
	for _, id := range ids {
		mustf(t, id != "" && id == ids[0], "deliveries answered different workflows: %v", ids)
	}
	out, err := s.result(t, orchestrator.WorkflowID("acme", ids[0]), 30*time.Second)
	mustf(t, err == nil && out["ref"] == "refs/heads/main", "orchestration: %v %v", out, err)
	waitFor(t, 5*time.Second, "one started orchestration", func() bool {
		return s.count(t, "GateflowDefinition = 'hook-it'") == 1
	})

	for _, tc := range []struct {
		name string
		hook string
		body []byte
		hdr  http.Header
		want int
	}{
		{"forged signature", "gh", []byte(`{"ref": "evil"}`), http.Header{"X-Hub-Signature-256": {githubSig(body)}, "X-Github-Delivery": {"d-2"}}, 401},
		{"no signature", "gh", body, http.Header{"X-Github-Delivery": {"d-3"}}, 401},
		{"stale timestamp", "std", []byte(`{"order": "o-1"}`), standardHeaders(t, "msg-1", time.Now().Add(-10*time.Minute), []byte(`{"order": "o-1"}`)), 401},
		{"unknown hook", "nope", body, hdr, 404},
		{"body over the limit", "gh", []byte(`{"ref": "` + strings.Repeat("x", 5000) + `"}`), hdr, 413},
		{"input refused", "gh", []byte(`{"ref": 7}`), http.Header{"X-Hub-Signature-256": {githubSig([]byte(`{"ref": 7}`))}, "X-Github-Delivery": {"d-4"}}, 422},
	} {
		code, b := s.do(t, "", "POST", "/v1/hooks/"+tc.hook, tc.body, tc.hdr)
		if code != tc.want || !strings.Contains(string(b), `"error"`) {
			t.Errorf("%s: %d %s, want %d", tc.name, code, b, tc.want)
		}
		if strings.Contains(string(b), hookSecret) {
			t.Errorf("%s: the answer holds the secret", tc.name)
		}
	}
	mustf(t, s.count(t, "GateflowDefinition = 'hook-it'") == 1, "refused deliveries started orchestrations")

	// Triggers of the tenant, not of another.
	_, b = s.do(t, "submitter", "GET", "/v1/triggers", nil, nil)
	mustf(t, strings.Contains(string(b), `"path":"/v1/hooks/gh"`) && !strings.Contains(string(b), hookSecretEnv), "triggers: %s", b)
	_, b = s.do(t, "other", "GET", "/v1/triggers", nil, nil)
	mustf(t, string(b) == "{\"items\":[]}\n", "other tenant's triggers: %s", b)
}

// TestEventBeforeAndAfterItsStep: an event sent before the step waits is
// kept and resumes it; one sent while it waits resumes it at once; a
// signed webhook resumes it too; strict delivery with no waiter is 404;
// another tenant's event resumes nothing.
func TestEventBeforeAndAfterItsStep(t *testing.T) {
	s := getStack(t)
	start := func(order string) string {
		code, b := s.do(t, "submitter", "POST", "/v1/workflows", map[string]any{"definition": "order-wait", "input": map[string]any{"order": order}}, nil)
		mustf(t, code == 201, "start: %d %s", code, b)
		var r wire.StartResult
		decode(t, b, &r)
		return orchestrator.WorkflowID("acme", r.ID)
	}
	send := func(key, order, tracking string, strict bool) (int, []byte) {
		return s.do(t, key, "POST", "/v1/events", map[string]any{"name": "shipping.shipped", "key": order,
			"payload": map[string]any{"tracking": tracking}, "strict": strict}, nil)
	}

	// Before: the event waits in its mailbox.
	code, b := send("submitter", "o-before", "T-before", false)
	mustf(t, code == 202, "send: %d %s", code, b)
	out, err := s.result(t, start("o-before"), 30*time.Second)
	mustf(t, err == nil && out["tracking"] == "T-before", "event before the step: %v %v", out, err)

	// After: the step waits, then the event comes; strict finds it.
	code, b = send("submitter", "o-after", "T-x", true)
	mustf(t, code == 404 && strings.Contains(string(b), "no_waiting_step"), "strict without a waiter: %d %s", code, b)
	id := start("o-after")
	waitFor(t, 20*time.Second, "the step to wait", func() bool { return len(s.status(t, id).Events) == 1 })
	code, b = send("other", "o-after", "T-other", false)
	mustf(t, code == 202, "other tenant's event: %d %s", code, b)
	time.Sleep(500 * time.Millisecond)
	mustf(t, len(s.status(t, id).Events) == 1, "another tenant's event resumed the step")
	code, b = send("submitter", "o-after", "T-after", true)
	var acc wire.EventAccepted
	decode(t, b, &acc)
	mustf(t, code == 202 && acc.Delivered && "acme/"+acc.WorkflowID == id && acc.StepID == "shipped", "strict delivery: %d %s", code, b)
	out, err = s.result(t, id, 30*time.Second)
	mustf(t, err == nil && out["tracking"] == "T-after", "event after the step: %v %v", out, err)

	// Through a Standard Webhooks delivery, replayed: one event.
	id = start("o-hook")
	waitFor(t, 20*time.Second, "the step to wait", func() bool { return len(s.status(t, id).Events) == 1 })
	body := []byte(`{"order": "o-hook", "tracking": "T-hook"}`)
	hdr := standardHeaders(t, "msg-hook-1", time.Now(), body)
	for range 2 {
		code, b = s.do(t, "", "POST", "/v1/hooks/std", body, hdr)
		mustf(t, code == 202 && strings.Contains(string(b), `"action":"event"`), "hook: %d %s", code, b)
	}
	out, err = s.result(t, id, 30*time.Second)
	mustf(t, err == nil && out["tracking"] == "T-hook", "event from a webhook: %v %v", out, err)
	// The replayed delivery was dropped: a new waiter does not get it.
	code, b = send("submitter", "o-hook", "T-x", true)
	mustf(t, code == 404, "the replayed delivery was kept: %d %s", code, b)

	code, b = s.do(t, "submitter", "POST", "/v1/events", map[string]any{"name": "bad name", "key": "k"}, nil)
	mustf(t, code == 400, "bad event name: %d %s", code, b)
	var kinds []string
	for _, r := range s.recs.All() {
		if r.Kind == "event" && r.Target == "shipping.shipped" {
			kinds = append(kinds, r.Tenant+"/"+string(r.Outcome))
		}
	}
	mustf(t, len(kinds) >= 5, "event records %v", kinds)
	_ = events.MailboxID
}

// TestCallbackAfterWorkerRestart: an http step with a callback stays
// pending across a worker restart and completes when the service posts to
// its URL; the URL is one-time and a forged one is refused.
func TestCallbackAfterWorkerRestart(t *testing.T) {
	s := getStack(t)
	code, b := s.do(t, "submitter", "POST", "/v1/workflows", map[string]any{"definition": "async-it", "input": map[string]any{"job": "j-1"}}, nil)
	mustf(t, code == 201, "start: %d %s", code, b)
	var r wire.StartResult
	decode(t, b, &r)
	var call jobCall
	select {
	case call = <-s.jobs:
	case <-time.After(30 * time.Second):
		t.Fatal("the service was not called")
	}
	url := call.header.Get("Gateflow-Callback-Url")
	mustf(t, strings.HasPrefix(url, s.url+"/v1/callbacks/") && call.body["callback_url"] == url && call.body["job"] == "j-1", "call %+v", call)

	// The worker that made the call goes away; another takes over.
	s.stopW()
	src := func() (callback.Settings, error) {
		return callback.Settings{BaseURL: s.url, Keys: [][]byte{s.key}}, nil
	}
	s.stopW = s.startWorker(src)

	path := strings.TrimPrefix(url, s.url)
	code, b = s.do(t, "", "POST", path+"/heartbeat", nil, nil)
	mustf(t, code == 200 && strings.Contains(string(b), `"step_id":"render"`), "heartbeat: %d %s", code, b)
	code, b = s.do(t, "", "POST", path[:len(path)-4]+"AAAA", map[string]any{"output": "forged"}, nil)
	mustf(t, code == 401, "forged token: %d %s", code, b)
	code, b = s.do(t, "", "POST", path, map[string]any{"output": map[string]any{"pdf": "s3://out/j-1.pdf"}}, nil)
	mustf(t, code == 200, "complete: %d %s", code, b)
	out, err := s.result(t, orchestrator.WorkflowID("acme", r.ID), 30*time.Second)
	mustf(t, err == nil && out["pdf"] == "s3://out/j-1.pdf", "step output %v %v", out, err)
	code, b = s.do(t, "", "POST", path, map[string]any{"output": "again"}, nil)
	mustf(t, code == 404, "second completion: %d %s", code, b)
	found := false
	for _, rec := range s.recs.All() {
		found = found || (rec.Kind == "callback" && rec.StepID == "render" && rec.Outcome == "ok" && rec.Tenant == "acme")
		if strings.Contains(fmt.Sprint(rec), strings.TrimPrefix(path, "/v1/callbacks/")) {
			t.Errorf("a record holds the callback token: %+v", rec)
		}
	}
	mustf(t, found, "no callback record")
}
