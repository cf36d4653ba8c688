package sink

import (
	"context"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/segmentio/kafka-go"
)

// StoreUncommitted stores msgs as one batch exactly as a sink of cfg does
// (decode, filter, token, insert) and commits nothing: what a sink leaves
// behind when it dies between its insert and its offset commit.
func StoreUncommitted(ctx context.Context, cfg Config, conn driver.Conn, msgs []kafka.Message) error {
	s, err := New(cfg, conn, nil)
	if err != nil {
		return err
	}
	if s.native != nil {
		defer s.native.close()
	}
	batch := make([]pending, len(msgs))
	for i, m := range msgs {
		batch[i].decode(m)
	}
	rows, _, _ := s.filter(batch)
	return s.insert(ctx, rows, batchToken(cfg.GroupID, rows))
}
