package sink

import (
	"testing"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"
)

func TestFilterSkipsStoredOffsets(t *testing.T) {
	s := &Sink{stored: map[int]int64{0: 10, 1: -1}, seen: map[int]*idWindow{}}
	msg := func(p int, o int64, poison bool) pending {
		pd := pending{msg: kafka.Message{Partition: p, Offset: o}, row: Row{id: uuid.New()}}
		if poison {
			pd.reason = "bad"
		}
		return pd
	}
	batch := []pending{msg(0, 9, false), msg(0, 10, true), msg(0, 11, false), msg(0, 12, true),
		msg(1, 0, false), msg(2, 5, false)}
	rows, dead, dups := s.filter(batch)
	if len(rows) != 3 || rows[0].msg.Offset != 11 || rows[1].msg.Partition != 1 || rows[2].msg.Partition != 2 || dups != 0 {
		t.Fatalf("rows %+v dups %d", rows, dups)
	}
	// The poison message at or below the mark was handled before: skipped.
	if len(dead) != 1 || dead[0].msg.Offset != 12 {
		t.Fatalf("dead %+v", dead)
	}
}

// TestFilterDropsDuplicateIDs: a record written twice by the producer (same
// id, another offset) is dropped whether its first copy was stored
// earlier, is in the same batch, or was skipped as stored.
func TestFilterDropsDuplicateIDs(t *testing.T) {
	s := &Sink{stored: map[int]int64{0: 4}, seen: map[int]*idWindow{}}
	a, b, c, d := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	m := func(o int64, id uuid.UUID) pending {
		return pending{msg: kafka.Message{Partition: 0, Offset: o}, row: Row{id: id}}
	}
	s.window(0).add(a) // stored by an earlier batch
	rows, _, dups := s.filter([]pending{
		m(3, c),          // stored already (offset <= mark): remembered
		m(5, a),          // duplicate of an earlier batch
		m(6, b), m(7, b), // duplicates within the batch
		m(8, c), // duplicate of a stored, skipped message
		m(9, d),
	})
	if dups != 3 || len(rows) != 2 || rows[0].row.id != b || rows[1].row.id != d {
		t.Fatalf("rows %+v dups %d", rows, dups)
	}
}

func TestIDWindowEvictsOldest(t *testing.T) {
	w := newIDWindow(3)
	ids := []uuid.UUID{uuid.New(), uuid.New(), uuid.New(), uuid.New()}
	for _, id := range ids {
		w.add(id)
		w.add(id) // idempotent
	}
	if w.has(ids[0]) || !w.has(ids[1]) || !w.has(ids[3]) || len(w.ids) != 3 {
		t.Fatalf("window %+v", w)
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

// TestBatchTokenNamesTheRows: a retry of the same rows gets the same
// insert_deduplication_token; other records at the same offsets (a topic
// created again) get another one, so ClickHouse does not drop them as a
// repeated insert.
func TestBatchTokenNamesTheRows(t *testing.T) {
	row := func(p int, o int64, id uuid.UUID) *pending {
		return &pending{msg: kafka.Message{Topic: "t", Partition: p, Offset: o}, row: Row{id: id}}
	}
	a, b := uuid.New(), uuid.New()
	first := batchToken("g", []*pending{row(0, 1, a), row(1, 1, b)})
	tests := []struct {
		name string
		rows []*pending
		same bool
	}{
		{"same rows (a retry)", []*pending{row(0, 1, a), row(1, 1, b)}, true},
		{"other records at the same offsets", []*pending{row(0, 1, uuid.New()), row(1, 1, uuid.New())}, false},
		{"same records at other offsets", []*pending{row(0, 2, a), row(1, 2, b)}, false},
		{"fewer rows", []*pending{row(0, 1, a)}, false},
	}
	for _, tc := range tests {
		if got := batchToken("g", tc.rows) == first; got != tc.same {
			t.Errorf("%s: same token = %v, want %v", tc.name, got, tc.same)
		}
	}
	if batchToken("other", []*pending{row(0, 1, a), row(1, 1, b)}) == first {
		t.Errorf("another group's token equals this group's")
	}
}
