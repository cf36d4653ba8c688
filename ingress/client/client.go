// Package client is a Go client of the Gateflow REST API (/v1), used by the
// gateflow CLI and by tests. Every API error is returned as an *Error
// carrying the HTTP status, the error code, message and located details.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/wire"
)

// Response types, shared with the server through workflows/wire (which
// imports no Temporal or server code).
type (
	// Status is an orchestration's state.
	Status = wire.RunStatus
	// Page is one page of a workflow list.
	Page = wire.Page
	// Summary is one workflow of a list.
	Summary = wire.Summary
	// Approvals lists the approvals waiting for the caller.
	Approvals = wire.Approvals
	// Approval is one approval waiting for the caller.
	Approval = wire.Approval
	// DecisionResult answers a decision.
	DecisionResult = wire.DecisionResult
	// DefinitionInfo describes a definition version.
	DefinitionInfo = wire.DefinitionInfo
	// RunInput is what a run was started with.
	RunInput = wire.RunInput
)

// Me is the caller as its API key makes it (GET /v1/me).
type Me struct {
	Tenant string   `json:"tenant"`
	KeyID  string   `json:"key_id"`
	User   string   `json:"user,omitempty"`
	Roles  []string `json:"roles"`
}

// Me returns the tenant, key id, user and roles of the client's key.
func (c *Client) Me(ctx context.Context) (Me, error) {
	var me Me
	_, err := c.call(ctx, http.MethodGet, "/v1/me", nil, nil, nil, &me)
	return me, err
}

// Input returns what a workflow was started with: its input, the
// definition as resolved at start, the submitter and labels.
func (c *Client) Input(ctx context.Context, id string) (RunInput, error) {
	var in RunInput
	_, err := c.call(ctx, http.MethodGet, "/v1/workflows/"+url.PathEscape(id)+"/input", nil, nil, nil, &in)
	return in, err
}

// Error is an error answered by the API.
type Error struct {
	StatusCode int
	Code       string
	Message    string
	Details    []Detail
	RequestID  string
	// RetryAfter is set on 429 (and 503 when the server says so).
	RetryAfter time.Duration
}

// Detail locates one problem of a request.
type Detail struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s: %s", e.StatusCode, e.Code, e.Message)
	for _, d := range e.Details {
		if d.Path != "" {
			fmt.Fprintf(&b, "\n  %s: %s", d.Path, d.Message)
		} else if d.Message != e.Message {
			fmt.Fprintf(&b, "\n  %s", d.Message)
		}
	}
	return b.String()
}

// StatusCode returns the HTTP status of an API error, or 0.
func StatusCode(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

// Client calls one Gateflow API server with one API key.
type Client struct {
	base *url.URL
	key  string
	hc   *http.Client
	// WatchRetries bounds reconnections of Watch after a dropped stream or
	// a server shutdown (default 5).
	WatchRetries int
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient uses hc (timeouts, transport) instead of a default client.
// Its Timeout must be 0 for Watch, which streams.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// New returns a client of the API at baseURL (e.g. http://127.0.0.1:8080).
func New(baseURL, apiKey string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("API URL %q: want http(s)://host[:port]", baseURL)
	}
	c := &Client{base: u, key: apiKey, hc: &http.Client{}, WatchRetries: 5}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// call sends a request and decodes a JSON answer into out (when not nil).
func (c *Client) call(ctx context.Context, method, path string, query url.Values, body any, hdr http.Header, out any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := c.request(ctx, method, path, query, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return resp, decodeError(resp)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return resp, nil
}

func (c *Client) request(ctx context.Context, method, path string, query url.Values, body io.Reader) (*http.Request, error) {
	// path is already escaped (url.PathEscape of each parameter).
	target := c.base.String() + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, err
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	req.Header.Set("Accept", "application/json")
	return req, nil
}

// decodeError reads an error answer.
func decodeError(resp *http.Response) error {
	e := &Error{StatusCode: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id")}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(s); err == nil {
			e.RetryAfter = time.Duration(n) * time.Second
		}
	}
	var body struct {
		Error struct {
			Code    string   `json:"code"`
			Message string   `json:"message"`
			Details []Detail `json:"details"`
		} `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if json.Unmarshal(b, &body) == nil && body.Error.Code != "" {
		e.Code, e.Message, e.Details = body.Error.Code, body.Error.Message, body.Error.Details
	} else {
		e.Code = "http_" + strconv.Itoa(resp.StatusCode)
		e.Message = strings.TrimSpace(string(b))
		if e.Message == "" {
			e.Message = http.StatusText(resp.StatusCode)
		}
	}
	return e
}

// SubmitRequest starts an orchestration: Definition (name) and Version (""
// for the latest), or Inline.
type SubmitRequest struct {
	Definition string
	Version    string
	Inline     *definition.Definition
	// Input is any JSON-encodable value (a map, a struct, json.RawMessage).
	Input  any
	Labels map[string]string
	// IdempotencyKey makes retries of this submission safe.
	IdempotencyKey string
	// RequestID is sent as X-Request-Id when set.
	RequestID string
}

// Submission is the answer of Submit.
type Submission struct {
	ID         string `json:"id"`
	RunID      string `json:"run_id"`
	Definition string `json:"definition"`
	Version    string `json:"version"`
	StatusURL  string `json:"status_url"`
	EventsURL  string `json:"events_url"`
	// Replayed is true when an idempotent retry found the existing workflow.
	Replayed bool `json:"-"`
}

// Submit starts an orchestration.
func (c *Client) Submit(ctx context.Context, r SubmitRequest) (Submission, error) {
	body := map[string]any{}
	switch {
	case r.Inline != nil:
		body["definition"] = r.Inline
	default:
		body["definition"] = r.Definition
		if r.Version != "" {
			body["version"] = r.Version
		}
	}
	if r.Input != nil {
		body["input"] = r.Input
	}
	if len(r.Labels) > 0 {
		body["labels"] = r.Labels
	}
	hdr := http.Header{}
	if r.IdempotencyKey != "" {
		hdr.Set("Idempotency-Key", r.IdempotencyKey)
	}
	if r.RequestID != "" {
		hdr.Set("X-Request-Id", r.RequestID)
	}
	var s Submission
	resp, err := c.call(ctx, http.MethodPost, "/v1/workflows", nil, body, hdr, &s)
	if err != nil {
		return Submission{}, err
	}
	s.Replayed = resp.StatusCode == http.StatusOK
	return s, nil
}

// Status returns an orchestration's status.
func (c *Client) Status(ctx context.Context, id string) (Status, error) {
	var st Status
	_, err := c.call(ctx, http.MethodGet, "/v1/workflows/"+url.PathEscape(id), nil, nil, nil, &st)
	return st, err
}

// ListOptions filter List; zero fields do not filter.
type ListOptions struct {
	Status        string // running, succeeded, failed, cancelled, terminated, timed-out
	Definition    string
	StartedAfter  time.Time
	StartedBefore time.Time
	Limit         int
	Cursor        string
}

// List returns one page of orchestrations in visibility order (running
// first, then the most recently closed).
func (c *Client) List(ctx context.Context, o ListOptions) (Page, error) {
	q := url.Values{}
	if o.Status != "" {
		q.Set("status", o.Status)
	}
	if o.Definition != "" {
		q.Set("definition", o.Definition)
	}
	if !o.StartedAfter.IsZero() {
		q.Set("started_after", o.StartedAfter.UTC().Format(time.RFC3339Nano))
	}
	if !o.StartedBefore.IsZero() {
		q.Set("started_before", o.StartedBefore.UTC().Format(time.RFC3339Nano))
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Cursor != "" {
		q.Set("cursor", o.Cursor)
	}
	var p Page
	_, err := c.call(ctx, http.MethodGet, "/v1/workflows", q, nil, nil, &p)
	return p, err
}

// Cancel requests cancellation of an orchestration.
func (c *Client) Cancel(ctx context.Context, id string) error {
	_, err := c.call(ctx, http.MethodPost, "/v1/workflows/"+url.PathEscape(id)+"/cancel", nil, nil, nil, nil)
	return err
}

// Approvals lists the approvals waiting for the caller.
func (c *Client) Approvals(ctx context.Context) (Approvals, error) {
	var a Approvals
	_, err := c.call(ctx, http.MethodGet, "/v1/approvals", nil, nil, nil, &a)
	return a, err
}

// Decide approves (decision "approve") or rejects ("reject") a waiting
// approval step.
func (c *Client) Decide(ctx context.Context, id, step, decision, comment string) (DecisionResult, error) {
	body := map[string]string{"decision": decision}
	if comment != "" {
		body["comment"] = comment
	}
	var res DecisionResult
	_, err := c.call(ctx, http.MethodPost, "/v1/workflows/"+url.PathEscape(id)+"/approvals/"+url.PathEscape(step), nil, body, nil, &res)
	return res, err
}

// Definitions lists the definition versions visible to the caller.
func (c *Client) Definitions(ctx context.Context) ([]DefinitionInfo, error) {
	var out struct {
		Items []DefinitionInfo `json:"items"`
	}
	_, err := c.call(ctx, http.MethodGet, "/v1/definitions", nil, nil, nil, &out)
	return out.Items, err
}

// Definition returns one definition version ("latest" for the latest).
func (c *Client) Definition(ctx context.Context, name, version string) (definition.Definition, error) {
	var d definition.Definition
	_, err := c.call(ctx, http.MethodGet, "/v1/definitions/"+url.PathEscape(name)+"/versions/"+url.PathEscape(version), nil, nil, nil, &d)
	return d, err
}

// PublishDefinition publishes def under its name and version (admin).
func (c *Client) PublishDefinition(ctx context.Context, def definition.Definition) (DefinitionInfo, error) {
	if def.Name == "" || def.Version == "" {
		return DefinitionInfo{}, errors.New("publish: the definition needs a name and a version")
	}
	var info DefinitionInfo
	_, err := c.call(ctx, http.MethodPut, "/v1/definitions/"+url.PathEscape(def.Name)+"/versions/"+url.PathEscape(def.Version), nil, def, nil, &info)
	return info, err
}

// Watch streams an orchestration's status (Server-Sent Events) and calls
// fn with each new status until the workflow closes; it returns the last
// status. A dropped stream or a server shutdown is reconnected (the server
// sends the whole current status first), at most WatchRetries times in a
// row. fn returning an error stops the watch with that error.
func (c *Client) Watch(ctx context.Context, id string, fn func(Status) error) (Status, error) {
	var last Status
	var lastSeq int64 = -1
	failures := 0
	for {
		ended, err := c.watchOnce(ctx, id, func(st Status) error {
			failures = 0
			if st.Seq == lastSeq && st.State == last.State {
				return nil // already seen before a reconnect
			}
			last, lastSeq = st, st.Seq
			if fn != nil {
				return fn(st)
			}
			return nil
		})
		if ended {
			return last, nil
		}
		var apiErr *Error
		if ctx.Err() != nil {
			return last, ctx.Err()
		}
		if errors.As(err, &apiErr) && apiErr.StatusCode < 500 && apiErr.StatusCode != http.StatusTooManyRequests {
			return last, err
		}
		var cbErr callbackError
		if errors.As(err, &cbErr) {
			return last, cbErr.err
		}
		failures++
		if failures > c.WatchRetries {
			return last, fmt.Errorf("watch %s: stream lost %d times: %w", id, failures, err)
		}
		delay := time.Duration(failures) * 250 * time.Millisecond
		if apiErr != nil && apiErr.RetryAfter > 0 {
			delay = apiErr.RetryAfter
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(delay):
		}
	}
}

type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }

// errStreamBroken is a stream that ended without an end event.
var errStreamBroken = errors.New("event stream ended early")

// watchOnce reads one event stream; ended is true after the "end" event.
func (c *Client) watchOnce(ctx context.Context, id string, fn func(Status) error) (ended bool, err error) {
	req, err := c.request(ctx, http.MethodGet, "/v1/workflows/"+url.PathEscape(id)+"/events", nil, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.hc.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return false, decodeError(resp)
	}
	rd := bufio.NewReaderSize(resp.Body, 64<<10)
	var event, data string
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				return false, errStreamBroken
			}
			return false, err
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			switch event {
			case "status":
				var st Status
				if err := json.Unmarshal([]byte(data), &st); err != nil {
					return false, fmt.Errorf("decode status event: %w", err)
				}
				if err := fn(st); err != nil {
					return false, callbackError{err}
				}
			case "end":
				return true, nil
			case "shutdown":
				return false, errors.New("server shutting down")
			}
			event, data = "", ""
		case strings.HasPrefix(line, ":"):
			// keep-alive comment
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			data += strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")
		}
	}
}
