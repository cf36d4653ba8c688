package record

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/google/uuid"

	"github.com/gateflow/gateflow/activities/calls"
)

// Decode parses a wire message and validates it. Unknown fields are
// ignored (a newer writer may add fields without bumping the version);
// a newer schema version is refused. Errors wrap ErrDecode.
//
// Messages in the form AppendJSON writes (and any JSON object with exact
// field names, string values without invalid UTF-8, integer numbers for
// integer fields) are decoded by a parser without reflection that makes
// one allocation for the strings plus the labels map; anything else goes
// through encoding/json, so the result is always what encoding/json would
// decode (a fuzz test checks it).
func Decode(b []byte) (Record, error) {
	r, ok := decodeFast(b)
	if !ok {
		// A variable of its own: taking r's address would move r to the
		// heap on the fast path too.
		var slow Record
		if err := json.Unmarshal(b, &slow); err != nil {
			return Record{}, fmt.Errorf("%w: %v", ErrDecode, err)
		}
		r = slow
	}
	if err := r.Validate(); err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrDecode, err)
	}
	return r, nil
}

// DecodeShared is Decode into *r for a caller that hands b over, such as
// a Kafka consumer with a freshly read message: on the fast path the
// record's strings share b's memory instead of a copy of it (one
// allocation and copy less per message), so b must never be modified
// afterwards. It also returns the id parsed, which validation parses
// anyway. On error *r is the zero Record.
func DecodeShared(b []byte, r *Record) (uuid.UUID, error) {
	*r = Record{}
	ok := len(b) > 0 && decodeInto(unsafe.String(&b[0], len(b)), r)
	if !ok {
		*r = Record{}
		if err := json.Unmarshal(b, r); err != nil {
			*r = Record{}
			return uuid.UUID{}, fmt.Errorf("%w: %v", ErrDecode, err)
		}
	}
	id, err := r.validate()
	if err != nil {
		*r = Record{}
		return uuid.UUID{}, fmt.Errorf("%w: %v", ErrDecode, err)
	}
	return id, nil
}

// field numbers, for duplicate detection.
const (
	fSchema = iota
	fID
	fTS
	fTenant
	fKeyID
	fKind
	fTarget
	fWorkflowID
	fRunID
	fDefinition
	fVersion
	fStepID
	fAttempt
	fStatusCode
	fOutcome
	fLatency
	fReqBytes
	fRespBytes
	fTokensIn
	fTokensOut
	fCost
	fCache
	fCostSaved
	fErrorClass
	fErrorMsg
	fLabels
	fAPI
	fAPIVersion
	fConsumer
	fConsumerApp
	fUpstream
	fMethod
	fRoute
	fUpstreamLatency
	fCacheStatus
	fRetries
	fTraceID
	fSpanID
	numFields
)

var fieldNames = [numFields]string{"schema", "id", "ts", "tenant", "key_id", "kind", "target", "workflow_id", "run_id",
	"definition", "version", "step_id", "attempt", "status_code", "outcome", "latency_ms", "request_bytes",
	"response_bytes", "tokens_in", "tokens_out", "cost_usd", "cache", "cost_saved_usd", "error_class", "error_message", "labels",
	"api", "api_version", "consumer", "consumer_app", "upstream", "method", "route", "upstream_latency_ms", "cache_status", "retries",
	"trace_id", "span_id"}

func fieldOf(key string) int {
	switch key {
	case "schema":
		return fSchema
	case "id":
		return fID
	case "ts":
		return fTS
	case "tenant":
		return fTenant
	case "key_id":
		return fKeyID
	case "kind":
		return fKind
	case "target":
		return fTarget
	case "workflow_id":
		return fWorkflowID
	case "run_id":
		return fRunID
	case "definition":
		return fDefinition
	case "version":
		return fVersion
	case "step_id":
		return fStepID
	case "attempt":
		return fAttempt
	case "status_code":
		return fStatusCode
	case "outcome":
		return fOutcome
	case "latency_ms":
		return fLatency
	case "request_bytes":
		return fReqBytes
	case "response_bytes":
		return fRespBytes
	case "tokens_in":
		return fTokensIn
	case "tokens_out":
		return fTokensOut
	case "cost_usd":
		return fCost
	case "cache":
		return fCache
	case "cost_saved_usd":
		return fCostSaved
	case "error_class":
		return fErrorClass
	case "error_message":
		return fErrorMsg
	case "upstream":
		return fUpstream
	case "method":
		return fMethod
	case "route":
		return fRoute
	case "upstream_latency_ms":
		return fUpstreamLatency
	case "cache_status":
		return fCacheStatus
	case "retries":
		return fRetries
	case "trace_id":
		return fTraceID
	case "span_id":
		return fSpanID
	case "labels":
		return fLabels
	case "api":
		return fAPI
	case "api_version":
		return fAPIVersion
	case "consumer":
		return fConsumer
	case "consumer_app":
		return fConsumerApp
	}
	return -1
}

// foldsToField reports whether encoding/json would match key to a field
// case-insensitively (it accepts "Tenant" for "tenant"). Keys reaching
// here are ASCII.
func foldsToField(key string) bool {
	for _, name := range fieldNames {
		if len(name) != len(key) {
			continue
		}
		same := true
		for i := 0; i < len(key); i++ {
			a, b := key[i], name[i]
			if 'A' <= a && a <= 'Z' {
				a += 'a' - 'A'
			}
			if a != b {
				same = false
				break
			}
		}
		if same {
			return true
		}
	}
	return false
}

// maxSkipDepth bounds the nesting of unknown fields' values the fast path
// skips; deeper ones go to encoding/json.
const maxSkipDepth = 64

// decoder is the fast path's state. s is the whole message as one string:
// fields without escapes are substrings of it.
type decoder struct {
	s string
	i int
}

// decodeFast decodes b when it can be sure to produce exactly what
// encoding/json would; ok=false means "use encoding/json" (b may be
// invalid, or merely unusual).
func decodeFast(b []byte) (r Record, ok bool) {
	if !decodeInto(string(b), &r) {
		return Record{}, false
	}
	return r, true
}

// decodeInto is decodeFast on s into *r, which must be zero; on false *r
// holds a partial record.
func decodeInto(s string, r *Record) bool {
	d := decoder{s: s}
	d.ws()
	if !d.eat('{') {
		return false
	}
	var seen [numFields]bool
	d.ws()
	if d.eat('}') {
		return d.end()
	}
	for {
		d.ws()
		key, ok := d.rawKey()
		if !ok {
			return false
		}
		d.ws()
		if !d.eat(':') {
			return false
		}
		d.ws()
		f := fieldOf(key)
		switch {
		case f < 0 && foldsToField(key):
			return false
		case f < 0:
			if !d.skip(0) {
				return false
			}
		case seen[f]:
			// Duplicates: encoding/json merges maps and keeps the last
			// scalar; leave such messages to it.
			return false
		default:
			seen[f] = true
			if !d.field(r, f) {
				return false
			}
		}
		d.ws()
		if d.eat(',') {
			continue
		}
		if d.eat('}') {
			return d.end()
		}
		return false
	}
}

func (d *decoder) field(r *Record, f int) bool {
	var ok bool
	switch f {
	case fSchema:
		var v int64
		v, ok = d.int(strconv.IntSize)
		r.Schema = int(v)
	case fID:
		r.ID, ok = d.str()
	case fTS:
		r.TS, ok = d.int(64)
	case fTenant:
		r.Tenant, ok = d.str()
	case fKeyID:
		r.KeyID, ok = d.str()
	case fKind:
		var s string
		s, ok = d.str()
		r.Kind = calls.Kind(s)
	case fTarget:
		r.Target, ok = d.str()
	case fWorkflowID:
		r.WorkflowID, ok = d.str()
	case fRunID:
		r.RunID, ok = d.str()
	case fDefinition:
		r.Definition, ok = d.str()
	case fVersion:
		r.Version, ok = d.str()
	case fStepID:
		r.StepID, ok = d.str()
	case fAttempt:
		var v int64
		v, ok = d.int(32)
		r.Attempt = int32(v)
	case fStatusCode:
		var v int64
		v, ok = d.int(32)
		r.StatusCode = int32(v)
	case fOutcome:
		var s string
		s, ok = d.str()
		r.Outcome = Outcome(s)
	case fLatency:
		r.LatencyMS, ok = d.float()
	case fReqBytes:
		r.ReqBytes, ok = d.int(64)
	case fRespBytes:
		r.RespBytes, ok = d.int(64)
	case fTokensIn:
		r.TokensIn, ok = d.int(64)
	case fTokensOut:
		r.TokensOut, ok = d.int(64)
	case fCost:
		r.CostUSD, ok = d.float()
	case fCache:
		r.Cache, ok = d.str()
	case fCostSaved:
		r.CostSavedUSD, ok = d.float()
	case fErrorClass:
		r.ErrorClass, ok = d.str()
	case fErrorMsg:
		r.ErrorMsg, ok = d.str()
	case fUpstream:
		r.Upstream, ok = d.str()
	case fMethod:
		r.Method, ok = d.str()
	case fRoute:
		r.Route, ok = d.str()
	case fUpstreamLatency:
		r.UpstreamLatencyMS, ok = d.float()
	case fCacheStatus:
		r.CacheStatus, ok = d.str()
	case fRetries:
		var v int64
		v, ok = d.int(32)
		r.Retries = int32(v)
	case fTraceID:
		r.TraceID, ok = d.str()
	case fSpanID:
		r.SpanID, ok = d.str()
	case fLabels:
		r.Labels, ok = d.labels()
	case fAPI:
		r.API, ok = d.str()
	case fAPIVersion:
		r.APIVersion, ok = d.str()
	case fConsumer:
		r.Consumer, ok = d.str()
	case fConsumerApp:
		r.ConsumerApp, ok = d.str()
	}
	return ok
}

func (d *decoder) ws() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) eat(c byte) bool {
	if d.i < len(d.s) && d.s[d.i] == c {
		d.i++
		return true
	}
	return false
}

// end accepts only trailing whitespace.
func (d *decoder) end() bool {
	d.ws()
	return d.i == len(d.s)
}

// rawKey reads an object key made of printable ASCII without escapes.
func (d *decoder) rawKey() (string, bool) {
	if !d.eat('"') {
		return "", false
	}
	start := d.i
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			k := d.s[start:d.i]
			d.i++
			return k, true
		case c == '\\' || c < 0x20 || c >= utf8.RuneSelf:
			return "", false
		}
		d.i++
	}
	return "", false
}

// str reads a JSON string. Strings with invalid UTF-8 or lone surrogates
// (which encoding/json replaces with U+FFFD) are left to encoding/json.
func (d *decoder) str() (string, bool) {
	if !d.eat('"') {
		return "", false
	}
	start := d.i
	ascii := true
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			v := d.s[start:d.i]
			d.i++
			if !ascii && !utf8.ValidString(v) {
				return "", false
			}
			return v, true
		case c == '\\':
			return d.escaped(start)
		case c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		d.i++
	}
	return "", false
}

// escaped continues str from the first backslash, building the value.
func (d *decoder) escaped(start int) (string, bool) {
	buf := make([]byte, 0, d.i-start+16)
	buf = append(buf, d.s[start:d.i]...)
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			d.i++
			if !utf8.Valid(buf) {
				return "", false
			}
			return string(buf), true
		case c < 0x20:
			return "", false
		case c != '\\':
			buf = append(buf, c)
			d.i++
			continue
		}
		if d.i+1 >= len(d.s) {
			return "", false
		}
		e := d.s[d.i+1]
		d.i += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return "", false
			}
			if utf16.IsSurrogate(r) {
				// Only a valid pair is decoded here.
				if d.i+1 >= len(d.s) || d.s[d.i] != '\\' || d.s[d.i+1] != 'u' {
					return "", false
				}
				d.i += 2
				r2, ok := d.hex4()
				if !ok {
					return "", false
				}
				r = utf16.DecodeRune(r, r2)
				if r == utf8.RuneError {
					return "", false
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", false
		}
	}
	return "", false
}

func (d *decoder) hex4() (rune, bool) {
	if d.i+4 > len(d.s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(d.s[d.i : d.i+4]) {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	d.i += 4
	return r, true
}

// number reads a token of the JSON number grammar and reports whether it
// is an integer (no fraction, no exponent).
func (d *decoder) number() (tok string, integer, ok bool) {
	start := d.i
	d.eat('-')
	switch {
	case d.eat('0'):
	case d.i < len(d.s) && '1' <= d.s[d.i] && d.s[d.i] <= '9':
		d.digits()
	default:
		return "", false, false
	}
	integer = true
	if d.eat('.') {
		integer = false
		if d.digits() == 0 {
			return "", false, false
		}
	}
	if d.eat('e') || d.eat('E') {
		integer = false
		if !d.eat('+') {
			d.eat('-')
		}
		if d.digits() == 0 {
			return "", false, false
		}
	}
	return d.s[start:d.i], integer, true
}

func (d *decoder) digits() int {
	n := 0
	for d.i < len(d.s) && '0' <= d.s[d.i] && d.s[d.i] <= '9' {
		d.i++
		n++
	}
	return n
}

// int reads an integer that fits bits; anything else (fractions,
// overflow, another type) is left to encoding/json, which refuses it.
func (d *decoder) int(bits int) (int64, bool) {
	tok, integer, ok := d.number()
	if !ok || !integer {
		return 0, false
	}
	v, err := strconv.ParseInt(tok, 10, bits)
	return v, err == nil
}

func (d *decoder) float() (float64, bool) {
	tok, _, ok := d.number()
	if !ok {
		return 0, false
	}
	// encoding/json parses float64 fields with the same call.
	v, err := strconv.ParseFloat(tok, 64)
	return v, err == nil
}

// labels reads an object of strings; like encoding/json, {} gives an empty
// (non-nil) map.
func (d *decoder) labels() (map[string]string, bool) {
	if !d.eat('{') {
		return nil, false
	}
	m := make(map[string]string, 4)
	d.ws()
	if d.eat('}') {
		return m, true
	}
	for {
		d.ws()
		k, ok := d.str()
		if !ok {
			return nil, false
		}
		if _, dup := m[k]; dup {
			return nil, false
		}
		d.ws()
		if !d.eat(':') {
			return nil, false
		}
		d.ws()
		v, ok := d.str()
		if !ok {
			return nil, false
		}
		m[k] = v
		d.ws()
		if d.eat(',') {
			continue
		}
		if d.eat('}') {
			return m, true
		}
		return nil, false
	}
}

// skip passes over one valid JSON value (an unknown field's).
func (d *decoder) skip(depth int) bool {
	if depth > maxSkipDepth || d.i >= len(d.s) {
		return false
	}
	switch c := d.s[d.i]; {
	case c == '"':
		return d.skipString()
	case c == '-' || ('0' <= c && c <= '9'):
		_, _, ok := d.number()
		return ok
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	case c == '[':
		d.i++
		d.ws()
		if d.eat(']') {
			return true
		}
		for {
			d.ws()
			if !d.skip(depth + 1) {
				return false
			}
			d.ws()
			if d.eat(',') {
				continue
			}
			return d.eat(']')
		}
	case c == '{':
		d.i++
		d.ws()
		if d.eat('}') {
			return true
		}
		for {
			d.ws()
			if !d.skipString() {
				return false
			}
			d.ws()
			if !d.eat(':') {
				return false
			}
			d.ws()
			if !d.skip(depth + 1) {
				return false
			}
			d.ws()
			if d.eat(',') {
				continue
			}
			return d.eat('}')
		}
	}
	return false
}

func (d *decoder) literal(lit string) bool {
	if len(d.s)-d.i >= len(lit) && d.s[d.i:d.i+len(lit)] == lit {
		d.i += len(lit)
		return true
	}
	return false
}

// skipString passes over a syntactically valid string (its content is
// discarded, so invalid UTF-8 does not matter).
func (d *decoder) skipString() bool {
	if !d.eat('"') {
		return false
	}
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			d.i++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			if d.i+1 >= len(d.s) {
				return false
			}
			switch d.s[d.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				d.i += 2
			case 'u':
				d.i += 2
				if _, ok := d.hex4(); !ok {
					return false
				}
			default:
				return false
			}
			continue
		}
		d.i++
	}
	return false
}
