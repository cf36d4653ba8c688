package record

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gateflow/gateflow/activities/calls"
)

func sampleRecord() Record {
	r := New(calls.KindModel, time.UnixMilli(1_750_000_000_123))
	r.Tenant = "acme"
	r.KeyID = "key-1"
	r.Target = "openai/gpt-4o"
	r.WorkflowID = "wf-1"
	r.RunID = "run-1"
	r.Definition = "triage"
	r.Version = "3"
	r.StepID = "classify"
	r.Attempt = 2
	r.StatusCode = 200
	r.Outcome = OutcomeOK
	r.LatencyMS = 123.456
	r.ReqBytes = 1000
	r.RespBytes = 2000
	r.TokensIn = 150
	r.TokensOut = 42
	r.CostUSD = 0.000123
	r.Cache = "miss"
	r.Labels = map[string]string{"region": "eu", "b": "x\"y", "a": "<&>"}
	return r
}

func TestAppendJSONRoundTrip(t *testing.T) {
	cases := map[string]Record{
		"full":    sampleRecord(),
		"minimal": {Schema: 1, ID: NewID(), TS: 1, Tenant: "t", Kind: calls.KindHTTP, Target: "svc", Outcome: OutcomeError},
		"escapes": {Schema: 1, ID: NewID(), TS: 2, Tenant: "t\n\t\r\x00\x1f\\\"", Kind: calls.KindIngress,
			Target: "POST /v1/x\u2028\u2029", Outcome: OutcomeTimeout, ErrorMsg: "bad \xff utf8 é 日本",
			LatencyMS: 1e-9, CostUSD: 1e22},
		"cache hit": {Schema: 1, ID: NewID(), TS: 4, Tenant: "t", Kind: calls.KindModel, Target: "p/m", Outcome: OutcomeOK,
			Cache: "hit", CostSavedUSD: 0.00042},
		"negative": {Schema: 1, ID: NewID(), TS: 3, Kind: calls.KindApproval, Outcome: OutcomeRejected, LatencyMS: -0.5, Attempt: -1},
		"proxy": {Schema: 1, ID: NewID(), TS: 4, Tenant: "acme", Kind: calls.KindProxy, Target: "orders", Outcome: OutcomeOK,
			API: "orders", Version: "2", Consumer: "acme/shop", Upstream: "10.0.0.1:8080@eu-1", Method: "GET",
			Route: "/orders/42?x=\"y\"", UpstreamLatencyMS: 0.731, CacheStatus: "miss", Retries: 1, StatusCode: 200,
			TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7"},
	}
	for name, r := range cases {
		t.Run(name, func(t *testing.T) {
			checkRoundTrip(t, r)
		})
	}
}

func checkRoundTrip(t *testing.T, r Record) {
	t.Helper()
	got := r.AppendJSON(nil)
	if !json.Valid(got) {
		t.Fatalf("invalid JSON: %s", got)
	}
	want, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var a, b Record
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want, &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("decoded differ:\nours:  %s\njson:  %s", got, want)
	}
	// Same keys present: omitempty rules match.
	var ka, kb map[string]any
	_ = json.Unmarshal(got, &ka)
	_ = json.Unmarshal(want, &kb)
	if len(ka) != len(kb) {
		t.Fatalf("field sets differ:\nours:  %s\njson:  %s", got, want)
	}
}

func TestAppendJSONRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	str := func() string {
		n := rng.IntN(12)
		var sb strings.Builder
		for range n {
			switch rng.IntN(4) {
			case 0:
				sb.WriteByte(byte(rng.IntN(256))) // any byte, maybe invalid UTF-8
			case 1:
				sb.WriteRune(rune(rng.IntN(0x3000)))
			default:
				sb.WriteByte(byte('a' + rng.IntN(26)))
			}
		}
		return sb.String()
	}
	for range 2000 {
		r := Record{Schema: 1, ID: NewID(), TS: rng.Int64(), Tenant: str(), KeyID: str(), Kind: calls.Kind(str()),
			Target: str(), StepID: str(), Attempt: rng.Int32N(5), Outcome: Outcome(str()),
			LatencyMS: rng.NormFloat64() * math.Pow(10, float64(rng.IntN(30)-15)), TokensIn: rng.Int64N(3),
			CostUSD: rng.Float64() * float64(rng.IntN(2)), ErrorMsg: str(),
			API: str(), Consumer: str(), Upstream: str(), Method: str(), Route: str(), CacheStatus: str(),
			UpstreamLatencyMS: rng.Float64() * float64(rng.IntN(2)), Retries: rng.Int32N(3)}
		if rng.IntN(2) == 0 {
			r.Labels = map[string]string{}
			for range rng.IntN(12) {
				r.Labels[str()] = str()
			}
		}
		checkRoundTrip(t, r)
	}
}

func TestAppendJSONNonFinite(t *testing.T) {
	r := sampleRecord()
	r.LatencyMS = math.NaN()
	r.CostUSD = math.Inf(1)
	got, err := Decode(r.AppendJSON(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got.LatencyMS != 0 || got.CostUSD != 0 {
		t.Fatalf("non-finite floats not zeroed: %+v", got)
	}
}

func TestDecode(t *testing.T) {
	good := sampleRecord()
	cases := []struct {
		name string
		in   string
		ok   bool
	}{
		{"valid", string(good.AppendJSON(nil)), true},
		{"unknown field ignored", `{"schema":1,"id":"` + good.ID + `","ts":5,"kind":"http","outcome":"ok","new_field":1}`, true},
		{"not json", `{"schema":1,`, false},
		{"newer schema", `{"schema":2,"id":"` + good.ID + `","ts":5,"kind":"http","outcome":"ok"}`, false},
		{"missing id", `{"schema":1,"ts":5,"kind":"http","outcome":"ok"}`, false},
		{"bad id", `{"schema":1,"id":"nope","ts":5,"kind":"http","outcome":"ok"}`, false},
		{"wrong type", `{"schema":1,"id":"` + good.ID + `","ts":"x","kind":"http","outcome":"ok"}`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode([]byte(c.in))
			if c.ok && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !c.ok && !errors.Is(err, ErrDecode) {
				t.Fatalf("want ErrDecode, got %v", err)
			}
		})
	}
}

func TestKey(t *testing.T) {
	r := Record{Tenant: "t"}
	if r.Key() != "t" {
		t.Fatal(r.Key())
	}
	r.WorkflowID = "wf"
	if r.Key() != "wf" {
		t.Fatal(r.Key())
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	r := sampleRecord()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = r.AppendJSON(buf[:0])
	}
}

func BenchmarkEncodingJSONMarshal(b *testing.B) {
	r := sampleRecord()
	b.ReportAllocs()
	for b.Loop() {
		_, _ = json.Marshal(&r)
	}
}

func BenchmarkDecode(b *testing.B) {
	r := sampleRecord()
	msg := r.AppendJSON(nil)
	b.ReportAllocs()
	for b.Loop() {
		_, _ = Decode(msg)
	}
}
