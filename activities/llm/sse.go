package llm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// maxSSEEvent bounds one SSE event (all its data lines together), so that a
// misbehaving provider cannot make the gateway buffer without limit.
const maxSSEEvent = 8 << 20

// errSSETooLarge is returned for an event above maxSSEEvent.
var errSSETooLarge = errors.New("sse event too large")

// sseEvent is one dispatched server-sent event. Data is valid until the
// next call to next.
type sseEvent struct {
	Event string
	Data  []byte
}

// sseReader reads server-sent events (text/event-stream) as specified by
// WHATWG HTML §9.2: lines end with CRLF, LF or CR; "data" lines of one
// event are joined with "\n"; ":" starts a comment; a blank line dispatches.
// It reads incrementally and never holds more than one event.
type sseReader struct {
	r     *bufio.Reader
	max   int
	data  []byte
	event []byte
	line  []byte // assembly buffer for lines longer than the bufio buffer
	// pending holds the lines still to process when a single read returned
	// several CR-separated lines.
	pending []byte
	hasData bool
}

func newSSEReader(r io.Reader) *sseReader {
	return &sseReader{r: bufio.NewReaderSize(r, 4<<10), max: maxSSEEvent}
}

// next returns the next event with data, or io.EOF at the end of the
// stream. An event cut by the end of the stream is still dispatched: some
// servers omit the final blank line.
func (s *sseReader) next() (sseEvent, error) {
	s.data = s.data[:0]
	s.event = s.event[:0]
	s.hasData = false
	for {
		line, err := s.readLine()
		if err != nil {
			if err == io.EOF && s.hasData {
				return s.dispatch(), nil
			}
			return sseEvent{}, err
		}
		if len(line) == 0 {
			if s.hasData {
				return s.dispatch(), nil
			}
			s.event = s.event[:0]
			continue
		}
		if err := s.field(line); err != nil {
			return sseEvent{}, err
		}
	}
}

func (s *sseReader) dispatch() sseEvent {
	ev := sseEvent{Data: s.data}
	if len(s.event) > 0 {
		ev.Event = string(s.event)
	}
	s.hasData = false
	return ev
}

// field processes one non-empty line.
func (s *sseReader) field(line []byte) error {
	if line[0] == ':' {
		return nil // comment (keep-alive)
	}
	name, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		name, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(name) {
	case "data":
		if s.hasData {
			s.data = append(s.data, '\n')
		}
		if len(s.data)+len(value) > s.max {
			return fmt.Errorf("%w (over %d bytes)", errSSETooLarge, s.max)
		}
		s.data = append(s.data, value...)
		s.hasData = true
	case "event":
		s.event = append(s.event[:0], value...)
	}
	// "id" and "retry" are not used by model providers; other fields are
	// ignored as the specification requires.
	return nil
}

// readLine returns the next line without its terminator. The result is
// valid until the next call.
func (s *sseReader) readLine() ([]byte, error) {
	if len(s.pending) > 0 {
		return s.splitCR(s.pending), nil
	}
	raw, err := s.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		s.line = append(s.line[:0], raw...)
		for err == bufio.ErrBufferFull {
			if len(s.line) > s.max {
				return nil, fmt.Errorf("%w (line over %d bytes)", errSSETooLarge, s.max)
			}
			raw, err = s.r.ReadSlice('\n')
			s.line = append(s.line, raw...)
		}
		raw = s.line
	}
	if err != nil && (err != io.EOF || len(raw) == 0) {
		return nil, err
	}
	// err is nil, or io.EOF with a last unterminated line.
	raw = bytes.TrimSuffix(raw, []byte("\n"))
	raw = bytes.TrimSuffix(raw, []byte("\r"))
	return s.splitCR(raw), nil
}

// splitCR returns the first CR-terminated line of b and keeps the rest
// pending (lone CR is a line terminator too).
func (s *sseReader) splitCR(b []byte) []byte {
	if i := bytes.IndexByte(b, '\r'); i >= 0 {
		s.pending = b[i+1:]
		return b[:i]
	}
	s.pending = nil
	return b
}
