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
	secret  string
	// busy: the stream counts in its target's calls in flight.
	busy bool
	// asm assembles the answer for the response cache (nil when the call
	// is not cached); hit is the cache entry a replayed stream serves.
	asm       *assembler
	hit       *cacheEntry
	cacheInfo CacheInfo

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

// openStream makes one streaming attempt on t, returning once the first
// chunk with output has arrived.
func (g *Gateway) openStream(ctx context.Context, c *call, t *target) (*Stream, error) {
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
	t.state.inflight.Add(1)
	s.busy = true
	if c.cacheKey != nil {
		s.asm = &assembler{}
	}
	p, err := g.prepare(actx, c, t)
	if err != nil {
		s.finish(err)
		return nil, err
	}
	s.secret = p.secret
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
	c.observe(t, nil, g.clock.Now().Sub(start))
	s.opened = true
	return s, nil
}

// streamFromCache replays a cached answer as a stream, nil on a miss.
func (g *Gateway) streamFromCache(c *call) *Stream {
	e := g.cacheLookup(c)
	if e == nil || e.chat == nil {
		return nil
	}
	now := g.clock.Now()
	g.hitRecord(c, e)
	t := &target{name: e.target, state: &deployment{}}
	s := &Stream{g: g, c: c, t: t, start: now, ctx: context.Background(), hit: e,
		cacheInfo: CacheInfo{Status: CacheHit, Age: now.Sub(e.stored)}, opened: true}
	s.id, s.created = e.chat.ID, e.chat.Created
	s.dec = &replayDecoder{chunks: replayChunks(e.chat)}
	return s
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

// Cache says whether the response cache serves the stream (a replay of
// a cached answer) or will store it.
func (s *Stream) Cache() CacheInfo {
	if s.hit != nil {
		return s.cacheInfo
	}
	return CacheInfo{Status: s.c.cacheStatus}
}

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
		if s.timer != nil {
			s.timer.Reset(s.t.idleTimeout)
		}
		var err error
		c, err = s.dec.next()
		if s.timer != nil {
			s.timer.Stop()
		}
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
	if s.asm != nil {
		s.asm.add(c)
	}
	if s.hit != nil {
		// A replay: the cached usage (and its cost) is the answer's own.
		if c.Usage != nil {
			s.usage, s.usageKnown, s.usageSent = *c.Usage, true, true
		}
		return
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
		e.Message = redact(e.Message, s.secret)
		return e
	}
	return &Error{Class: ClassConnection, Target: s.t.name, Message: calls.DescribeNetError(err), Err: err}
}

// finish ends the attempt once: releases the connection, emits the record,
// settles the budget, stores a complete answer in the response cache.
func (s *Stream) finish(err error) {
	if s.done {
		return
	}
	s.done = true
	s.err = err
	if err == nil {
		s.err = io.EOF
	}
	if s.hit != nil {
		return // a replay: its record was emitted when it started
	}
	s.timer.Stop()
	s.cancel(nil)
	if s.busy {
		s.t.state.inflight.Add(-1)
		s.busy = false
	}
	if s.body != nil {
		s.body.Close()
		s.rec.RespBytes = s.counter.n
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		s.c.observe(s.t, err, 0)
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
	if err == nil && s.asm != nil {
		resp := s.asm.response()
		resp.Usage = s.usage
		s.g.storeChat(s.c, resp, s.t.name)
	}
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
	var a assembler
	for {
		c, err := s.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		a.add(c)
	}
	return a.response(), nil
}

// assembler builds a chat completion from stream chunks (choice 0).
type assembler struct {
	id      string
	created int64
	model   string
	text    strings.Builder
	calls   []ToolCall
	finish  string
	usage   Usage
}

func (a *assembler) add(c *ChatChunk) {
	a.id, a.created, a.model = c.ID, c.Created, c.Model
	if c.Usage != nil {
		a.usage = *c.Usage
	}
	for _, ch := range c.Choices {
		if ch.Index != 0 {
			continue
		}
		if ch.Delta.Content != nil {
			a.text.WriteString(*ch.Delta.Content)
		}
		for _, tc := range ch.Delta.ToolCalls {
			idx := len(a.calls)
			if tc.Index != nil {
				idx = *tc.Index
			}
			for len(a.calls) <= idx {
				a.calls = append(a.calls, ToolCall{Type: "function"})
			}
			if tc.ID != "" {
				a.calls[idx].ID = tc.ID
			}
			if tc.Function.Name != "" {
				a.calls[idx].Function.Name = tc.Function.Name
			}
			a.calls[idx].Function.Arguments += tc.Function.Arguments
		}
		if ch.FinishReason != nil {
			a.finish = *ch.FinishReason
		}
	}
}

func (a *assembler) response() *ChatResponse {
	msg := Message{Role: "assistant", ToolCalls: a.calls}
	msg.Content = textContent(a.text.String(), len(a.calls) > 0)
	return &ChatResponse{ID: a.id, Object: ObjectChatCompletion, Created: a.created, Model: a.model,
		Choices: []Choice{{Index: 0, Message: msg, FinishReason: a.finish}}, Usage: a.usage}
}

// replayChunks turns a cached answer into the chunks of a stream: the
// role, the text, each tool call, the finish reason, then the usage.
func replayChunks(r *ChatResponse) []*ChatChunk {
	chunk := func(d Delta) *ChatChunk {
		return &ChatChunk{ID: r.ID, Object: ObjectChatCompletionChunk, Created: r.Created, Model: r.Model, Choices: []ChunkChoice{{Delta: d}}}
	}
	out := []*ChatChunk{chunk(Delta{Role: "assistant", Content: strPtr("")})}
	finish := FinishStop
	if len(r.Choices) > 0 {
		ch := r.Choices[0]
		if text := contentText(ch.Message.Content); text != "" {
			out = append(out, chunk(Delta{Content: strPtr(text)}))
		}
		for i, tc := range ch.Message.ToolCalls {
			idx := i
			out = append(out, chunk(Delta{ToolCalls: []ToolCall{{Index: &idx, ID: tc.ID, Type: "function",
				Function: FunctionCall{Name: tc.Function.Name, Arguments: tc.Function.Arguments}}}}))
		}
		if ch.FinishReason != "" {
			finish = ch.FinishReason
		}
	}
	fin := chunk(Delta{})
	fin.Choices[0].FinishReason = strPtr(finish)
	u := r.Usage
	out = append(out, fin, &ChatChunk{ID: r.ID, Object: ObjectChatCompletionChunk, Created: r.Created, Model: r.Model, Choices: []ChunkChoice{}, Usage: &u})
	return out
}

// replayDecoder yields prepared chunks.
type replayDecoder struct {
	chunks []*ChatChunk
}

func (d *replayDecoder) next() (*ChatChunk, error) {
	if len(d.chunks) == 0 {
		return nil, io.EOF
	}
	c := d.chunks[0]
	d.chunks = d.chunks[1:]
	return c, nil
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
