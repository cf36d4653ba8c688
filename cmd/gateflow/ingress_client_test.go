package main

import (
	"strings"
	"testing"

	"github.com/gateflow/gateflow/ingress/client"
	"github.com/gateflow/gateflow/workflows"
)

func TestPrintStatusApprovers(t *testing.T) {
	cases := []struct {
		approvers workflows.Approvers
		want      string
	}{
		{workflows.Approvers{Roles: []string{"manager"}}, "step s (roles manager, 0 of 2 votes)"},
		{workflows.Approvers{Users: []string{"alice", "bob"}}, "step s (users alice,bob, 0 of 2 votes)"},
		{workflows.Approvers{Roles: []string{"manager", "finance"}, Users: []string{"carol"}}, "step s (roles manager,finance; users carol, 0 of 2 votes)"},
		{workflows.Approvers{}, "step s (anyone, 0 of 2 votes)"},
	}
	for _, c := range cases {
		var st client.Status
		st.State = workflows.RunRunning
		st.Pending = []workflows.PendingApproval{{StepID: "s", Approvers: c.approvers, Quorum: 2}}
		var b strings.Builder
		if err := printStatus(&b, st); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), "waiting for approval: "+c.want+"\n") {
			t.Errorf("%+v: got\n%s", c.approvers, b.String())
		}
	}
}
