package sink

import (
	"testing"

	"github.com/segmentio/kafka-go"
)

func TestFilterSkipsStoredOffsets(t *testing.T) {
	s := &Sink{stored: map[int]int64{0: 10, 1: -1}}
	msg := func(p int, o int64, poison bool) pending {
		pd := pending{msg: kafka.Message{Partition: p, Offset: o}}
		if poison {
			pd.reason = "bad"
		}
		return pd
	}
	batch := []pending{msg(0, 9, false), msg(0, 10, true), msg(0, 11, false), msg(0, 12, true),
		msg(1, 0, false), msg(2, 5, false)}
	rows, dead := s.filter(batch)
	if len(rows) != 3 || rows[0].msg.Offset != 11 || rows[1].msg.Partition != 1 || rows[2].msg.Partition != 2 {
		t.Fatalf("rows %+v", rows)
	}
	// The poison message at or below the mark was handled before: skipped.
	if len(dead) != 1 || dead[0].msg.Offset != 12 {
		t.Fatalf("dead %+v", dead)
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{Brokers: []string{"b:1"}, Topic: "a", DLQTopic: "a"}
	if err := c.defaults(); err == nil {
		t.Fatal("same topic and dead-letter topic accepted")
	}
	c.DLQTopic = "b"
	if err := c.defaults(); err != nil {
		t.Fatal(err)
	}
	if c.GroupID != DefaultGroupID || c.BatchRows != DefaultBatchRows || c.BatchInterval != DefaultBatchInterval {
		t.Fatalf("%+v", c)
	}
}
