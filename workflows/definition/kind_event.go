package definition

import (
	"regexp"
	"time"
)

// What an event step does when its timeout passes without an event: fail
// (default, running compensations), or succeed with a null output so that
// later steps branch on steps.<id>.output == nil.
const (
	OnTimeoutFail     = "fail"
	OnTimeoutContinue = "continue"
)

// EventNamePattern is the format of event names (the event field of an
// event step, the name of an event sent to POST /v1/events).
var EventNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// MaxCorrelationKey bounds the correlation key of an event, in bytes.
const MaxCorrelationKey = 512

// eventKind waits for an event: one sent to POST /v1/events, produced by a
// webhook or by a topic trigger, whose name is the step's event and whose
// correlation key equals the step's match.
var eventKind = stepKind{
	name: KindEvent,
	fields: []field{
		{name: "event", typ: tName, desc: "Name of the event to wait for, e.g. shipping.shipped."},
		{name: "match", typ: tTemplateString, desc: "Correlation key the event must carry, e.g. \"${{ input.order_id }}\"."},
		timeoutField,
		onTimeoutField,
	},
	required: []string{"event", "match"},
	check:    (*validator).eventStep,
}

// onTimeoutField is shared by approval and event steps; each accepts its
// own values (approval: reject, approve, escalate; event: fail, continue).
var onTimeoutField = field{name: "on_timeout", typ: tString,
	enum: []string{OnTimeoutReject, OnTimeoutApprove, OnTimeoutEscalate, OnTimeoutFail, OnTimeoutContinue},
	desc: "What happens when timeout passes: approval steps reject (default), approve or escalate; event steps fail (default) or continue with a null output."}

func (v *validator) eventStep(s *Step, path string, ctx exprCtx) {
	switch {
	case s.Event == "":
		v.errorf(path+".event", "required")
	case !EventNamePattern.MatchString(s.Event):
		v.errorf(path+".event", "must be 1-128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit")
	}
	if s.Match == "" {
		v.errorf(path+".match", "required")
	} else {
		v.templateString(path+".match", s.Match, ctx)
	}
	switch s.OnTimeout {
	case "", OnTimeoutFail, OnTimeoutContinue:
	default:
		v.errorf(path+".on_timeout", "must be %s or %s", OnTimeoutFail, OnTimeoutContinue)
	}
	if s.OnTimeout != "" && s.Timeout == "" {
		v.errorf(path+".timeout", "required when on_timeout is set")
	}
}

// callbackSpec is the callback block of an http step: asynchronous
// completion through a one-time callback URL.
var callbackSpec = &objectSpec{
	name: "callback",
	desc: "Asynchronous completion: the service gets a one-time signed callback URL (header Gateflow-Callback-Url) and completes the step later by POSTing the result to it.",
	fields: []field{
		{name: "timeout", typ: tDuration, required: true, desc: "How long the service may take to complete, from the call; the URL expires then."},
		{name: "heartbeat", typ: tDuration, desc: "When set, the service must POST to <url>/heartbeat at least this often, or the attempt times out (and is retried)."},
		{name: "body_field", typ: tString, desc: "Also put the callback URL into this top-level field of the JSON object body."},
	},
}

// Callback asks an http step for asynchronous completion.
type Callback struct {
	// Timeout bounds the wait for the completion (and the URL's life).
	Timeout Duration `json:"timeout"`
	// Heartbeat, when set, is the longest silence allowed between the
	// service's heartbeats.
	Heartbeat Duration `json:"heartbeat,omitempty"`
	// BodyField, when set, also puts the URL into that field of the body.
	BodyField string `json:"body_field,omitempty"`
}

// maxCallbackTimeout bounds callback.timeout.
const maxCallbackTimeout = 30 * 24 * time.Hour

var bodyFieldPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,63}$`)

func (v *validator) callback(path string, c *Callback, body any) {
	if c.Timeout == "" {
		v.errorf(path+".timeout", "required")
	}
	v.duration(path+".timeout", c.Timeout, maxCallbackTimeout)
	v.duration(path+".heartbeat", c.Heartbeat, maxCallbackTimeout)
	if hb, to := c.Heartbeat.Std(), c.Timeout.Std(); hb > 0 && to > 0 && hb >= to {
		v.errorf(path+".heartbeat", "must be shorter than timeout")
	}
	if c.BodyField != "" {
		if !bodyFieldPattern.MatchString(c.BodyField) {
			v.errorf(path+".body_field", "must be a JSON field name (letters, digits, '_', '.', '-')")
		}
		if body != nil {
			if _, ok := body.(map[string]any); !ok {
				v.errorf(path+".body_field", "needs a body that is a JSON object")
			}
		}
	}
}
