package replicated

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
)

// Publisher is PublishActivity: it writes records to their topic, keyed by
// record key, and returns once every broker replica has them. Writing the
// same records again is harmless (readers ignore sequences they already
// hold), so Temporal may retry it freely.
type Publisher struct {
	w *kafka.Writer
}

// PublisherConfig locates Kafka.
type PublisherConfig struct {
	Brokers   []string
	Transport *kafka.Transport // nil: kafka-go's default
}

// NewPublisher returns a Publisher; Close releases its connections.
func NewPublisher(cfg PublisherConfig) *Publisher {
	w := &kafka.Writer{
		Addr: kafka.TCP(cfg.Brokers...),
		// The same key always lands in the same partition, so that the
		// order of one key's records is the order they were written.
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 2 * time.Millisecond,
		// Shorter than the activity's StartToClose, so that an attempt
		// never writes after Temporal gave up on it.
		WriteTimeout: 10 * time.Second,
		ReadTimeout:  10 * time.Second,
		MaxAttempts:  3,
		// Topics are created by EnsureTopic, compacted; never by a write.
		AllowAutoTopicCreation: false,
	}
	if cfg.Transport != nil {
		w.Transport = cfg.Transport
	}
	return &Publisher{w: w}
}

// Register registers the activity on a worker.
func (p *Publisher) Register(r worker.Registry) {
	r.RegisterActivityWithOptions(p.Publish, activity.RegisterOptions{Name: PublishActivity})
}

// Publish writes one batch.
func (p *Publisher) Publish(ctx context.Context, in PublishInput) error {
	if in.Topic == "" {
		return temporal.NewNonRetryableApplicationError("publish: no topic", "BadInput", nil)
	}
	msgs := make([]kafka.Message, 0, len(in.Records))
	for _, r := range in.Records {
		v, err := r.Encode()
		if err != nil {
			return temporal.NewNonRetryableApplicationError(fmt.Sprintf("encode %s: %v", r.Key, err), "BadInput", err)
		}
		msgs = append(msgs, kafka.Message{Topic: in.Topic, Key: []byte(r.Key), Value: v})
	}
	if err := p.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("publish %d records to %s: %w", len(msgs), in.Topic, err)
	}
	return nil
}

// Close flushes and closes the writer.
func (p *Publisher) Close() error { return p.w.Close() }
