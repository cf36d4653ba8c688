package replicated

import (
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// PublishActivity is the activity type of Publisher.Publish; part of the
// contract with running entity workflows.
const PublishActivity = "gateflow.replicated.Publish"

// PublishInput is one batch of records for one topic.
type PublishInput struct {
	Topic   string   `json:"topic"`
	Records []Record `json:"records"`
}

// Bounds of the outbox.
const (
	// MaxBatch bounds the records of one PublishActivity call.
	MaxBatch = 256
	// publishStartToClose bounds one publish attempt; the Publisher's
	// writer times out well before it (see the package doc on ordering).
	publishStartToClose = 30 * time.Second
)

// Outbox is the part of an entity's state that publishes its changes. It
// is plain data (JSON) so that an entity carries it across continue-as-new;
// only the entity's workflow code touches it.
type Outbox struct {
	// Topic is where the records go.
	Topic string `json:"topic"`
	// Seq is the last sequence number given to a change.
	Seq uint64 `json:"seq"`
	// Pending holds, oldest first, the latest record of each key changed
	// since it was last published.
	Pending []Record `json:"pending,omitempty"`

	publishing bool
	// stopping is set before continue-as-new: no new batch starts, and
	// Updates stop waiting for publication (the next run publishes).
	stopping bool
}

// NewOutbox returns the outbox of a new entity publishing to topic.
func NewOutbox(topic string) *Outbox { return &Outbox{Topic: topic} }

// Put queues the current value of key for publication and returns the
// record, numbered. A value of the same key still pending is replaced: the
// topic only needs the latest.
func (o *Outbox) Put(key string, value any) (Record, error) {
	raw, err := jsonMarshal(value)
	if err != nil {
		return Record{}, err
	}
	o.Seq++
	rec := Record{Key: key, Seq: o.Seq, Value: raw}
	o.Pending = slices.DeleteFunc(o.Pending, func(r Record) bool { return r.Key == key })
	o.Pending = append(o.Pending, rec)
	return rec, nil
}

// Has reports whether key waits for publication.
func (o *Outbox) Has(key string) bool {
	return slices.ContainsFunc(o.Pending, func(r Record) bool { return r.Key == key })
}

// Idle reports whether no publication is in flight, the condition for a
// safe continue-as-new: the next run publishes what is still pending, and
// no attempt of this run can land after it.
func (o *Outbox) Idle() bool { return !o.publishing }

// Stop makes Run start no new batch; the entity continues as new once Idle.
func (o *Outbox) Stop() { o.stopping = true }

// Run publishes pending records until ctx is cancelled. Start it once per
// run with workflow.Go. The activity retries without limit (backing off to
// 10 s) while Kafka is unreachable; changes keep being accepted meanwhile
// and wait in Pending.
func (o *Outbox) Run(ctx workflow.Context) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: publishStartToClose,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    200 * time.Millisecond,
			BackoffCoefficient: 2,
			MaximumInterval:    10 * time.Second,
		},
		Summary: "publish to " + o.Topic,
	})
	log := workflow.GetLogger(ctx)
	for {
		if err := workflow.Await(ctx, func() bool { return len(o.Pending) > 0 || o.stopping }); err != nil {
			return
		}
		if o.stopping {
			return
		}
		batch := slices.Clone(o.Pending[:min(len(o.Pending), MaxBatch)])
		o.publishing = true
		err := workflow.ExecuteActivity(actx, PublishActivity, PublishInput{Topic: o.Topic, Records: batch}).Get(ctx, nil)
		o.publishing = false
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// Only a non-retryable failure gets here (a record Kafka
			// refuses for good): drop the batch rather than block every
			// later change behind it.
			log.Error("replicated records dropped", "topic", o.Topic, "records", len(batch), "error", err.Error())
		}
		o.Pending = slices.DeleteFunc(o.Pending, func(r Record) bool {
			return slices.ContainsFunc(batch, func(b Record) bool { return b.Key == r.Key && b.Seq == r.Seq })
		})
	}
}

// AwaitPublished waits up to timeout until none of keys waits for
// publication, and reports whether they were all published in time (false:
// they stay pending and go out as soon as Kafka takes them).
func (o *Outbox) AwaitPublished(ctx workflow.Context, timeout time.Duration, keys ...string) bool {
	done := func() bool {
		if o.stopping {
			return true
		}
		for _, k := range keys {
			if o.Has(k) {
				return false
			}
		}
		return true
	}
	if !o.stopping && done() {
		return true
	}
	ok, err := workflow.AwaitWithTimeout(ctx, timeout, done)
	if o.stopping {
		return false
	}
	return ok && err == nil
}
