package triggers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/triggers/signature"
	"github.com/gateflow/gateflow/workflows/wire"
)

// Errors of webhook deliveries; the ingress maps them to HTTP statuses.
var (
	// ErrUnknownHook: no webhook of that name (404).
	ErrUnknownHook = errors.New("no such webhook")
	// ErrUnauthorized: the signature is missing, wrong or stale (401).
	// Nothing is started.
	ErrUnauthorized = errors.New("webhook signature refused")
	// ErrTooLarge: the body is above the webhook's limit (413).
	ErrTooLarge = errors.New("webhook body too large")
	// ErrUnavailable: the start or event could not be handed to Temporal
	// now; the sender should retry (503).
	ErrUnavailable = errors.New("webhook delivery not accepted now")
	// ErrHookMisconfigured: the webhook's secret cannot be read (500; the
	// log names the reference).
	ErrHookMisconfigured = errors.New("webhook is misconfigured")
)

// Hooks receives webhook deliveries.
type Hooks struct {
	reg     Snapshots
	starter Starter
	sender  EventSender
	rec     activities.Recorder
	now     func() time.Time
}

// NewHooks returns the receiver of the webhooks of reg's configuration.
func NewHooks(reg Snapshots, st Starter, es EventSender, rec activities.Recorder) *Hooks {
	if rec == nil {
		rec = activities.NopRecorder{}
	}
	return &Hooks{reg: reg, starter: st, sender: es, rec: rec, now: time.Now}
}

// BodyLimit is the largest body the named webhook accepts (ErrUnknownHook
// for no such webhook), so that the caller reads no more.
func (h *Hooks) BodyLimit(name string) (int64, error) {
	w, ok := h.reg.Current().Webhook(name)
	if !ok {
		return 0, fmt.Errorf("%w: %s", ErrUnknownHook, name)
	}
	return w.BodyLimit(), nil
}

// Receive handles one delivery: it verifies the signature (ErrUnauthorized
// and nothing started when it fails), takes the sender's delivery id,
// applies the filter, and starts the orchestration or sends the event,
// deduplicated by the delivery id. It returns once Temporal has accepted
// the start or the event. Every delivery to a known webhook is recorded
// (kind webhook), refused ones included.
func (h *Hooks) Receive(ctx context.Context, name string, header http.Header, body []byte) (wire.HookAccepted, error) {
	at := h.now()
	w, ok := h.reg.Current().Webhook(name)
	if !ok {
		return wire.HookAccepted{}, fmt.Errorf("%w: %s", ErrUnknownHook, name)
	}
	act := action{kind: calls.KindWebhook, tenant: w.Tenant, name: w.Name, start: w.Start, event: w.Event, dflt: "input.body"}
	record := func(o outcome, deliveryID string, status int, err error) {
		f := act.firing(at, o, err)
		f.ReqBytes, f.StatusCode = int64(len(body)), int32(status)
		f.Latency = h.now().Sub(at)
		if deliveryID != "" {
			f.Labels["delivery_id"] = truncate(deliveryID, 255)
		}
		if status == http.StatusUnauthorized {
			f.Outcome, f.ErrorClass = activities.FiringRejected, "signature"
		}
		h.rec.Emit(f.Record())
	}
	if int64(len(body)) > w.BodyLimit() {
		err := fmt.Errorf("%w: more than %d bytes", ErrTooLarge, w.BodyLimit())
		record(outcome{result: ResultRejected}, "", http.StatusRequestEntityTooLarge, err)
		return wire.HookAccepted{}, err
	}
	if err := h.verify(w, header, body); err != nil {
		record(outcome{result: ResultRejected}, "", http.StatusUnauthorized, err)
		return wire.HookAccepted{}, err
	}
	input := deliveryInput(w.Name, header, body)
	deliveryID, err := h.deliveryID(w, input, header, body)
	if err != nil {
		record(outcome{result: ResultFailed}, "", http.StatusUnprocessableEntity, err)
		return wire.HookAccepted{}, err
	}
	input["delivery_id"] = deliveryID
	res := wire.HookAccepted{Hook: w.Name, DeliveryID: deliveryID}
	if w.Filter != "" {
		keep, err := definition.EvalCondition(w.Filter, definition.Env{definition.EnvInput: input})
		if err != nil {
			err = fmt.Errorf("%w: filter: %w", ErrPoison, err)
			record(outcome{result: ResultFailed}, deliveryID, http.StatusUnprocessableEntity, err)
			return wire.HookAccepted{}, err
		}
		if !keep {
			res.Action = ResultFiltered
			record(outcome{result: ResultFiltered}, deliveryID, http.StatusAccepted, nil)
			return res, nil
		}
	}
	o, err := act.fire(ctx, h.starter, h.sender, input, deliveryID, map[string]string{"delivery_id": truncate(deliveryID, 255)})
	switch {
	case err == nil:
	case errors.Is(err, ErrPoison):
		record(outcome{result: ResultFailed}, deliveryID, http.StatusUnprocessableEntity, err)
		return wire.HookAccepted{}, err
	default:
		err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		record(outcome{result: ResultFailed}, deliveryID, http.StatusServiceUnavailable, err)
		return wire.HookAccepted{}, err
	}
	record(o, deliveryID, http.StatusAccepted, nil)
	res.Action, res.WorkflowID, res.EventID = o.result, o.workflowID, o.eventID
	return res, nil
}

// verify checks the delivery's signature in the webhook's scheme.
func (h *Hooks) verify(w sysconfig.Webhook, header http.Header, body []byte) error {
	secrets, err := w.Secrets()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrHookMisconfigured, err)
	}
	now := h.now()
	switch w.Scheme {
	case sysconfig.SchemeGitHub:
		err = signature.GitHub(secrets, body, header.Get(signature.HeaderGitHub))
	case sysconfig.SchemeStripe:
		err = signature.Stripe(secrets, body, header.Get(signature.HeaderStripe), now, w.TimestampTolerance())
	case sysconfig.SchemeStandard:
		keys := make([][]byte, 0, len(secrets))
		for _, s := range secrets {
			k, kerr := signature.StandardKey(string(s))
			if kerr != nil {
				return fmt.Errorf("%w: webhook %s: %w", ErrHookMisconfigured, w.Name, kerr)
			}
			keys = append(keys, k)
		}
		err = signature.Standard(keys, body, header.Get(signature.HeaderStandardID), header.Get(signature.HeaderStandardTimestamp),
			header.Get(signature.HeaderStandardSignature), now, w.TimestampTolerance())
	case sysconfig.SchemeHMAC:
		hdr := w.Header
		if hdr == "" {
			hdr = signature.DefaultHMACHeader
		}
		err = signature.HMAC(secrets, body, header.Get(hdr), w.Prefix, w.Encoding)
	default:
		return fmt.Errorf("%w: unknown scheme %q", ErrHookMisconfigured, w.Scheme)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnauthorized, err)
	}
	return nil
}

// deliveryID is the sender's id of the delivery: the webhook's template,
// else the scheme's header (or the Stripe event id), else the SHA-256 of
// the body.
func (h *Hooks) deliveryID(w sysconfig.Webhook, input map[string]any, header http.Header, body []byte) (string, error) {
	if w.DeliveryID != "" {
		id, err := definition.EvalString(w.DeliveryID, definition.Env{definition.EnvInput: input})
		if err != nil {
			return "", fmt.Errorf("%w: delivery_id: %w", ErrPoison, err)
		}
		if id == "" {
			return "", fmt.Errorf("%w: delivery_id: gave an empty id", ErrPoison)
		}
		return id, nil
	}
	switch w.Scheme {
	case sysconfig.SchemeGitHub:
		if id := header.Get(signature.HeaderGitHubDelivery); id != "" {
			return id, nil
		}
	case sysconfig.SchemeStandard:
		if id := header.Get(signature.HeaderStandardID); id != "" {
			return id, nil
		}
	case sysconfig.SchemeStripe:
		if b, ok := input["body"].(map[string]any); ok {
			if id, ok := b["id"].(string); ok && id != "" {
				return id, nil
			}
		}
	}
	sum := sha256.Sum256(body)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// deliveryInput is what a webhook's expressions see: input = {hook,
// headers (lower-case names, first values; credentials left out), body
// (JSON, else the text)}.
func deliveryInput(name string, header http.Header, body []byte) map[string]any {
	headers := make(map[string]any, len(header))
	for k, v := range header {
		k = strings.ToLower(k)
		if len(v) > 0 && k != "authorization" && k != "cookie" && k != "proxy-authorization" {
			headers[k] = v[0]
		}
	}
	var b any
	if len(body) > 0 {
		if err := json.Unmarshal(body, &b); err != nil {
			b = string(body)
		}
	}
	return map[string]any{"hook": name, "headers": headers, "body": b}
}
