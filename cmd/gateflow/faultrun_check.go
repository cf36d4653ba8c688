package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gateflow/gateflow/workflows/wire"
)

// The checks after a fault run, from the clients' own log.

// faultResult is what the checks found.
type faultResult struct {
	answered int
	accepted int
	callRate float64
	orchRate float64
	lines    []string
	problems []string
}

func (r *faultResult) failed() bool { return len(r.problems) > 0 }

func (r *faultResult) line(format string, args ...any) {
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}

func (r *faultResult) problem(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// settleAndCheck waits (up to settle) for every submission to be accepted
// and every accepted orchestration to close, with the approval bot still
// deciding, then for every answered call to reach ClickHouse, and checks.
func (l *faultLoad) settleAndCheck(ctx context.Context, settle time.Duration) (*faultResult, error) {
	res := &faultResult{}
	deadline := time.Now().Add(settle)
	settleStart := time.Now()
	subsDone := make(chan struct{})
	go func() { l.subsDone.Wait(); close(subsDone) }()
	select {
	case <-subsDone:
	case <-time.After(time.Until(deadline)):
		res.problem("submissions still unaccepted after the settle time")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	l.mu.Lock()
	subs := slices.Clone(l.subs)
	l.mu.Unlock()

	// Every accepted orchestration must close.
	statuses := l.waitClosed(ctx, subs, deadline)
	orchDone := time.Since(settleStart)
	var unclosed []*submission
	for _, s := range subs {
		if _, ok := statuses[s.n]; s.accepted && !ok {
			unclosed = append(unclosed, s)
		}
	}
	if len(unclosed) > 0 {
		l.r.logf("%d orchestrations not closed %s after the load; what Temporal says of them:", len(unclosed), orchDone.Round(time.Millisecond))
		l.diagnoseUnclosed(ctx, unclosed)
	} else {
		l.r.logf("orchestrations closed %s after the load", orchDone.Round(time.Millisecond))
	}
	l.stopBot()

	if b, err := json.MarshalIndent(statuses, "", "  "); err == nil {
		_ = os.WriteFile(filepath.Join(l.r.dir, "statuses.json"), b, 0o640)
	}
	l.checkOrchestrations(ctx, subs, statuses, res)
	if err := l.checkCalls(ctx, deadline, res); err != nil {
		return nil, err
	}
	l.checkApprovalRecords(ctx, subs, deadline, res)
	l.timeoutsLine(ctx, subs, res)
	res.line("settle\torchestrations closed %s after the load, records in ClickHouse %s after it",
		orchDone.Round(100*time.Millisecond), time.Since(settleStart).Round(100*time.Millisecond))
	l.mu.Lock()
	for _, p := range l.problems {
		res.problem("%s", p)
	}
	l.mu.Unlock()
	return res, nil
}

// waitClosed lists the tenant's orchestrations every 2 s until every
// accepted one has closed, reading each closed one's status once (the
// status of a running orchestration is a workflow query: polling every
// one of them would load Temporal more than the run does).
func (l *faultLoad) waitClosed(ctx context.Context, subs []*submission, deadline time.Time) map[int]wire.RunStatus {
	out := map[int]wire.RunStatus{}
	bySub := map[string]*submission{}
	for _, s := range subs {
		if s.accepted {
			bySub[s.id] = s
		}
	}
	for len(out) < len(bySub) && time.Now().Before(deadline) && ctx.Err() == nil {
		listed, err := l.listWorkflows(ctx)
		if err == nil {
			for _, w := range listed {
				s := bySub[w.ID]
				if s == nil || w.State == wire.RunRunning {
					continue
				}
				if _, done := out[s.n]; done {
					continue
				}
				if st, ok := l.finalStatus(ctx, s); ok {
					out[s.n] = st
				}
			}
		}
		if len(out) < len(bySub) {
			time.Sleep(2 * time.Second)
		}
	}
	return out
}

// finalStatus reads a closed orchestration's status.
func (l *faultLoad) finalStatus(ctx context.Context, s *submission) (wire.RunStatus, bool) {
	for attempt := range 5 {
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		status, b, err := l.do(rctx, l.r.ingressURLs[attempt%len(l.r.ingressURLs)], http.MethodGet, "/v1/workflows/"+s.id, l.r.keys.client, nil, nil)
		cancel()
		var st wire.RunStatus
		if err == nil && status == http.StatusOK && json.Unmarshal(b, &st) == nil {
			return st, true
		}
		time.Sleep(time.Second)
	}
	return wire.RunStatus{}, false
}

// stopBot ends the approval bot.
func (l *faultLoad) stopBot() {
	if l.botStop != nil {
		l.botStop()
		<-l.botDone
	}
}

// checkOrchestrations: every accepted submission closed once, as expected;
// every approval decided once.
func (l *faultLoad) checkOrchestrations(ctx context.Context, subs []*submission, statuses map[int]wire.RunStatus, res *faultResult) {
	var accepted, closed, succeeded, compensated, approvals, lostAnswers int
	var wrong []string
	l.mu.Lock()
	votes := map[string]vote{}
	for id, v := range l.votes {
		votes[id] = *v
	}
	l.mu.Unlock()
	for _, s := range subs {
		if !s.accepted {
			continue
		}
		accepted++
		st, ok := statuses[s.n]
		if !ok {
			wrong = append(wrong, fmt.Sprintf("%d: not closed (workflow %s; see UNCLOSED above)", s.n, s.id))
			continue
		}
		closed++
		e := expect(s.n)
		if msg := checkRun(s.n, e, st); msg != "" {
			wrong = append(wrong, msg)
		}
		switch st.State {
		case wire.RunSucceeded:
			succeeded++
		case wire.RunCompensated:
			compensated++
		}
		v, voted := votes[s.id]
		if e.approval == "" {
			if voted {
				wrong = append(wrong, fmt.Sprintf("%d: voted on without an approval step", s.n))
			}
			continue
		}
		approvals++
		switch {
		case !voted || v.accepted+v.lostAnswer == 0:
			wrong = append(wrong, fmt.Sprintf("%d: approval never decided (lost)", s.n))
		case v.accepted+v.lostAnswer > 1:
			wrong = append(wrong, fmt.Sprintf("%d: approval decided %d times", s.n, v.accepted+v.lostAnswer))
		}
		lostAnswers += v.lostAnswer
	}
	// Exactly once: the tenant's orchestrations are exactly the accepted
	// ones (a retried submission never started a second one).
	listed, err := l.listWorkflows(ctx)
	if err != nil {
		res.problem("list orchestrations: %v", err)
	} else {
		want := map[string]bool{}
		for _, s := range subs {
			if s.accepted {
				want[s.id] = true
			}
		}
		extra := 0
		for _, w := range listed {
			if !want[w.ID] {
				extra++
			}
		}
		if extra > 0 || len(listed) != len(want) {
			res.problem("orchestrations: %d listed, %d accepted (%d not accepted by any answer)", len(listed), len(want), extra)
		}
	}
	res.accepted = accepted
	res.orchRate = float64(closed) / l.r.cfg.Duration.Seconds()
	res.line("orchestrations\t%d accepted, %d closed exactly once (%d succeeded, %d compensated), %d wrong",
		accepted, closed, succeeded, compensated, len(wrong))
	res.line("approvals\t%d decided by the bot, each once (%d answers lost and found recorded on retry), lost 0, counted twice 0", approvals, lostAnswers)
	if len(wrong) > 0 {
		slices.Sort(wrong)
		res.problem("orchestrations wrong: %s", strings.Join(wrong[:min(len(wrong), 10)], "; "))
	}
}

// checkRun compares one closed orchestration with what its input implies.
func checkRun(n int, e expectation, st wire.RunStatus) string {
	want := e.state
	if e.state == wire.RunFailed {
		want = wire.RunCompensated // the failures of this definition all have compensations
	}
	if st.State != want {
		return fmt.Sprintf("%d: state %s, want %s (error %q)", n, st.State, want, st.Error)
	}
	step := func(id string) *wire.StepStatus {
		for i := range st.Steps {
			if st.Steps[i].ID == id {
				return &st.Steps[i]
			}
		}
		return nil
	}
	if want == wire.RunSucceeded {
		var out struct {
			Reference string `json:"reference"`
			Charge    string `json:"charge"`
			Shipment  string `json:"shipment"`
			Published int    `json:"published"`
			Enriched  int    `json:"enriched"`
		}
		if err := json.Unmarshal(st.Output, &out); err != nil {
			return fmt.Sprintf("%d: output %s: %v", n, st.Output, err)
		}
		ref := "fr-" + strconv.Itoa(n)
		if out.Reference != ref || !strings.HasPrefix(out.Charge, "ch_") || out.Shipment != "shp-"+ref || out.Published != 2 || out.Enriched != 2 {
			return fmt.Sprintf("%d: output %s", n, st.Output)
		}
		// A closed orchestration's status may come from Temporal's record
		// alone (no steps) when no worker answers its query; the votes are
		// then checked through the bot's log and the approval records.
		if e.approval != "" && len(st.Steps) > 0 {
			a := step("manager_approval")
			if a == nil {
				return fmt.Sprintf("%d: no approval step", n)
			}
			var ao struct {
				Decision string            `json:"decision"`
				Votes    []json.RawMessage `json:"votes"`
			}
			if err := json.Unmarshal(a.Output, &ao); err != nil || ao.Decision != "approved" || len(ao.Votes) != 1 {
				return fmt.Sprintf("%d: approval output %s", n, a.Output)
			}
		}
		return ""
	}
	if !strings.HasPrefix(st.Error, "step "+e.failedAt+":") {
		return fmt.Sprintf("%d: error %q, want step %s to fail", n, st.Error, e.failedAt)
	}
	if len(st.Steps) == 0 {
		return "" // Temporal's record alone (see above)
	}
	if f := step(e.failedAt); f == nil || f.State != wire.StepFailed {
		return fmt.Sprintf("%d: step %s did not fail (error %q)", n, e.failedAt, st.Error)
	}
	// The reservation was compensated (released) in every failed run.
	if r := step("reserve"); r == nil || r.State != wire.StepCompensated {
		return fmt.Sprintf("%d: the reservation was not compensated", n)
	}
	return ""
}

// listWorkflows lists every orchestration of the tenant.
func (l *faultLoad) listWorkflows(ctx context.Context) ([]wire.Summary, error) {
	var ids []wire.Summary
	cursor := ""
	for range 10000 {
		q := url.Values{"limit": {"100"}, "definition": {"fr-order"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page wire.Page
		var err error
		for attempt := range 5 {
			var status int
			var b []byte
			status, b, err = l.do(ctx, l.r.ingressURLs[attempt%len(l.r.ingressURLs)], http.MethodGet, "/v1/workflows?"+q.Encode(), l.r.keys.client, nil, nil)
			if err == nil && status != http.StatusOK {
				err = fmt.Errorf("answered %d: %s", status, b)
			}
			if err == nil {
				err = json.Unmarshal(b, &page)
			}
			if err == nil {
				break
			}
			time.Sleep(time.Second)
		}
		if err != nil {
			return nil, err
		}
		ids = append(ids, page.Items...)
		if page.NextCursor == "" {
			return ids, nil
		}
		cursor = page.NextCursor
	}
	return ids, nil
}

// checkCalls: every call a client saw answered is in ClickHouse exactly
// once, nothing is there the clients did not send, and raw FINAL and the
// per-minute rollup agree.
func (l *faultLoad) checkCalls(ctx context.Context, deadline time.Time, res *faultResult) error {
	l.calls.mu.Lock()
	entries := slices.Clone(l.calls.entries)
	l.calls.mu.Unlock()
	answered := map[string]bool{}
	for _, e := range entries {
		if e.answered {
			answered[e.id] = true
		}
	}
	res.answered = len(answered)
	res.callRate = float64(l.calls.answered()) / l.r.cfg.Duration.Seconds()
	// Wait until every answered call is there (or the deadline).
	var counts map[string]int
	for {
		var err error
		counts, err = l.r.recordCounts(ctx)
		missing := 0
		if err == nil {
			for id := range answered {
				if counts[id] == 0 {
					missing++
				}
			}
		}
		if err == nil && missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("read ClickHouse: %w", err)
			}
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	// Let a late duplicate show up, if there were one.
	time.Sleep(3 * time.Second)
	counts, err := l.r.recordCounts(ctx)
	if err != nil {
		return fmt.Errorf("read ClickHouse: %w", err)
	}
	var lost, dups, unseen, phantom int
	var lostIDs []string
	for id := range answered {
		if counts[id] == 0 {
			lost++
			if len(lostIDs) < 5 {
				lostIDs = append(lostIDs, id)
			}
		}
	}
	for id, n := range counts {
		if n > 1 {
			dups++
		}
		if !l.calls.wasSent(id) {
			phantom++
		} else if !answered[id] {
			unseen++
		}
	}
	res.line("calls\t%d answered to the clients: lost %d, duplicated %d (raw rows per request id); %d more stored whose answer the client never got (its connection was killed), %d not sent by a client",
		len(answered), lost, dups, unseen, phantom)
	if lost > 0 {
		res.problem("%d answered calls missing from ClickHouse (e.g. %s)", lost, strings.Join(lostIDs, ", "))
	}
	if dups > 0 {
		res.problem("%d calls stored more than once", dups)
	}
	if phantom > 0 {
		res.problem("%d stored calls no client sent", phantom)
	}
	return l.r.checkMinutes(ctx, res)
}

// recordCounts returns the raw rows per request id of the tenant's
// ingress and gateway (proxy) records.
func (r *faultRun) recordCounts(ctx context.Context) (map[string]int, error) {
	out, err := r.chQuery(ctx, "SELECT labels['request_id'], count() FROM calls WHERE tenant = '"+faultRunTenant+
		"' AND kind IN ('ingress', 'proxy') GROUP BY 1 FORMAT TSV")
	if err != nil {
		return nil, err
	}
	counts := map[string]int{}
	for line := range strings.Lines(out) {
		id, n, ok := strings.Cut(strings.TrimSpace(line), "\t")
		if !ok {
			continue
		}
		c, _ := strconv.Atoi(n)
		counts[id] = c
	}
	return counts, nil
}

// checkMinutes compares, per minute, the raw table (plain and FINAL) with
// the calls_1m rollup for the tenant's ingress and gateway records.
func (r *faultRun) checkMinutes(ctx context.Context, res *faultResult) error {
	out, err := r.chQuery(ctx, `SELECT toString(m), sum(raw), sum(fin), sum(roll) FROM (
	SELECT toStartOfMinute(ts) AS m, count() AS raw, 0 AS fin, 0 AS roll FROM calls WHERE tenant = '`+faultRunTenant+`' AND kind IN ('ingress', 'proxy') GROUP BY m
	UNION ALL SELECT toStartOfMinute(ts), 0, count(), 0 FROM calls FINAL WHERE tenant = '`+faultRunTenant+`' AND kind IN ('ingress', 'proxy') GROUP BY 1
	UNION ALL SELECT minute, 0, 0, sum(calls) FROM calls_1m WHERE tenant = '`+faultRunTenant+`' AND kind IN ('ingress', 'proxy') GROUP BY minute
) GROUP BY m ORDER BY m FORMAT TSV`)
	if err != nil {
		return fmt.Errorf("read ClickHouse: %w", err)
	}
	var minutes, bad int
	var total int64
	for line := range strings.Lines(out) {
		f := strings.Split(strings.TrimSpace(line), "\t")
		if len(f) != 4 {
			continue
		}
		minutes++
		raw, _ := strconv.ParseInt(f[1], 10, 64)
		fin, _ := strconv.ParseInt(f[2], 10, 64)
		roll, _ := strconv.ParseInt(f[3], 10, 64)
		total += fin
		if raw != fin || fin != roll {
			bad++
			res.problem("minute %s: raw %d, FINAL %d, rollup %d", f[0], raw, fin, roll)
		}
	}
	res.line("per minute\t%d minutes: raw = FINAL = calls_1m in %d (%d records)", minutes, minutes-bad, total)
	return nil
}

// checkApprovalRecords: one approval record per decided approval, in the
// raw table and in the rollup. Like the calls, the records are waited for
// (up to the settle deadline): a worker that emitted them while Kafka was
// down keeps them in its spool and replays them with a backoff, so they
// may arrive seconds after the call records (a run whose Kafka kill fell
// at the load's end failed here with the two last approvals' records still
// in a worker's spool).
func (l *faultLoad) checkApprovalRecords(ctx context.Context, subs []*submission, deadline time.Time, res *faultResult) {
	for {
		want, missing, twice, rolled, err := l.approvalRecords(ctx, subs)
		// Wait while some are missing; a duplicate does not go away.
		arrived := err == nil && missing == 0 && rolled >= want
		if arrived || time.Now().After(deadline) || ctx.Err() != nil {
			if err != nil {
				res.problem("read approval records: %v", err)
				return
			}
			res.line("approval records\t%d expected: missing %d, twice %d; calls_1m counts %d", want, missing, twice, rolled)
			if missing > 0 || twice > 0 || rolled != want {
				res.problem("approval records: %d expected, %d missing, %d twice, rollup %d", want, missing, twice, rolled)
			}
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// approvalRecords counts the approval records of the accepted submissions
// that have an approval step: expected, missing, stored twice, and the
// rollup's count.
func (l *faultLoad) approvalRecords(ctx context.Context, subs []*submission) (want, missing, twice, rolled int, err error) {
	out, err := l.r.chQuery(ctx, "SELECT workflow_id, count() FROM calls WHERE tenant = '"+faultRunTenant+
		"' AND kind = 'approval' GROUP BY 1 FORMAT TSV")
	if err != nil {
		return 0, 0, 0, 0, err
	}
	byWF := map[string]int{}
	for line := range strings.Lines(out) {
		wf, n, ok := strings.Cut(strings.TrimSpace(line), "\t")
		if ok {
			c, _ := strconv.Atoi(n)
			byWF[wf] = c
		}
	}
	for _, s := range subs {
		if !s.accepted || expect(s.n).approval == "" {
			continue
		}
		want++
		// Stored workflow ids are the tenant-qualified Temporal ids.
		n := 0
		for wf, c := range byWF {
			if strings.HasSuffix(wf, s.id) {
				n += c
			}
		}
		switch {
		case n == 0:
			missing++
		case n > 1:
			twice++
		}
	}
	roll, err := l.r.chQuery(ctx, "SELECT sum(calls) FROM calls_1m WHERE tenant = '"+faultRunTenant+"' AND kind = 'approval' FORMAT TSV")
	if err != nil {
		return 0, 0, 0, 0, err
	}
	rolled, _ = strconv.Atoi(strings.TrimSpace(roll))
	return want, missing, twice, rolled, nil
}

// chQuery runs a query over ClickHouse's HTTP interface.
func (r *faultRun) chQuery(ctx context.Context, q string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.chHTTP+"/", strings.NewReader(q))
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("ClickHouse: %s: %s", resp.Status, b)
	}
	return string(b), nil
}
