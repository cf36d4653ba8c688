package llm

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func readEvents(t testing.TB, r io.Reader) ([]sseEvent, error) {
	s := newSSEReader(r)
	var out []sseEvent
	for {
		ev, err := s.next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, sseEvent{Event: ev.Event, Data: bytes.Clone(ev.Data)})
	}
}

func TestSSEReader(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want []sseEvent
	}{
		{"lf", "data: a\n\ndata: b\n\n", []sseEvent{{Data: []byte("a")}, {Data: []byte("b")}}},
		{"crlf", "data: a\r\n\r\ndata: b\r\n\r\n", []sseEvent{{Data: []byte("a")}, {Data: []byte("b")}}},
		{"cr", "data: a\r\rdata: b\r\r", []sseEvent{{Data: []byte("a")}, {Data: []byte("b")}}},
		{"multi-line data", "data: a\ndata: b\n\n", []sseEvent{{Data: []byte("a\nb")}}},
		{"event name", "event: ping\ndata: {}\n\n", []sseEvent{{Event: "ping", Data: []byte("{}")}}},
		{"comments and unknown fields", ": keep-alive\nid: 7\nretry: 10\nfoo: bar\ndata: x\n\n", []sseEvent{{Data: []byte("x")}}},
		{"no space after colon", "data:x\n\n", []sseEvent{{Data: []byte("x")}}},
		{"two spaces keep one", "data:  x\n\n", []sseEvent{{Data: []byte(" x")}}},
		{"event without data is dropped", "event: a\n\ndata: b\n\n", []sseEvent{{Data: []byte("b")}}},
		{"unterminated last event", "data: a\n\ndata: b", []sseEvent{{Data: []byte("a")}, {Data: []byte("b")}}},
		{"empty data line", "data:\n\n", []sseEvent{{Data: []byte("")}}},
		{"field without colon", "data\n\n", []sseEvent{{Data: []byte("")}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
				got, err := readEvents(t, r)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(tc.want) {
					t.Fatalf("got %d events %q, want %d", len(got), got, len(tc.want))
				}
				for i := range got {
					if got[i].Event != tc.want[i].Event || !bytes.Equal(got[i].Data, tc.want[i].Data) {
						t.Errorf("event %d = %q/%q, want %q/%q", i, got[i].Event, got[i].Data, tc.want[i].Event, tc.want[i].Data)
					}
				}
			}
		})
	}
}

func TestSSEReaderLongLines(t *testing.T) {
	long := strings.Repeat("x", 100<<10)
	got, err := readEvents(t, strings.NewReader("data: "+long+"\r\n\r\n"))
	if err != nil || len(got) != 1 || string(got[0].Data) != long {
		t.Fatalf("long line: %d events, err %v", len(got), err)
	}
	s := newSSEReader(strings.NewReader("data: " + long + "\n\n"))
	s.max = 1 << 10
	if _, err := s.next(); !errors.Is(err, errSSETooLarge) {
		t.Errorf("oversized event: %v", err)
	}
}

func TestSSEReaderReadError(t *testing.T) {
	boom := errors.New("reset")
	r := io.MultiReader(strings.NewReader("data: a\n\n"), iotest.ErrReader(boom))
	got, err := readEvents(t, r)
	if len(got) != 1 || !errors.Is(err, boom) {
		t.Errorf("events %q err %v", got, err)
	}
}
