package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/gateflow/gateflow/workflows/orchestrator"
)

// diagnoseLastEvents is how many of an unclosed orchestration's last
// history events the diagnosis prints.
const diagnoseLastEvents = 12

// diagnoseUnclosed asks the run's Temporal server about each accepted
// orchestration that did not close within the settle bound: its status,
// pending workflow task and activities (attempt, state, heartbeat, the
// worker that holds it, timeouts) and its last history events. It goes to
// the run's output and to unclosed.txt in the run's directory, so that a
// CI failure is diagnosed from its log alone.
func (l *faultLoad) diagnoseUnclosed(ctx context.Context, subs []*submission) {
	if len(subs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c, err := l.r.dialTemporal(ctx)
	if err != nil {
		l.r.logf("unclosed orchestrations: cannot ask Temporal: %v", err)
		return
	}
	defer c.Close()
	var b strings.Builder
	for i, s := range subs {
		if i == 5 {
			fmt.Fprintf(&b, "(%d more unclosed orchestrations not described)\n", len(subs)-i)
			break
		}
		describeWorkflow(ctx, c, &b, s, time.Now())
	}
	for line := range strings.Lines(b.String()) {
		l.r.logf("%s", strings.TrimRight(line, "\n"))
	}
	_ = os.WriteFile(filepath.Join(l.r.dir, "unclosed.txt"), []byte(b.String()), 0o640)
}

// dialTemporal connects to the run's Temporal server (the diagnoses read
// histories the API does not show).
func (r *faultRun) dialTemporal(ctx context.Context) (client.Client, error) {
	return client.DialContext(ctx, client.Options{HostPort: r.temporalHost, Namespace: "default",
		Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
}

// history reads a workflow's whole history.
func history(ctx context.Context, c client.Client, wfID string) ([]*historypb.HistoryEvent, error) {
	var events []*historypb.HistoryEvent
	it := c.GetWorkflowHistory(ctx, wfID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return events, err
		}
		events = append(events, e)
	}
	return events, nil
}

// timeoutsLine counts, over the histories of the accepted orchestrations,
// the activity attempts and workflow tasks that timed out: the tasks a
// killed worker (or a restarted Temporal server) held, and how long the
// longest of them kept its orchestration waiting (from the attempt's
// start, or its scheduling, to the timeout). A timeout type that ends an
// attempt only after minutes is what keeps an orchestration open.
func (l *faultLoad) timeoutsLine(ctx context.Context, subs []*submission, res *faultResult) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	c, err := l.r.dialTemporal(ctx)
	if err != nil {
		res.line("timeouts\tcannot ask Temporal: %v", err)
		return
	}
	defer c.Close()
	byKind := map[string]int{}
	var activities, tasks int
	var longest time.Duration
	var longestWhat string
	for _, s := range subs {
		if !s.accepted {
			continue
		}
		events, err := history(ctx, c, orchestrator.WorkflowID(faultRunTenant, s.id))
		if err != nil {
			res.line("timeouts\tcannot read a history: %v", err)
			return
		}
		at := map[int64]*historypb.HistoryEvent{}
		for _, e := range events {
			at[e.GetEventId()] = e
			var from *historypb.HistoryEvent
			var what string
			switch e.GetEventType() {
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
				a := e.GetActivityTaskTimedOutEventAttributes()
				sched := at[a.GetScheduledEventId()]
				what = sched.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() + " " +
					timeoutName(a.GetFailure().GetTimeoutFailureInfo().GetTimeoutType())
				from = sched
				if st := at[a.GetStartedEventId()]; st != nil {
					from = st
				}
				activities++
			case enumspb.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
				a := e.GetWorkflowTaskTimedOutEventAttributes()
				what = "workflow task " + timeoutName(a.GetTimeoutType())
				from = at[a.GetScheduledEventId()]
				if st := at[a.GetStartedEventId()]; st != nil {
					from = st
				}
				tasks++
			default:
				continue
			}
			byKind[what]++
			if from != nil {
				if d := e.GetEventTime().AsTime().Sub(from.GetEventTime().AsTime()); d > longest {
					longest, longestWhat = d, fmt.Sprintf("%s of orchestration %d", what, s.n)
				}
			}
		}
	}
	kinds := make([]string, 0, len(byKind))
	for k, n := range byKind {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	slices.Sort(kinds)
	line := fmt.Sprintf("timeouts\t%d activity attempts and %d workflow tasks timed out (tasks a killed part held)", activities, tasks)
	if len(kinds) > 0 {
		line += fmt.Sprintf(": %s; longest wait %s (%s)", strings.Join(kinds, ", "), longest.Round(100*time.Millisecond), longestWhat)
	}
	res.line("%s", line)
}

// timeoutName is t as the run's output says it ("starttoclose").
func timeoutName(t enumspb.TimeoutType) string {
	return strings.ToLower(strings.TrimPrefix(t.String(), "TIMEOUT_TYPE_"))
}

// describeWorkflow writes what Temporal knows of submission s's workflow.
func describeWorkflow(ctx context.Context, c client.Client, b *strings.Builder, s *submission, now time.Time) {
	wfID := orchestrator.WorkflowID(faultRunTenant, s.id)
	fmt.Fprintf(b, "UNCLOSED orchestration %d: workflow %s\n", s.n, wfID)
	d, err := c.DescribeWorkflowExecution(ctx, wfID, "")
	if err != nil {
		fmt.Fprintf(b, "  describe: %v\n", err)
		return
	}
	info := d.GetWorkflowExecutionInfo()
	fmt.Fprintf(b, "  status %s, started %s ago, %d history events\n",
		info.GetStatus(), ago(now, info.GetStartTime().AsTime()), info.GetHistoryLength())
	if wt := d.GetPendingWorkflowTask(); wt != nil {
		fmt.Fprintf(b, "  pending workflow task: %s, attempt %d, scheduled %s ago, started %s\n",
			wt.GetState(), wt.GetAttempt(), ago(now, wt.GetScheduledTime().AsTime()), agoOrNever(now, wt.GetStartedTime().AsTime()))
	}
	for _, a := range d.GetPendingActivities() {
		fmt.Fprintf(b, "  pending activity %s (id %s): %s, attempt %d/%d, scheduled %s, last started %s, last heartbeat %s, by %q",
			a.GetActivityType().GetName(), a.GetActivityId(), a.GetState(), a.GetAttempt(), a.GetMaximumAttempts(),
			agoOrNever(now, a.GetScheduledTime().AsTime()), agoOrNever(now, a.GetLastStartedTime().AsTime()),
			agoOrNever(now, a.GetLastHeartbeatTime().AsTime()), a.GetLastWorkerIdentity())
		if f := a.GetLastFailure(); f != nil {
			fmt.Fprintf(b, ", last failure %q", f.GetMessage())
		}
		b.WriteString("\n")
	}
	// The history carries the timeouts of each scheduled activity: the one
	// that bounds a dead worker's attempt is the first thing to read.
	events, err := history(ctx, c, wfID)
	if err != nil {
		fmt.Fprintf(b, "  history: %v\n", err)
	}
	if len(events) > diagnoseLastEvents {
		events = events[len(events)-diagnoseLastEvents:]
	}
	for _, e := range events {
		fmt.Fprintf(b, "  event %d %s ago: %s%s\n", e.GetEventId(), ago(now, e.GetEventTime().AsTime()), e.GetEventType(), eventDetail(e))
	}
}

// eventDetail is what matters of one event for a stuck orchestration.
func eventDetail(e *historypb.HistoryEvent) string {
	switch e.GetEventType() {
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
		a := e.GetActivityTaskScheduledEventAttributes()
		return fmt.Sprintf(" %s (id %s), start-to-close %s, heartbeat %s, schedule-to-close %s",
			a.GetActivityType().GetName(), a.GetActivityId(), a.GetStartToCloseTimeout().AsDuration(),
			a.GetHeartbeatTimeout().AsDuration(), a.GetScheduleToCloseTimeout().AsDuration())
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
		a := e.GetActivityTaskStartedEventAttributes()
		return fmt.Sprintf(" (scheduled event %d) attempt %d by %q", a.GetScheduledEventId(), a.GetAttempt(), a.GetIdentity())
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
		a := e.GetActivityTaskTimedOutEventAttributes()
		return fmt.Sprintf(" (scheduled event %d): %s", a.GetScheduledEventId(), a.GetFailure().GetMessage())
	case enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED:
		return fmt.Sprintf(" by %q", e.GetWorkflowTaskStartedEventAttributes().GetIdentity())
	case enumspb.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
		return " " + e.GetWorkflowTaskTimedOutEventAttributes().GetTimeoutType().String()
	case enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED:
		return " " + e.GetWorkflowTaskFailedEventAttributes().GetFailure().GetMessage()
	case enumspb.EVENT_TYPE_TIMER_STARTED:
		return " " + e.GetTimerStartedEventAttributes().GetStartToFireTimeout().AsDuration().String()
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
		return " " + e.GetWorkflowExecutionSignaledEventAttributes().GetSignalName()
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
		return " " + e.GetWorkflowExecutionUpdateAcceptedEventAttributes().GetAcceptedRequest().GetInput().GetName()
	}
	return ""
}

// ago is how long before now t was, to the tenth of a second.
func ago(now, t time.Time) string { return now.Sub(t).Round(100 * time.Millisecond).String() }

// agoOrNever is "<ago> ago", or "never" for an unset time.
func agoOrNever(now, t time.Time) string {
	if t.IsZero() || t.Unix() <= 0 {
		return "never"
	}
	return ago(now, t) + " ago"
}
