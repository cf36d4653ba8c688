package sysconfig

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/activities/callback"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/wire"
)

// The event-driven sections of gateflow.yaml: schedules, topic triggers,
// webhooks and the callback settings. Each schedule, trigger and webhook
// belongs to a tenant; their names are the keys of their sections.

// Schedule is an entry of the schedules section: a wire.ScheduleSpec
// owned by a tenant. It is created in Temporal (as a Temporal Schedule)
// and kept equal to this entry by the schedules reconciler.
type Schedule struct {
	Name   string `json:"-"`
	Tenant string `json:"tenant"`
	wire.ScheduleSpec
}

// StartAction starts an orchestration for each message or delivery.
type StartAction struct {
	Definition string `json:"definition"`
	// Version is the latest when empty (resolved at each start).
	Version string `json:"version,omitempty"`
	// Input is a template over the message or delivery (input.value,
	// input.body, ...); the whole value or body when empty.
	Input any `json:"input,omitempty"`
}

// EventAction sends an event (to a waiting event step) for each message or
// delivery.
type EventAction struct {
	Name string `json:"name"`
	// Key is a template string giving the correlation key.
	Key string `json:"key"`
	// Payload is a template; the whole value or body when empty.
	Payload any `json:"payload,omitempty"`
	// TTL is how long the event waits for a step (default 24h).
	TTL definition.Duration `json:"ttl,omitempty"`
}

// TopicTrigger is an entry of the triggers section: messages of a Kafka
// topic start orchestrations or send events.
type TopicTrigger struct {
	Name   string `json:"-"`
	Tenant string `json:"tenant"`
	Topic  string `json:"topic"`
	// Group is the consumer group (default gateflow-trigger-<name>).
	Group string `json:"group,omitempty"`
	// StartOffset is where a new group starts: latest (default) or
	// earliest.
	StartOffset string `json:"start_offset,omitempty"`
	// Filter is an expression over input = {topic, partition, offset,
	// key, headers, value, timestamp}; false skips the message.
	Filter string `json:"filter,omitempty"`
	// ID is a template string giving the deduplication key of a message;
	// by default topic/partition/offset, so a redelivered message starts
	// nothing twice. With a key, one orchestration per key.
	ID    string       `json:"id,omitempty"`
	Start *StartAction `json:"start,omitempty"`
	Event *EventAction `json:"event,omitempty"`
	// DeadLetterTopic receives messages that cannot be handled (bad JSON,
	// a failing mapping, an input the definition refuses), with the reason
	// in the gateflow-error header (default <topic>.dlq).
	DeadLetterTopic string `json:"dead_letter_topic,omitempty"`
	// Concurrency bounds the starts in flight per partition (default 8).
	Concurrency int `json:"concurrency,omitempty"`
}

// Webhook is an entry of the webhooks section: POST /v1/hooks/<name>.
type Webhook struct {
	Name   string `json:"-"`
	Tenant string `json:"tenant"`
	// Scheme is how deliveries are signed: github, stripe, standard
	// (Standard Webhooks) or hmac (hex or base64 HMAC-SHA256 of the body
	// in Header).
	Scheme string `json:"scheme"`
	// Secret is a secret reference (${env:NAME} or ${file:/path}); for
	// standard, the whsec_ secret.
	Secret string `json:"secret"`
	// PreviousSecret keeps verifying while a rotated secret rolls out.
	PreviousSecret string `json:"previous_secret,omitempty"`
	// Header, Prefix and Encoding configure the hmac scheme (default
	// X-Signature, no prefix, hex).
	Header   string `json:"header,omitempty"`
	Prefix   string `json:"prefix,omitempty"`
	Encoding string `json:"encoding,omitempty"`
	// Tolerance bounds the age of a signed timestamp (stripe, standard):
	// default 5m.
	Tolerance definition.Duration `json:"tolerance,omitempty"`
	// MaxBodyBytes bounds a delivery (default 1 MiB; 413 beyond).
	MaxBodyBytes int64 `json:"max_body_bytes,omitempty"`
	// DeliveryID is a template string giving the sender's delivery id
	// (deduplication); by default the scheme's (X-GitHub-Delivery, the
	// Stripe event id, webhook-id), else the SHA-256 of the body.
	DeliveryID string `json:"delivery_id,omitempty"`
	// Filter is an expression over input = {hook, delivery_id, headers,
	// body}; false answers 202 and does nothing.
	Filter string       `json:"filter,omitempty"`
	Start  *StartAction `json:"start,omitempty"`
	Event  *EventAction `json:"event,omitempty"`
}

// Webhook signature schemes.
const (
	SchemeGitHub   = "github"
	SchemeStripe   = "stripe"
	SchemeStandard = "standard"
	SchemeHMAC     = "hmac"
)

// Callbacks is the callbacks section: how http steps with a callback reach
// the ingress.
type Callbacks struct {
	// PublicURL is where services reach the ingress, e.g.
	// https://gateflow.example.com.
	PublicURL string `json:"public_url,omitempty"`
	// SigningKey is a secret reference to the key signing callback URLs;
	// PreviousSigningKeys still verify URLs handed out before a rotation.
	SigningKey          string   `json:"signing_key,omitempty"`
	PreviousSigningKeys []string `json:"previous_signing_keys,omitempty"`
}

// Defaults of the event-driven sections.
const (
	DefaultTriggerConcurrency = 8
	MaxTriggerConcurrency     = 1024
	DefaultWebhookTolerance   = 5 * time.Minute
	DefaultWebhookBodyBytes   = 1 << 20
	MaxWebhookBodyBytes       = 16 << 20
	DefaultCatchupWindow      = time.Minute
	// minCatchupWindow is Temporal's lower bound.
	minCatchupWindow = 10 * time.Second
	maxScheduleSpan  = 366 * 24 * time.Hour
)

var (
	// cronParser reads what Temporal's cron strings accept in the common
	// 5-field form, plus the @hourly-style descriptors.
	cronParser  = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	topicName   = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)
	hookHeader  = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
	errNoAction = errors.New("set start or event")
)

// ScheduleProblems checks a schedule spec (of the config or of the API),
// locating problems under path.
func ScheduleProblems(path string, s wire.ScheduleSpec) []definition.Problem {
	var ps []definition.Problem
	add := func(p, format string, args ...any) {
		ps = append(ps, definition.Problem{Path: joinField(path, p), Message: fmt.Sprintf(format, args...)})
	}
	switch {
	case s.Definition == "":
		add("definition", "required")
	case !definition.NamePattern.MatchString(s.Definition):
		add("definition", "must be a definition name")
	}
	if s.Version != "" && !definition.VersionPattern.MatchString(s.Version) {
		add("version", "must be a version")
	}
	switch {
	case s.Cron == "" && s.Interval == "":
		add("cron", "set cron or interval")
	case s.Cron != "" && s.Interval != "":
		add("interval", "set cron or interval, not both")
	case s.Cron != "":
		if strings.HasPrefix(s.Cron, "@every") {
			add("cron", "use interval instead of @every")
		} else if strings.Contains(s.Cron, "TZ=") {
			add("cron", "use timezone instead of a TZ= prefix")
		} else if _, err := cronParser.Parse(s.Cron); err != nil {
			add("cron", "invalid cron expression %q: %v (want 5 fields: minute hour day-of-month month day-of-week, or @hourly, @daily, ...)", s.Cron, err)
		}
		if s.Offset != "" {
			add("offset", "only with interval")
		}
	}
	for _, d := range []struct {
		field string
		v     definition.Duration
		max   time.Duration
	}{{"interval", s.Interval, maxScheduleSpan}, {"offset", s.Offset, maxScheduleSpan}, {"catchup_window", s.CatchupWindow, maxScheduleSpan}, {"jitter", s.Jitter, maxScheduleSpan}} {
		ps = append(ps, definition.DurationProblems(joinField(path, d.field), d.v, d.max)...)
	}
	if iv := s.Interval.Std(); iv > 0 {
		if iv < time.Second {
			add("interval", "must be at least 1s")
		}
		if s.Offset.Std() >= iv {
			add("offset", "must be shorter than interval")
		}
	}
	if cw := s.CatchupWindow.Std(); cw > 0 && cw < minCatchupWindow {
		add("catchup_window", "must be at least %s", minCatchupWindow)
	}
	if s.Timezone != "" {
		if s.Interval != "" {
			add("timezone", "only with cron")
		} else if _, err := time.LoadLocation(s.Timezone); err != nil {
			add("timezone", "unknown time zone %q", s.Timezone)
		}
	}
	if s.Overlap != "" && !slices.Contains(wire.OverlapPolicies(), s.Overlap) {
		add("overlap", "must be one of %s", strings.Join(wire.OverlapPolicies(), ", "))
	}
	if s.Input != nil {
		if _, err := definition.CompileTemplate(s.Input); err != nil {
			add("input", "%v", err)
		}
	}
	if len(s.Note) > 1000 {
		add("note", "longer than 1000 characters")
	}
	return ps
}

func joinField(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

// validateEvents checks the schedules, triggers, webhooks and callbacks
// sections and fills in names.
func (c *Config) validateEvents() []definition.Problem {
	var ps []definition.Problem
	add := func(path, format string, args ...any) {
		ps = append(ps, definition.Problem{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	tenant := func(path, t string) {
		if t == "" {
			add(path+".tenant", "required")
		} else if !definition.NamePattern.MatchString(t) || t == "*" {
			add(path+".tenant", "must be a tenant name")
		}
	}
	for _, name := range sortedKeys(c.Schedules) {
		s := c.Schedules[name]
		s.Name = name
		p := joinPath("schedules", name)
		if !definition.NamePattern.MatchString(name) {
			add(p, "schedule names are letters, digits, '.', '_' or '-'")
		}
		tenant(p, s.Tenant)
		ps = append(ps, ScheduleProblems(p, s.ScheduleSpec)...)
		c.Schedules[name] = s
	}
	topics := map[string]string{}
	for _, name := range sortedKeys(c.Triggers) {
		t := c.Triggers[name]
		t.Name = name
		p := joinPath("triggers", name)
		if !definition.NamePattern.MatchString(name) {
			add(p, "trigger names are letters, digits, '.', '_' or '-'")
		}
		tenant(p, t.Tenant)
		switch {
		case t.Topic == "":
			add(p+".topic", "required")
		case !topicName.MatchString(t.Topic):
			add(p+".topic", "not a Kafka topic name")
		}
		if t.DeadLetterTopic != "" && (!topicName.MatchString(t.DeadLetterTopic) || t.DeadLetterTopic == t.Topic) {
			add(p+".dead_letter_topic", "must be a Kafka topic name other than topic")
		}
		switch t.StartOffset {
		case "", "latest", "earliest":
		default:
			add(p+".start_offset", "must be latest or earliest")
		}
		if t.Concurrency < 0 || t.Concurrency > MaxTriggerConcurrency {
			add(p+".concurrency", "must be between 1 and %d", MaxTriggerConcurrency)
		}
		group := t.ConsumerGroup()
		if other, dup := topics[group]; dup {
			add(p+".group", "consumer group %q is also used by trigger %s", group, other)
		}
		topics[group] = name
		ps = append(ps, exprProblems(p+".filter", t.Filter, true)...)
		ps = append(ps, exprProblems(p+".id", t.ID, false)...)
		ps = append(ps, actionProblems(p, t.Start, t.Event)...)
		c.Triggers[name] = t
	}
	for _, name := range sortedKeys(c.Webhooks) {
		w := c.Webhooks[name]
		w.Name = name
		p := joinPath("webhooks", name)
		if !definition.NamePattern.MatchString(name) {
			add(p, "webhook names are letters, digits, '.', '_' or '-'")
		}
		tenant(p, w.Tenant)
		switch w.Scheme {
		case SchemeGitHub, SchemeStripe, SchemeStandard:
			if w.Header != "" || w.Prefix != "" || w.Encoding != "" {
				add(p+".header", "header, prefix and encoding only with scheme hmac")
			}
		case SchemeHMAC:
			if w.Header != "" && !hookHeader.MatchString(w.Header) {
				add(p+".header", "not a valid header name")
			}
			if w.Encoding != "" && w.Encoding != "hex" && w.Encoding != "base64" {
				add(p+".encoding", "must be hex or base64")
			}
		case "":
			add(p+".scheme", "required (github, stripe, standard or hmac)")
		default:
			add(p+".scheme", "must be github, stripe, standard or hmac")
		}
		for field, v := range map[string]string{"secret": w.Secret, "previous_secret": w.PreviousSecret} {
			if v == "" {
				if field == "secret" {
					add(p+".secret", "required (a secret reference: ${env:NAME} or ${file:/path})")
				}
				continue
			}
			if !isSecretRef(v) {
				add(p+"."+field, "must be a secret reference, ${env:NAME} or ${file:/path}, not the secret itself")
			}
		}
		ps = append(ps, definition.DurationProblems(p+".tolerance", w.Tolerance, 24*time.Hour)...)
		if w.MaxBodyBytes < 0 || w.MaxBodyBytes > MaxWebhookBodyBytes {
			add(p+".max_body_bytes", "must be between 1 and %d", MaxWebhookBodyBytes)
		}
		ps = append(ps, exprProblems(p+".filter", w.Filter, true)...)
		ps = append(ps, exprProblems(p+".delivery_id", w.DeliveryID, false)...)
		ps = append(ps, actionProblems(p, w.Start, w.Event)...)
		c.Webhooks[name] = w
	}
	cb := c.Callbacks
	if cb.PublicURL != "" {
		if err := definition.CheckHTTPURL(cb.PublicURL); err != nil {
			add("callbacks.public_url", "%v", err)
		}
	}
	if cb.SigningKey != "" && !isSecretRef(cb.SigningKey) {
		add("callbacks.signing_key", "must be a secret reference, ${env:NAME} or ${file:/path}, not the key itself")
	}
	if (cb.SigningKey == "") != (cb.PublicURL == "") {
		add("callbacks", "public_url and signing_key go together")
	}
	for i, k := range cb.PreviousSigningKeys {
		if !isSecretRef(k) {
			add(fmt.Sprintf("callbacks.previous_signing_keys[%d]", i), "must be a secret reference")
		}
	}
	return ps
}

// exprProblems checks a filter (bare expression) or a template string.
func exprProblems(path, src string, bare bool) []definition.Problem {
	if src == "" {
		return nil
	}
	var err error
	if bare {
		_, err = definition.CompileExpr(src)
	} else {
		_, err = definition.CompileTemplate(src)
	}
	if err != nil {
		return []definition.Problem{{Path: path, Message: err.Error()}}
	}
	return nil
}

// actionProblems checks that exactly one of start and event is set, and
// each's fields.
func actionProblems(path string, start *StartAction, event *EventAction) []definition.Problem {
	var ps []definition.Problem
	add := func(p, format string, args ...any) {
		ps = append(ps, definition.Problem{Path: p, Message: fmt.Sprintf(format, args...)})
	}
	switch {
	case start == nil && event == nil:
		add(path+".start", "%v", errNoAction)
	case start != nil && event != nil:
		add(path+".event", "set start or event, not both")
	}
	if start != nil {
		switch {
		case start.Definition == "":
			add(path+".start.definition", "required")
		case !definition.NamePattern.MatchString(start.Definition):
			add(path+".start.definition", "must be a definition name")
		}
		if start.Version != "" && !definition.VersionPattern.MatchString(start.Version) {
			add(path+".start.version", "must be a version")
		}
		if start.Input != nil {
			if _, err := definition.CompileTemplate(start.Input); err != nil {
				add(path+".start.input", "%v", err)
			}
		}
	}
	if event != nil {
		if !definition.EventNamePattern.MatchString(event.Name) {
			add(path+".event.name", "must be an event name (letters, digits, '.', '_', ':', '-')")
		}
		if event.Key == "" {
			add(path+".event.key", "required")
		}
		ps = append(ps, exprProblems(path+".event.key", event.Key, false)...)
		if event.Payload != nil {
			if _, err := definition.CompileTemplate(event.Payload); err != nil {
				add(path+".event.payload", "%v", err)
			}
		}
		ps = append(ps, definition.DurationProblems(path+".event.ttl", event.TTL, 7*24*time.Hour)...)
	}
	return ps
}

// isSecretRef reports whether v is exactly one secret reference.
func isSecretRef(v string) bool {
	if !strings.HasPrefix(v, "${") || !strings.HasSuffix(v, "}") || strings.Count(v, "${") != 1 {
		return false
	}
	return checkSecretRefs(v) == nil
}

// ConsumerGroup is the trigger's Kafka consumer group.
func (t TopicTrigger) ConsumerGroup() string {
	if t.Group != "" {
		return t.Group
	}
	return "gateflow-trigger-" + t.Name
}

// DLQTopic is the trigger's dead-letter topic.
func (t TopicTrigger) DLQTopic() string {
	if t.DeadLetterTopic != "" {
		return t.DeadLetterTopic
	}
	return t.Topic + ".dlq"
}

// InFlight is the number of starts in flight per partition.
func (t TopicTrigger) InFlight() int {
	if t.Concurrency <= 0 {
		return DefaultTriggerConcurrency
	}
	return t.Concurrency
}

// TimestampTolerance is how old a signed timestamp may be.
func (w Webhook) TimestampTolerance() time.Duration {
	if d := w.Tolerance.Std(); d > 0 {
		return d
	}
	return DefaultWebhookTolerance
}

// BodyLimit is the largest delivery accepted.
func (w Webhook) BodyLimit() int64 {
	if w.MaxBodyBytes > 0 {
		return w.MaxBodyBytes
	}
	return DefaultWebhookBodyBytes
}

// Secrets resolves the webhook's secret references (current first).
// Errors name the reference, never a value.
func (w Webhook) Secrets() ([][]byte, error) {
	var out [][]byte
	for _, ref := range []string{w.Secret, w.PreviousSecret} {
		if ref == "" {
			continue
		}
		v, err := activities.ResolveSecrets(ref)
		if err != nil {
			return nil, fmt.Errorf("webhook %s: %w", w.Name, err)
		}
		if v == "" {
			return nil, fmt.Errorf("webhook %s: secret %s is empty", w.Name, ref)
		}
		out = append(out, []byte(v))
	}
	return out, nil
}

// Schedules lists the schedules of the config, by name.
func (s *Snapshot) Schedules() []Schedule {
	out := make([]Schedule, 0, len(s.cfg.Schedules))
	for _, k := range sortedKeys(s.cfg.Schedules) {
		out = append(out, s.cfg.Schedules[k])
	}
	return out
}

// TopicTriggers lists the topic triggers, by name.
func (s *Snapshot) TopicTriggers() []TopicTrigger {
	out := make([]TopicTrigger, 0, len(s.cfg.Triggers))
	for _, k := range sortedKeys(s.cfg.Triggers) {
		out = append(out, s.cfg.Triggers[k])
	}
	return out
}

// Webhooks lists the webhooks, by name.
func (s *Snapshot) Webhooks() []Webhook {
	out := make([]Webhook, 0, len(s.cfg.Webhooks))
	for _, k := range sortedKeys(s.cfg.Webhooks) {
		out = append(out, s.cfg.Webhooks[k])
	}
	return out
}

// Webhook returns the webhook of that name.
func (s *Snapshot) Webhook(name string) (Webhook, bool) {
	w, ok := s.cfg.Webhooks[name]
	return w, ok
}

// CallbackSettings resolves the callback settings of the current
// configuration (keys read from their secret references now, so that a
// rotation applies at once). No public URL or key: empty settings.
func (r *Registry) CallbackSettings() (callback.Settings, error) {
	cb := r.Current().cfg.Callbacks
	if cb.SigningKey == "" {
		return callback.Settings{}, nil
	}
	s := callback.Settings{BaseURL: cb.PublicURL}
	for _, ref := range append([]string{cb.SigningKey}, cb.PreviousSigningKeys...) {
		v, err := activities.ResolveSecrets(ref)
		if err != nil {
			return callback.Settings{}, fmt.Errorf("callbacks: %w", err)
		}
		if v == "" {
			return callback.Settings{}, fmt.Errorf("callbacks: signing key %s is empty", ref)
		}
		s.Keys = append(s.Keys, []byte(v))
	}
	return s, nil
}
