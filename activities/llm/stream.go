package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/analytics/record"
)

// maxPrefetch bounds the chunks buffered while waiting for the first one
// that carries output (content, tool call, finish or usage). Until then a
// failing provider is still replaced by the next target.
const maxPrefetch = 8

// SSEDone is the line that ends an OpenAI-compatible SSE stream.
const SSEDone = "data: [DONE]\n\n"

// errStreamClosed ends a stream the caller closed before its end.
var errStreamClosed = fmt.Errorf("stream closed by the caller: %w", context.Canceled)

// Stream is a streaming chat completion in the unified format. Recv returns
// chunks shaped like OpenAI's chat.completion.chunk; the last chunk before
// io.EOF has no choices and carries the usage (with its cost). A Stream is
// not safe for concurrent use: cancel the context given to ChatStream to
// interrupt a blocked Recv, and always Close it.
type Stream struct {
	g     *Gateway
	c     *call
	t     *target
	rec   record.Record
	start time.Time

	body    io.ReadCloser
	counter *countingReader
	dec     chunkDecoder
	ctx     context.Context // the caller's
	actx    context.Context // the attempt's
	cancel  context.CancelCauseFunc
	timer   *time.Timer
	key     string

	id      string
	created int64
	pending []*ChatChunk

	outBytes   int64 // completion bytes seen, for estimates
	usage      Usage
	usageKnown bool
	usageSent  bool

	opened bool // handed to the caller
	done   bool
	err    error
}

// openStream makes one streaming attempt on target i, returning once the
// first chunk with output has arrived.
func (g *Gateway) openStream(ctx context.Context, c *call, i int, t *target) (*Stream, error) {
	c.attempts++
	start := g.clock.Now()
	r := c.newRecord(t.name, start)
	if e := c.checkContext(t); e != nil {
		c.rejectRecord(&r, start, e)
		return nil, e
	}
	actx, cancel := context.WithCancelCause(ctx)
	// The attempt timeout bounds the wait for the first chunk; later, each
	// Recv re-arms the timer with the idle timeout.
	timer := time.AfterFunc(c.timeout(t), func() { cancel(errAttemptTimeout) })
	s := &Stream{g: g, c: c, t: t, rec: r, start: start, ctx: ctx, actx: actx, cancel: cancel, timer: timer}
	p, err := g.prepare(actx, c, t)
	if err != nil {
		s.finish(err)
		return nil, err
	}
	s.key = p.key
	s.rec.ReqBytes = p.bytes
	resp, err := g.send(ctx, actx, p, t, &s.rec)
	if err != nil {
		s.finish(err)
		return nil, err
	}
	s.body = resp.Body
	s.counter = &countingReader{r: resp.Body}
	s.dec = t.prov.adapter.newDecoder(t, s.counter)
	s.id = "chatcmpl-" + r.ID
	s.created = start.Unix()
	for {
		chunk, err := s.dec.next()
		if err == io.EOF {
			break // an empty but complete stream; Recv ends it
		}
		if err != nil {
			err = s.classify(err)
			s.finish(err)
			return nil, err
		}
		s.pending = append(s.pending, chunk)
		if hasOutput(chunk) || len(s.pending) >= maxPrefetch {
			break
		}
	}
	if len(s.pending) == 0 {
		s.dec = eofDecoder{}
	}
	timer.Stop() // re-armed by Recv while it waits on the provider
	s.opened = true
	return s, nil
}

// hasOutput reports whether a chunk carries more than the role.
func hasOutput(c *ChatChunk) bool {
	if c.Usage != nil {
		return true
	}
	for _, ch := range c.Choices {
		if (ch.Delta.Content != nil && *ch.Delta.Content != "") || len(ch.Delta.ToolCalls) > 0 || ch.FinishReason != nil {
			return true
		}
	}
	return false
}

type eofDecoder struct{}

func (eofDecoder) next() (*ChatChunk, error) { return nil, io.EOF }

// Model is the "provider/model" serving the stream.
func (s *Stream) Model() string { return s.t.name }

// Usage is the stream's token usage and cost, complete once Recv has
// returned io.EOF.
func (s *Stream) Usage() Usage { return s.usage }

// Recv returns the next chunk, or io.EOF after the last one. Other errors
// are *Error values (the stream is over; no fallback happens mid-stream).
func (s *Stream) Recv() (*ChatChunk, error) {
	if s.done {
		return nil, s.err
	}
	var c *ChatChunk
	if len(s.pending) > 0 {
		c = s.pending[0]
		s.pending[0] = nil
		s.pending = s.pending[1:]
	} else {
		// The idle timer runs only while waiting on the provider, not
		// while the caller handles a chunk (a slow client is not a stalled
		// provider).
		s.timer.Reset(s.t.idleTimeout)
		var err error
		c, err = s.dec.next()
		s.timer.Stop()
		if err == io.EOF {
			if s.usageSent {
				s.finish(nil)
				return nil, io.EOF
			}
			u := s.finalUsage()
			c = &ChatChunk{Choices: []ChunkChoice{}, Usage: &u}
			s.prepare(c)
			s.finish(nil)
			return c, nil
		}
		if err != nil {
			err = s.classify(err)
			s.finish(err)
			return nil, err
		}
	}
	s.prepare(c)
	return c, nil
}

// Close ends the stream, releasing the connection; the call record and the
// budget settle here if the stream was not read to its end.
func (s *Stream) Close() error {
	if !s.done {
		s.finish(errStreamClosed)
	}
	return nil
}

// prepare normalizes a chunk on its way out.
func (s *Stream) prepare(c *ChatChunk) {
	if c.ID == "" {
		c.ID = s.id
	} else {
		s.id = c.ID
	}
	c.Object = ObjectChatCompletionChunk
	c.Created = s.created
	c.Model = s.t.name
	if c.Choices == nil {
		c.Choices = []ChunkChoice{}
	}
	for _, ch := range c.Choices {
		if ch.Delta.Content != nil {
			s.outBytes += int64(len(*ch.Delta.Content))
		}
		for _, tc := range ch.Delta.ToolCalls {
			s.outBytes += int64(len(tc.Function.Name) + len(tc.Function.Arguments))
		}
	}
	if c.Usage == nil {
		return
	}
	s.usage, s.usageKnown = *c.Usage, true
	if len(c.Choices) > 0 {
		// Some servers repeat usage on content chunks; only the final,
		// choice-less chunk carries it out.
		c.Usage = nil
		return
	}
	s.completeUsage()
	u := s.usage
	c.Usage = &u
	s.usageSent = true
}

// completeUsage fills totals and cost, estimating when the provider
// reported nothing.
func (s *Stream) completeUsage() {
	u := &s.usage
	if !s.usageKnown || (u.PromptTokens == 0 && u.CompletionTokens == 0) {
		u.PromptTokens = s.c.size.upper()
		u.CompletionTokens = (s.outBytes + upperBytesPerToken - 1) / upperBytesPerToken
		u.TotalTokens = 0
		s.rec.Labels["usage"] = "estimated"
	}
	if u.TotalTokens == 0 {
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
	}
	u.CostUSD = cost(s.t.model, *u)
	s.usageKnown = true
}

func (s *Stream) finalUsage() Usage {
	s.completeUsage()
	return s.usage
}

// classify turns a read or decode failure into the stream's error.
func (s *Stream) classify(err error) error {
	if s.ctx.Err() != nil {
		return fmt.Errorf("%s: %w", s.t.name, s.ctx.Err())
	}
	if context.Cause(s.actx) == errAttemptTimeout {
		return &Error{Class: ClassTimeout, Target: s.t.name, Message: "stream stalled beyond the timeout", Err: ErrTimeout}
	}
	var e *Error
	if errors.As(err, &e) {
		e.Target = s.t.name
		e.Message = redact(e.Message, s.key)
		return e
	}
	return &Error{Class: ClassConnection, Target: s.t.name, Message: calls.DescribeNetError(err), Err: err}
}

// finish ends the attempt once: releases the connection, emits the record,
// settles the budget.
func (s *Stream) finish(err error) {
	if s.done {
		return
	}
	s.done = true
	s.err = err
	if err == nil {
		s.err = io.EOF
	}
	s.timer.Stop()
	s.cancel(nil)
	if s.body != nil {
		s.body.Close()
		s.rec.RespBytes = s.counter.n
	}
	sent := s.body != nil
	if sent && (err == nil || errors.Is(err, context.Canceled) || s.outBytes > 0 || s.usageKnown) {
		// Tokens were (probably) billed: count them, estimated if the
		// provider did not report them.
		if !s.usageSent {
			s.completeUsage()
		}
		s.rec.TokensIn = s.usage.PromptTokens
		s.rec.TokensOut = s.usage.CompletionTokens
		s.rec.CostUSD = s.usage.CostUSD
		s.c.used += s.usage.PromptTokens + s.usage.CompletionTokens
	}
	s.c.finishRecord(&s.rec, s.start, err)
	if s.opened {
		// A failed open leaves settlement to ChatStream, which may still
		// try the next target.
		s.c.settleOnce()
	}
}

// countingReader counts the bytes read from a stream body.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Collect reads a stream to its end and assembles the chunks into one
// response, then closes the stream.
func Collect(s *Stream) (*ChatResponse, error) {
	defer s.Close()
	out := &ChatResponse{Object: ObjectChatCompletion}
	var text strings.Builder
	var calls []ToolCall
	finish := ""
	for {
		c, err := s.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		out.ID, out.Created, out.Model = c.ID, c.Created, c.Model
		if c.Usage != nil {
			out.Usage = *c.Usage
		}
		for _, ch := range c.Choices {
			if ch.Index != 0 {
				continue
			}
			if ch.Delta.Content != nil {
				text.WriteString(*ch.Delta.Content)
			}
			for _, tc := range ch.Delta.ToolCalls {
				idx := len(calls)
				if tc.Index != nil {
					idx = *tc.Index
				}
				for len(calls) <= idx {
					calls = append(calls, ToolCall{Type: "function"})
				}
				if tc.ID != "" {
					calls[idx].ID = tc.ID
				}
				if tc.Function.Name != "" {
					calls[idx].Function.Name = tc.Function.Name
				}
				calls[idx].Function.Arguments += tc.Function.Arguments
			}
			if ch.FinishReason != nil {
				finish = *ch.FinishReason
			}
		}
	}
	msg := Message{Role: "assistant", ToolCalls: calls}
	msg.Content = textContent(text.String(), len(calls) > 0)
	out.Choices = []Choice{{Index: 0, Message: msg, FinishReason: finish}}
	return out, nil
}

// EncodeSSE writes one chunk as an SSE event (`data: {...}` and a blank
// line), the form OpenAI clients read. End the stream with SSEDone.
func EncodeSSE(w io.Writer, c *ChatChunk) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	buf := make([]byte, 0, len(b)+8)
	buf = append(buf, "data: "...)
	buf = append(buf, b...)
	buf = append(buf, '\n', '\n')
	_, err = w.Write(buf)
	return err
}
