//go:build integration

package worker_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/gateflow/gateflow/worker"
	"github.com/gateflow/gateflow/workflows"
)

// visibilityCost counts the history events an orchestration spends on
// visibility, by cause.
type visibilityCost struct {
	VersionMarkers  int // MarkerRecorded "Version" (workflow.GetVersion)
	VersionUpserts  int // the SDK's TemporalChangeVersion upsert
	AwaitingUpserts int // GateflowAwaiting set or removed
	MemoUpserts     int // WorkflowPropertiesModified (memo state)
	OtherUpserts    int // any other search attribute upsert
	Votes           int // accepted updates (votes), checked apart
}

// TestVisibilityHistoryCost holds docs/WORKFLOWS.md's "Cost per run: 2
// history events for the version (its marker and the SDK's
// TemporalChangeVersion upsert), 2 more for the self-approval version at
// the first approval step, 1 per change of the awaited set (2 for a
// plain approval step), 1 for the memo on a non-successful close" and "a
// vote that does not decide a step costs nothing" to the histories of
// real runs on a server.
func TestVisibilityHistoryCost(t *testing.T) {
	ts := newServer(t)
	c := ts.GetDefaultClient()
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"ok": true}`)
	}))
	defer svc.Close()
	startWorker(t, c, "viscost", worker.Deps{Services: staticServices{"svc": svc.URL}})

	manager := func(user string) workflows.Identity {
		return workflows.Identity{KeyID: "k-" + user, User: user, Roles: []string{"manager"}}
	}
	vote := func(user string, d string) func(t *testing.T, id string) {
		return func(t *testing.T, id string) {
			decideUpdate(t, c, id, workflows.Decision{StepID: "approve", Decision: d, By: manager(user)})
		}
	}
	cases := []struct {
		name  string
		def   string
		votes []func(t *testing.T, id string)
		fails bool
		want  visibilityCost
	}{
		{name: "no approval", def: `{"steps": [{"id": "a", "kind": "http", "service": "svc", "path": "/a"}]}`,
			want: visibilityCost{VersionMarkers: 1, VersionUpserts: 1}},
		{name: "plain approval, approved", def: `{"steps": [{"id": "approve", "kind": "approval", "approvers": {"roles": ["manager"]}}]}`,
			votes: []func(*testing.T, string){vote("ann", workflows.Approve)},
			want:  visibilityCost{VersionMarkers: 2, VersionUpserts: 2, AwaitingUpserts: 2}},
		// The first vote leaves the awaited set as it is: no event.
		{name: "quorum of two, two votes", def: `{"steps": [{"id": "approve", "kind": "approval", "approvers": {"roles": ["manager"]}, "quorum": 2}]}`,
			votes: []func(*testing.T, string){vote("ann", workflows.Approve), vote("bob", workflows.Approve)},
			want:  visibilityCost{VersionMarkers: 2, VersionUpserts: 2, AwaitingUpserts: 2}},
		{name: "rejected: the run fails", def: `{"steps": [{"id": "approve", "kind": "approval", "approvers": {"roles": ["manager"]}}]}`,
			votes: []func(*testing.T, string){vote("ann", workflows.Reject)}, fails: true,
			want: visibilityCost{VersionMarkers: 2, VersionUpserts: 2, AwaitingUpserts: 2, MemoUpserts: 1}},
		// Escalation widens the approvers: one more change of the set.
		{name: "escalated, then approved", def: `{"steps": [{"id": "approve", "kind": "approval", "approvers": {"users": ["ann"]},
			"timeout": "300ms", "on_timeout": "escalate", "escalate_to": {"roles": ["manager"]}, "escalation_timeout": "1h"}]}`,
			votes: []func(*testing.T, string){func(t *testing.T, id string) {
				waitFor(t, 20*time.Second, "the escalation", func() bool {
					st := queryStatus(t, c, id)
					return len(st.Pending) == 1 && st.Pending[0].Escalated
				})
				vote("bob", workflows.Approve)(t, id)
			}},
			want: visibilityCost{VersionMarkers: 2, VersionUpserts: 2, AwaitingUpserts: 3}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("viscost-%d", i)
			run := start(t, c, "viscost", id, orchestration(mustDef(t, tc.def), `{}`))
			for _, v := range tc.votes {
				waitPending(t, c, id, "approve")
				v(t, id)
			}
			_, err := resultOf(t, run, 30*time.Second)
			if (err != nil) != tc.fails {
				t.Fatalf("run error %v, want failure %v", err, tc.fails)
			}
			got := countVisibilityEvents(t, c, id, run.GetRunID())
			t.Logf("%+v", got)
			votes := got.Votes
			got.Votes = 0
			if got != tc.want {
				t.Errorf("visibility events %+v, want %+v", got, tc.want)
			}
			if votes != len(tc.votes) {
				t.Errorf("%d votes in the history, want %d", votes, len(tc.votes))
			}
		})
	}
}

// countVisibilityEvents reads a run's history and counts its visibility
// events by cause.
func countVisibilityEvents(t *testing.T, c client.Client, id, runID string) visibilityCost {
	t.Helper()
	var n visibilityCost
	it := c.GetWorkflowHistory(context.Background(), id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", id, err)
		}
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_MARKER_RECORDED:
			if ev.GetMarkerRecordedEventAttributes().GetMarkerName() == "Version" {
				n.VersionMarkers++
			}
		case enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
			fields := ev.GetUpsertWorkflowSearchAttributesEventAttributes().GetSearchAttributes().GetIndexedFields()
			_, version := fields["TemporalChangeVersion"]
			_, awaiting := fields[workflows.SearchAttrAwaiting]
			switch {
			case version && !awaiting && len(fields) == 1:
				n.VersionUpserts++
			case awaiting && !version && len(fields) == 1:
				n.AwaitingUpserts++
			default:
				n.OtherUpserts++
			}
		case enumspb.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED:
			n.MemoUpserts++
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
			n.Votes++
		}
	}
	return n
}
