package sysconfig

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/gateflow/gateflow/workflows/wire"
)

// TestEventSectionsProblems: every bad schedule, trigger, webhook and
// callback setting is reported with its path.
func TestEventSectionsProblems(t *testing.T) {
	dir := copyExamples(t)
	writeFile(t, filepath.Join(dir, ConfigFile), `
schedules:
  badcron: {tenant: dev, definition: hello, cron: "61 * * * *"}
  both: {tenant: dev, definition: hello, cron: "@daily", interval: 1m}
  short: {definition: hello, interval: 10ms, overlap: sometimes, catchup_window: 1s, timezone: Mars/Base}
  tmpl: {tenant: dev, definition: hello, interval: 1h, input: {a: "${{ input. }}"}}
triggers:
  t1: {tenant: dev, topic: "bad topic!", filter: "input.value ==", start: {definition: hello}, event: {name: x, key: k}}
  t2: {tenant: dev, topic: orders}
  t3: {tenant: dev, topic: orders, group: gateflow-trigger-t2, event: {name: "bad name", key: ""}}
webhooks:
  h1: {tenant: dev, scheme: github, secret: "plain-text-secret", start: {definition: hello}}
  h2: {tenant: dev, scheme: sha1, secret: "${env:X}", event: {name: e, key: "${{ input.body.id }}"}}
  h3: {tenant: dev, scheme: hmac, secret: "${env:X}", encoding: base32, header: "bad header", start: {definition: hello}, max_body_bytes: -1}
callbacks:
  public_url: ftp://x
  signing_key: letmein
`)
	_, err := Load(dir)
	got := problemsOf(t, err)
	want := []string{
		`schedules.badcron.cron: invalid cron expression "61 * * * *"`,
		"schedules.both.interval: set cron or interval, not both",
		"schedules.short.tenant: required",
		"schedules.short.interval: must be at least 1s",
		"schedules.short.overlap: must be one of skip, buffer_one",
		"schedules.short.catchup_window: must be at least 10s",
		"schedules.short.timezone: only with cron",
		"schedules.tmpl.input: expression",
		"triggers.t1.topic: not a Kafka topic name",
		"triggers.t1.filter: expression",
		"triggers.t1.event: set start or event, not both",
		"triggers.t2.start: set start or event",
		`triggers.t3.group: consumer group "gateflow-trigger-t2" is also used by trigger t2`,
		"triggers.t3.event.name: must be an event name",
		"triggers.t3.event.key: required",
		"webhooks.h1.secret: must be a secret reference",
		"webhooks.h2.scheme: must be github, stripe, standard or hmac",
		"webhooks.h3.encoding: must be hex or base64",
		"webhooks.h3.header: not a valid header name",
		"webhooks.h3.max_body_bytes: must be between 1 and",
		"callbacks.public_url: must be an absolute http:// or https:// URL",
		"callbacks.signing_key: must be a secret reference",
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || strings.Contains(g, "gateflow.yaml: "+w)
		}
		if !found {
			t.Errorf("missing %q in:\n%s", w, strings.Join(got, "\n"))
		}
	}
	for _, g := range got {
		if strings.Contains(g, "plain-text-secret") || strings.Contains(g, "letmein") {
			t.Errorf("a problem quotes a secret: %s", g)
		}
	}
}

func TestScheduleProblemsAccepts(t *testing.T) {
	for _, s := range []wire.ScheduleSpec{
		{Definition: "hello", Cron: "*/5 * * * *"},
		{Definition: "hello", Cron: "@hourly", Timezone: "Europe/Paris", Overlap: wire.OverlapBufferOne},
		{Definition: "hello", Version: "2", Interval: "1m", Offset: "10s", CatchupWindow: "1h", Jitter: "5s",
			Input: map[string]any{"day": "${{ input.scheduled_time }}"}},
	} {
		if ps := ScheduleProblems("", s); len(ps) != 0 {
			t.Errorf("%+v: %v", s, ps)
		}
	}
}

func TestWebhookSecretsResolved(t *testing.T) {
	t.Setenv("GATEFLOW_TEST_HOOK", "s3cret")
	w := Webhook{Name: "h", Secret: "${env:GATEFLOW_TEST_HOOK}", PreviousSecret: "${env:GATEFLOW_TEST_UNSET_HOOK}"}
	if _, err := w.Secrets(); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("unset previous secret: %v", err)
	}
	w.PreviousSecret = ""
	got, err := w.Secrets()
	if err != nil || len(got) != 1 || string(got[0]) != "s3cret" {
		t.Errorf("secrets %q, %v", got, err)
	}
}
