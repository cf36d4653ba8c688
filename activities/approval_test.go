package activities_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/analytics/record"
	"github.com/gateflow/gateflow/analytics/record/recordtest"
)

func TestApprovalRecord(t *testing.T) {
	since := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	base := activities.ApprovalRecord{
		StepRef:      activities.StepRef{Meta: activities.RunMeta{Tenant: "acme", Definition: "orders", Version: "2"}, StepID: "fanout[1].approve"},
		WorkflowID:   "wf-1",
		RunID:        "run-1",
		KeyID:        "k-ann",
		User:         "ann",
		Roles:        []string{"manager", "finance"},
		WaitingSince: since,
		DecidedAt:    since.Add(90 * time.Second),
	}
	for _, tc := range []struct {
		decision string
		outcome  record.Outcome
	}{
		{activities.ApprovalApprove, record.OutcomeOK},
		{activities.ApprovalReject, record.OutcomeRejected},
		{activities.ApprovalTimeout, record.OutcomeTimeout},
	} {
		recs := &recordtest.Sink{}
		a := activities.NewApprovalActivity(recs)
		in := base
		in.Decision = tc.decision
		if err := a.Record(t.Context(), in); err != nil {
			t.Fatal(err)
		}
		// The same vote recorded again by a re-run workflow task, whose
		// time is later (its worker was killed after the first record).
		again := in
		again.DecidedAt = in.DecidedAt.Add(10 * time.Second)
		if err := a.Record(t.Context(), again); err != nil {
			t.Fatal(err)
		}
		got := recs.All()
		if len(got) != 2 {
			t.Fatalf("%d records", len(got))
		}
		r := got[0]
		if err := r.Validate(); err != nil {
			t.Fatal(err)
		}
		if r.ID != got[1].ID {
			t.Errorf("the same vote got two ids %s %s", r.ID, got[1].ID)
		}
		id := uuid.MustParse(r.ID)
		if id.Version() != 7 {
			t.Errorf("id version %d", id.Version())
		}
		if sec, _ := id.Time().UnixTime(); sec != base.WaitingSince.Unix() {
			t.Errorf("id time %d", sec)
		}
		if r.Kind != calls.KindApproval || r.Outcome != tc.outcome || r.LatencyMS != 90000 || r.TS != since.UnixMilli() ||
			r.Tenant != "acme" || r.KeyID != "k-ann" || r.StepID != "fanout[1].approve" || r.WorkflowID != "wf-1" ||
			r.Labels["roles"] != "manager,finance" || r.Labels["decision"] != tc.decision || r.Labels["user"] != "ann" {
			t.Errorf("record %+v", r)
		}
	}
	if err := activities.NewApprovalActivity(nil).Record(t.Context(), activities.ApprovalRecord{Decision: "maybe"}); err == nil {
		t.Error("unknown decision accepted")
	}
}
