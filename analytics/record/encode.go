package record

import (
	"errors"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Label keys with a meaning known to the analytics queries. Other labels are
// free-form.
const (
	// LabelRoles is set on approval records: the roles of the decider,
	// comma separated (e.g. "approver,admin"). The approval rollup counts a
	// decision once under each role.
	LabelRoles = "roles"
	// LabelDecision is set on approval records: "approve", "reject" or
	// "timeout" (the outcome is ok, rejected or timeout accordingly).
	LabelDecision = "decision"
	// LabelUser is the user name of an approval's decider, when known.
	LabelUser = "user"
	// LabelAPIState is set on calls to a catalogue API version that is
	// not plainly published: "deprecated" (or "draft", the owner's test
	// calls).
	LabelAPIState = "api_state"
)

// ErrDecode marks a message that is not a valid record; the sink sends such
// messages to the dead-letter topic.
var ErrDecode = errors.New("invalid call record")

// Key is the Kafka message key of the record: its workflow id, so that all
// calls of one orchestration land in one partition, or else its tenant.
func (r *Record) Key() string {
	if r.WorkflowID != "" {
		return r.WorkflowID
	}
	return r.Tenant
}

// AppendJSON appends the wire form of r to b and returns the extended
// slice. It writes exactly what encoding/json would decode back into an
// equal Record (same field names, same omitempty rules, label keys sorted),
// without reflection: the producer calls it on the request path.
// NaN and infinite floats, which JSON cannot carry, are written as 0;
// invalid UTF-8 is replaced by U+FFFD as encoding/json does.
func (r *Record) AppendJSON(b []byte) []byte {
	b = append(b, `{"schema":`...)
	b = strconv.AppendInt(b, int64(r.Schema), 10)
	b = appendStringField(b, "id", r.ID, false)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, r.TS, 10)
	b = appendStringField(b, "tenant", r.Tenant, false)
	b = appendStringField(b, "key_id", r.KeyID, true)
	b = appendStringField(b, "kind", string(r.Kind), false)
	b = appendStringField(b, "target", r.Target, false)
	b = appendStringField(b, "workflow_id", r.WorkflowID, true)
	b = appendStringField(b, "run_id", r.RunID, true)
	b = appendStringField(b, "definition", r.Definition, true)
	b = appendStringField(b, "version", r.Version, true)
	b = appendStringField(b, "step_id", r.StepID, true)
	b = appendIntField(b, "attempt", int64(r.Attempt))
	b = appendIntField(b, "status_code", int64(r.StatusCode))
	b = appendStringField(b, "outcome", string(r.Outcome), false)
	b = append(b, `,"latency_ms":`...)
	b = appendFloat(b, r.LatencyMS)
	b = appendIntField(b, "request_bytes", r.ReqBytes)
	b = appendIntField(b, "response_bytes", r.RespBytes)
	b = appendIntField(b, "tokens_in", r.TokensIn)
	b = appendIntField(b, "tokens_out", r.TokensOut)
	if r.CostUSD != 0 && !math.IsNaN(r.CostUSD) && !math.IsInf(r.CostUSD, 0) {
		b = append(b, `,"cost_usd":`...)
		b = appendFloat(b, r.CostUSD)
	}
	b = appendStringField(b, "cache", r.Cache, true)
	if r.CostSavedUSD != 0 && !math.IsNaN(r.CostSavedUSD) && !math.IsInf(r.CostSavedUSD, 0) {
		b = append(b, `,"cost_saved_usd":`...)
		b = appendFloat(b, r.CostSavedUSD)
	}
	b = appendStringField(b, "error_class", r.ErrorClass, true)
	b = appendStringField(b, "error_message", r.ErrorMsg, true)
	if len(r.Labels) > 0 {
		b = append(b, `,"labels":{`...)
		var small [8]string
		keys := small[:0]
		for k := range r.Labels {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, r.Labels[k])
		}
		b = append(b, '}')
	}
	b = appendStringField(b, "api", r.API, true)
	b = appendStringField(b, "api_version", r.APIVersion, true)
	b = appendStringField(b, "consumer", r.Consumer, true)
	b = appendStringField(b, "consumer_app", r.ConsumerApp, true)
	b = appendStringField(b, "upstream", r.Upstream, true)
	b = appendStringField(b, "method", r.Method, true)
	b = appendStringField(b, "route", r.Route, true)
	if r.UpstreamLatencyMS != 0 && !math.IsNaN(r.UpstreamLatencyMS) && !math.IsInf(r.UpstreamLatencyMS, 0) {
		b = append(b, `,"upstream_latency_ms":`...)
		b = appendFloat(b, r.UpstreamLatencyMS)
	}
	b = appendStringField(b, "cache_status", r.CacheStatus, true)
	b = appendIntField(b, "retries", int64(r.Retries))
	b = appendStringField(b, "trace_id", r.TraceID, true)
	b = appendStringField(b, "span_id", r.SpanID, true)
	return append(b, '}')
}

func appendStringField(b []byte, name, v string, omitEmpty bool) []byte {
	if omitEmpty && v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, v)
}

func appendIntField(b []byte, name string, v int64) []byte {
	if v == 0 {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, v, 10)
}

// appendFloat formats like encoding/json: shortest representation, with an
// exponent only for very small or very large magnitudes.
func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, '0')
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	return strconv.AppendFloat(b, f, format, -1, 64)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON but break JavaScript parsers;
		// escape them like encoding/json.
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
