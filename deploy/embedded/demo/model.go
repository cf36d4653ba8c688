package demo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gateflow/gateflow/activities/llm"
)

// DemoModelName is the model the demo provider serves (any name is
// accepted and echoed back).
const DemoModelName = "echo"

// ErrorMarker in the last user message makes the demo model answer with
// an error status, e.g. "demo-error:429" or "demo-error:503", to try
// retries and fallbacks.
const ErrorMarker = "demo-error:"

// maxModelBody bounds a chat request.
const maxModelBody = 8 << 20

// model is a tiny OpenAI-compatible chat completions server with canned,
// deterministic answers: a templated text reply; valid JSON when
// response_format asks for it (an instance of the json_schema, or of the
// shape hinted in the prompt such as {"tags": [string]}); a call of the
// first tool when tools are offered. Usage counts are estimates (4 bytes a
// token).
type model struct {
	streamDelay time.Duration
}

func newModel(streamDelay time.Duration) http.Handler {
	m := &model{streamDelay: streamDelay}
	mux := http.NewServeMux()
	about(mux, Model, "An OpenAI-compatible model (POST /v1/chat/completions, plain and SSE; GET /v1/models) "+
		"giving canned, deterministic answers.")
	mux.HandleFunc("POST /v1/chat/completions", m.chat)
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []map[string]any{
			{"id": DemoModelName, "object": "model", "created": 0, "owned_by": "gateflow-demo"}}})
	})
	return mux
}

func openaiError(w http.ResponseWriter, status int, typ, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": typ, "code": code}})
}

func (m *model) chat(w http.ResponseWriter, r *http.Request) {
	var req llm.ChatRequest
	body, err := readAll(w, r, maxModelBody)
	if err != nil {
		openaiError(w, http.StatusBadRequest, "invalid_request_error", "invalid_body", err.Error())
		return
	}
	if err := json.Unmarshal(body, &req); err != nil {
		openaiError(w, http.StatusBadRequest, "invalid_request_error", "invalid_json", "body: "+err.Error())
		return
	}
	if len(req.Messages) == 0 {
		openaiError(w, http.StatusBadRequest, "invalid_request_error", "invalid_request", "messages must not be empty")
		return
	}
	if status := requestedError(req); status != 0 {
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		openaiError(w, status, "demo_error", "demo_error", fmt.Sprintf("the demo model answers %d when asked to (%s%d)", status, ErrorMarker, status))
		return
	}
	a := answer(&req)
	name := req.Model
	if name == "" {
		name = DemoModelName
	}
	id := "chatcmpl-demo-" + shortHash(string(body))
	if req.Stream {
		m.stream(w, r, &req, a, id, name)
		return
	}
	msg := llm.Message{Role: "assistant", ToolCalls: a.toolCalls}
	if a.toolCalls == nil {
		msg.Content, _ = json.Marshal(a.content)
	}
	writeJSON(w, http.StatusOK, llm.ChatResponse{
		ID: id, Object: llm.ObjectChatCompletion, Created: time.Now().Unix(), Model: name,
		Choices: []llm.Choice{{Index: 0, Message: msg, FinishReason: a.finish}},
		Usage:   a.usage,
	})
}

func readAll(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	return b.Bytes(), err
}

// stream writes the answer as chat.completion.chunk events: the role, the
// content a word at a time (or the tool call), the finish reason, the
// usage when asked for, then [DONE].
func (m *model) stream(w http.ResponseWriter, r *http.Request, req *llm.ChatRequest, a reply, id, name string) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	created := time.Now().Unix()
	send := func(c llm.ChatChunk) bool {
		c.ID, c.Object, c.Created, c.Model = id, llm.ObjectChatCompletionChunk, created, name
		if c.Choices == nil {
			c.Choices = []llm.ChunkChoice{}
		}
		b, _ := json.Marshal(c)
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	delta := func(d llm.Delta) llm.ChatChunk { return llm.ChatChunk{Choices: []llm.ChunkChoice{{Delta: d}}} }
	empty := ""
	if !send(delta(llm.Delta{Role: "assistant", Content: &empty})) {
		return
	}
	if a.toolCalls != nil {
		calls := make([]llm.ToolCall, len(a.toolCalls))
		for i, c := range a.toolCalls {
			c.Index = &i
			calls[i] = c
		}
		if !send(delta(llm.Delta{ToolCalls: calls})) {
			return
		}
	}
	for i, piece := range words(a.content) {
		if i > 0 && m.streamDelay > 0 {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(m.streamDelay):
			}
		}
		if !send(delta(llm.Delta{Content: &piece})) {
			return
		}
	}
	finish := a.finish
	if !send(llm.ChatChunk{Choices: []llm.ChunkChoice{{Delta: llm.Delta{}, FinishReason: &finish}}}) {
		return
	}
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		u := a.usage
		if !send(llm.ChatChunk{Usage: &u}) {
			return
		}
	}
	_, _ = fmt.Fprint(w, "data: [DONE]\n\n")
	_ = rc.Flush()
}

// words splits s into pieces that each end after a run of spaces, so that
// joining them gives s back.
func words(s string) []string {
	var out []string
	start := 0
	for i := 1; i < len(s); i++ {
		if s[i-1] == ' ' && s[i] != ' ' {
			out = append(out, s[start:i])
			start = i
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

var errorMarker = regexp.MustCompile(regexp.QuoteMeta(ErrorMarker) + `([45][0-9][0-9])`)

func requestedError(req llm.ChatRequest) int {
	m := errorMarker.FindStringSubmatch(lastText(req.Messages, "user"))
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// reply is the demo model's answer to a request.
type reply struct {
	content   string
	toolCalls []llm.ToolCall
	finish    string
	usage     llm.Usage
}

// answer builds the canned answer: a tool call when tools are offered
// (and the last message is not a tool's result), JSON when asked for,
// else a templated text.
func answer(req *llm.ChatRequest) reply {
	user := lastText(req.Messages, "user")
	g := generator{focus: focus(user)}
	a := reply{finish: llm.FinishStop}
	last := req.Messages[len(req.Messages)-1]
	switch {
	case len(req.Tools) > 0 && toolChoiceAllows(req.ToolChoice) && last.Role != "tool":
		t := chooseTool(req.Tools, req.ToolChoice)
		args, _ := json.Marshal(g.instance(schemaOf(t.Function.Parameters), 0))
		a.toolCalls = []llm.ToolCall{{
			ID: "call_demo_" + shortHash(t.Function.Name+string(args)), Type: "function",
			Function: llm.FunctionCall{Name: t.Function.Name, Arguments: string(args)},
		}}
		a.finish = llm.FinishToolCalls
	case last.Role == "tool":
		a.content = "The demo model read the tool's answer: " + excerpt(last.Text(), 200)
	case req.ResponseFormat != nil && req.ResponseFormat.Type == "json_schema":
		var wrapper struct {
			Schema json.RawMessage `json:"schema"`
		}
		_ = json.Unmarshal(req.ResponseFormat.JSONSchema, &wrapper)
		g.root = schemaOf(wrapper.Schema)
		b, _ := json.Marshal(g.instance(g.root, 0))
		a.content = string(b)
	case req.ResponseFormat != nil && req.ResponseFormat.Type == "json_object":
		b, _ := json.Marshal(g.instance(hintedSchema(req.Messages), 0))
		a.content = string(b)
	default:
		a.content = fmt.Sprintf("This is Gateflow's demo model, with canned answers (configure a real model for real ones). "+
			"You wrote: %q", excerpt(user, 160))
		if limit := maxTokens(req); limit > 0 && estimateTokens(a.content) > limit {
			a.content = truncateUTF8(a.content, int(limit)*4)
			a.finish = llm.FinishLength
		}
	}
	prompt := int64(2)
	for _, m := range req.Messages {
		prompt += estimateTokens(m.Text()) + 4
	}
	completion := estimateTokens(a.content)
	for _, c := range a.toolCalls {
		completion += estimateTokens(c.Function.Name + c.Function.Arguments)
	}
	a.usage = llm.Usage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion}
	return a
}

func maxTokens(req *llm.ChatRequest) int64 {
	switch {
	case req.MaxCompletionTokens != nil:
		return int64(*req.MaxCompletionTokens)
	case req.MaxTokens != nil:
		return int64(*req.MaxTokens)
	}
	return 0
}

// estimateTokens is the demo's token count: 4 bytes a token.
func estimateTokens(s string) int64 { return int64(len(s)+3) / 4 }

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func excerpt(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	return truncateUTF8(s, n) + "..."
}

func lastText(msgs []llm.Message, role string) string {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == role {
			return msgs[i].Text()
		}
	}
	return ""
}

// focus is what a prompt is about: its first line with text, after a
// "Label: " prefix ("Tags for: Blue mug" -> "Blue mug"); a line that is
// only a label ("Summarize:") announces the next one.
func focus(s string) string {
	for line := range strings.SplitSeq(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasSuffix(line, ":") {
			continue
		}
		if i := strings.LastIndex(line, ": "); i >= 0 && strings.TrimSpace(line[i+2:]) != "" {
			line = strings.TrimSpace(line[i+2:])
		}
		return line
	}
	return "nothing"
}

func toolChoiceAllows(raw json.RawMessage) bool {
	var s string
	return json.Unmarshal(raw, &s) != nil || s != "none"
}

func chooseTool(tools []llm.Tool, raw json.RawMessage) llm.Tool {
	var c struct {
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if json.Unmarshal(raw, &c) == nil && c.Function.Name != "" {
		for _, t := range tools {
			if t.Function.Name == c.Function.Name {
				return t
			}
		}
	}
	return tools[0]
}

// schema is a decoded JSON Schema (the subset the generator reads).
type schema = map[string]any

func schemaOf(raw json.RawMessage) schema {
	var s schema
	_ = json.Unmarshal(raw, &s)
	return s
}

// hintedSchema finds the JSON shape a prompt asks for, like
// `Answer with JSON: {"tags": [string]}` or an example object, and turns
// it into a schema; without one, {"reply": string}.
func hintedSchema(msgs []llm.Message) schema {
	for _, role := range []string{"system", "user"} {
		for _, m := range msgs {
			if m.Role != role {
				continue
			}
			if s := shapeIn(m.Text()); s != nil {
				return s
			}
		}
	}
	return schema{"type": "object", "properties": map[string]any{"reply": map[string]any{"type": "string"}}}
}

// shapeIn returns the schema of the first {...} in text that parses as
// JSON once bare type names (string, number, integer, boolean) are quoted.
func shapeIn(text string) schema {
	for i := strings.IndexByte(text, '{'); i >= 0; {
		if end := matchingBrace(text[i:]); end > 0 {
			var v any
			if err := json.Unmarshal([]byte(quoteTypeNames(text[i:i+end+1])), &v); err == nil {
				if obj, ok := v.(map[string]any); ok {
					return shapeSchema(obj).(schema)
				}
			}
		}
		next := strings.IndexByte(text[i+1:], '{')
		if next < 0 {
			break
		}
		i += next + 1
	}
	return nil
}

// matchingBrace returns the index of the } closing s[0], or -1.
func matchingBrace(s string) int {
	depth, inStr, esc := 0, false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '{':
			depth++
		case c == '}':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

var typeNames = map[string]bool{"string": true, "number": true, "integer": true, "boolean": true}

// quoteTypeNames quotes the bare type names outside strings.
func quoteTypeNames(s string) string {
	var b strings.Builder
	inStr, esc := false, false
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case c == '"':
			inStr = !inStr
		case !inStr && unicode.IsLetter(rune(c)):
			j := i
			for j < len(s) && (unicode.IsLetter(rune(s[j])) || s[j] == '_') {
				j++
			}
			if typeNames[s[i:j]] {
				b.WriteString(`"` + s[i:j] + `"`)
			} else {
				b.WriteString(s[i:j])
			}
			i = j
			continue
		}
		b.WriteByte(c)
		i++
	}
	return b.String()
}

// shapeSchema turns an example value into a schema.
func shapeSchema(v any) any {
	switch t := v.(type) {
	case map[string]any:
		props := map[string]any{}
		for k, x := range t {
			props[k] = shapeSchema(x)
		}
		return schema{"type": "object", "properties": props}
	case []any:
		items := any(schema{"type": "string"})
		if len(t) > 0 {
			items = shapeSchema(t[0])
		}
		return schema{"type": "array", "items": items}
	case string:
		if typeNames[t] {
			return schema{"type": t}
		}
		return schema{"type": "string"}
	case float64:
		return schema{"type": "number"}
	case bool:
		return schema{"type": "boolean"}
	}
	return schema{"type": "string"}
}

// generator builds a deterministic instance of a schema from the prompt's
// focus.
type generator struct {
	focus string
	root  schema
}

// maxDepth bounds nested schemas (and $ref cycles).
const maxDepth = 16

func (g generator) instance(s schema, depth int) any {
	if s == nil || depth > maxDepth {
		return nil
	}
	if ref, ok := s["$ref"].(string); ok {
		return g.instance(g.resolve(ref), depth+1)
	}
	if c, ok := s["const"]; ok {
		return c
	}
	if e, ok := s["enum"].([]any); ok && len(e) > 0 {
		return e[0]
	}
	for _, k := range []string{"anyOf", "oneOf", "allOf"} {
		if alts, ok := s[k].([]any); ok && len(alts) > 0 {
			if sub, ok := alts[0].(map[string]any); ok {
				return g.instance(sub, depth+1)
			}
		}
	}
	switch typeOf(s) {
	case "object":
		props, _ := s["properties"].(map[string]any)
		out := map[string]any{}
		for _, k := range sortedKeys(props) {
			sub, _ := props[k].(map[string]any)
			out[k] = g.value(k, sub, depth+1)
		}
		return out
	case "array":
		items, _ := s["items"].(map[string]any)
		return g.array(items, s, depth)
	}
	return g.scalar("value", s)
}

// value is the instance of a property's schema, named key.
func (g generator) value(key string, s schema, depth int) any {
	if s == nil {
		return "demo " + key
	}
	for _, k := range []string{"$ref", "const", "enum", "anyOf", "oneOf", "allOf"} {
		if _, ok := s[k]; ok {
			return g.instance(s, depth)
		}
	}
	if t := typeOf(s); t == "object" || t == "array" {
		return g.instance(s, depth)
	}
	return g.scalar(key, s)
}

// scalar is a string, number, integer, boolean or null instance.
func (g generator) scalar(key string, s schema) any {
	switch typeOf(s) {
	case "number", "integer":
		n := 1.0
		if v, ok := s["minimum"].(float64); ok {
			n = v
		} else if v, ok := s["exclusiveMinimum"].(float64); ok {
			n = v + 1
		}
		if v, ok := s["maximum"].(float64); ok && n > v {
			n = v
		}
		if typeOf(s) == "integer" {
			return int64(n)
		}
		return n
	case "boolean":
		return true
	case "null":
		return nil
	}
	return g.text(key, s)
}

func (g generator) text(key string, s schema) string {
	var v string
	switch s["format"] {
	case "email":
		v = "demo@example.com"
	case "date-time":
		v = "2000-01-01T00:00:00Z"
	case "date":
		v = "2000-01-01"
	case "uri", "url":
		v = "https://example.com/demo"
	default:
		v = "Demo " + strings.ReplaceAll(key, "_", " ") + " for " + g.focus
	}
	if n, ok := s["maxLength"].(float64); ok && utf8.RuneCountInString(v) > int(n) {
		v = string([]rune(v)[:int(n)])
	}
	if n, ok := s["minLength"].(float64); ok {
		for utf8.RuneCountInString(v) < int(n) {
			v += "."
		}
	}
	return v
}

// array gives string lists the focus's keywords (up to 3, at least one,
// padded to minItems), other lists their minimum length (at least one
// item).
func (g generator) array(items schema, s schema, depth int) []any {
	lo, hi := 0, -1
	if v, ok := s["minItems"].(float64); ok {
		lo = int(v)
	}
	if v, ok := s["maxItems"].(float64); ok {
		hi = int(v)
	}
	clamp := func(n int) int {
		if hi >= 0 && n > hi {
			n = hi
		}
		return max(n, lo)
	}
	out := []any{}
	if items == nil || (typeOf(items) == "string" && items["enum"] == nil && items["format"] == nil) {
		kw := keywords(g.focus)
		n := clamp(max(min(3, len(kw)), 1))
		for i := 0; i < n; i++ {
			if i < len(kw) {
				out = append(out, kw[i])
			} else {
				out = append(out, "demo"+strconv.Itoa(i+1))
			}
		}
		return out
	}
	for range clamp(1) {
		out = append(out, g.instance(items, depth+1))
	}
	return out
}

func (g generator) resolve(ref string) schema {
	path, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil
	}
	var cur any = g.root
	for part := range strings.SplitSeq(path, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")]
	}
	s, _ := cur.(map[string]any)
	return s
}

// typeOf is a schema's type: the first non-null of a type list; object
// when there are properties.
func typeOf(s schema) string {
	switch t := s["type"].(type) {
	case string:
		return t
	case []any:
		for _, x := range t {
			if str, ok := x.(string); ok && str != "null" {
				return str
			}
		}
	}
	if _, ok := s["properties"]; ok {
		return "object"
	}
	if _, ok := s["items"]; ok {
		return "array"
	}
	return ""
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

var stopwords = map[string]bool{
	"the": true, "and": true, "for": true, "with": true, "from": true, "that": true, "this": true,
	"into": true, "your": true, "our": true, "are": true, "was": true, "write": true, "about": true,
}

// keywords are the distinct lower-case words of s (3 letters or more, not
// stopwords), in order.
func keywords(s string) []string {
	var out []string
	seen := map[string]bool{}
	for w := range strings.FieldsFuncSeq(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		if utf8.RuneCountInString(w) < 3 || stopwords[w] || seen[w] {
			continue
		}
		seen[w] = true
		out = append(out, w)
	}
	return out
}
