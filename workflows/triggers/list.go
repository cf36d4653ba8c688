package triggers

import (
	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/workflows/wire"
)

// HookPath is the route of a webhook.
func HookPath(name string) string { return "/v1/hooks/" + name }

// List describes the tenant's topic triggers and webhooks (no secrets);
// another tenant's are not listed.
func List(snap *sysconfig.Snapshot, tenant string) wire.Triggers {
	out := wire.Triggers{Items: []wire.Trigger{}}
	describe := func(t *wire.Trigger, start *sysconfig.StartAction, event *sysconfig.EventAction) {
		if start != nil {
			t.Starts = start.Definition
			if start.Version != "" {
				t.Starts += "@" + start.Version
			}
		}
		if event != nil {
			t.Event = event.Name
		}
	}
	for _, tr := range snap.TopicTriggers() {
		if tr.Tenant != tenant {
			continue
		}
		t := wire.Trigger{Name: tr.Name, Kind: "topic", Topic: tr.Topic, Filter: tr.Filter}
		describe(&t, tr.Start, tr.Event)
		out.Items = append(out.Items, t)
	}
	for _, w := range snap.Webhooks() {
		if w.Tenant != tenant {
			continue
		}
		t := wire.Trigger{Name: w.Name, Kind: "webhook", Path: HookPath(w.Name), Scheme: w.Scheme, Filter: w.Filter}
		describe(&t, w.Start, w.Event)
		out.Items = append(out.Items, t)
	}
	return out
}
