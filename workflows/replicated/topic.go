package replicated

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// DefaultPartitions is the partition count of a topic EnsureTopic creates:
// the topics are small (one record per API, grant or key), and every
// replica reads all partitions anyway.
const DefaultPartitions = 3

// EnsureTopic creates topic as a compacted topic (cleanup.policy=compact,
// kept forever) unless it exists. An existing topic is left as it is:
// operators who pre-create it must make it compacted too.
func EnsureTopic(ctx context.Context, brokers []string, transport *kafka.Transport, topic string, partitions int) error {
	if partitions <= 0 {
		partitions = DefaultPartitions
	}
	var rt kafka.RoundTripper = kafka.DefaultTransport
	if transport != nil {
		rt = transport
	}
	kc := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: rt, Timeout: 10 * time.Second}
	res, err := kc.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic:             topic,
		NumPartitions:     partitions,
		ReplicationFactor: -1, // the broker's default
		ConfigEntries: []kafka.ConfigEntry{
			{ConfigName: "cleanup.policy", ConfigValue: "compact"},
			{ConfigName: "retention.ms", ConfigValue: "-1"},
		},
	}}})
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	if err := res.Errors[topic]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}
