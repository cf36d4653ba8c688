package record

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/gateflow/gateflow/activities/calls"
)

// checkSameAsEncodingJSON fails when the fast path accepts b but decodes it
// differently from encoding/json, or accepts what encoding/json refuses.
func checkSameAsEncodingJSON(t *testing.T, b []byte) (fast bool) {
	t.Helper()
	got, ok := decodeFast(b)
	var want Record
	err := json.Unmarshal(b, &want)
	if !ok {
		return false
	}
	if err != nil {
		t.Fatalf("fast path accepted what encoding/json refuses (%v): %q", err, b)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded differently from encoding/json:\ninput %q\nfast  %#v\njson  %#v", b, got, want)
	}
	return true
}

// decodeSeeds are messages in and around the wire format.
func decodeSeeds() []string {
	full := sampleRecord()
	min := Record{Schema: 1, ID: NewID(), TS: 1, Tenant: "t", Kind: calls.KindHTTP, Target: "svc", Outcome: OutcomeError}
	esc := Record{Schema: 1, ID: NewID(), TS: 2, Tenant: "t\n\t\r\x00\x1f\\\"", Kind: calls.KindIngress,
		Target: "POST /v1/x\u2028\u2029 é 日本 😀", Outcome: OutcomeTimeout, ErrorMsg: "bad \xff utf8",
		LatencyMS: 1e-9, CostUSD: 1e22, Labels: map[string]string{"": "", "k\"": "v\n"}}
	id := full.ID
	return []string{
		string(full.AppendJSON(nil)),
		string(min.AppendJSON(nil)),
		string(esc.AppendJSON(nil)),
		`{}`, ` { } `, `{"labels":{}}`, `{"labels":null}`, `{"tenant":null}`,
		`{"schema":1,"id":"` + id + `","ts":5,"kind":"http","outcome":"ok","new_field":{"a":[1,2.5e3,true,false,null,"x\u00e9"]}}`,
		`{"Tenant":"x"}`, `{"TENANT":"x","tenant":"y"}`, `{"tenant":"x","tenant":"y"}`,
		`{"labels":{"a":"1"},"labels":{"b":"2"}}`, `{"labels":{"a":"1","a":"2"}}`,
		`{"ts":1.0}`, `{"ts":1e3}`, `{"ts":-0}`, `{"ts":01}`, `{"ts":"5"}`, `{"attempt":2147483648}`, `{"attempt":-2147483648}`,
		`{"ts":9223372036854775808}`, `{"latency_ms":1e400}`, `{"latency_ms":-0.0}`, `{"latency_ms":.5}`, `{"latency_ms":1.}`,
		`{"latency_ms":+1}`, `{"cost_usd":1E-7}`, `{"latency_ms":0x10}`, `{"latency_ms":Infinity}`, `{"latency_ms":1_0}`,
		`{"tenant":"\ud83d\ude00"}`, `{"tenant":"\ud83d"}`, `{"tenant":"\ude00\ud83d"}`, `{"tenant":"\u00"}`, `{"tenant":"\x"}`,
		`{"tenant":"a` + "\x01" + `"}`, `{"tenant":"` + "\xff\xfe" + `"}`, `{"tenant":"\/"}`,
		`{"\u0074enant":"x"}`, `{"ſchema":1}`, "{\"tenant\":\"x\"}\n", `{"tenant":"x"} {}`, `{"tenant":"x",}`,
		`{"tenant":"x"`, `{"tenant"}`, `[1]`, `null`, `"x"`, ``, `{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
		`{"a":{"b":}}`, `{"a":tru}`, `{"a":"\q"}`, `{"labels":{"a":1}}`, `{"labels":[]}`, `{"kind":1}`,
	}
}

// checkSharedSameAsDecode fails when DecodeShared disagrees with Decode
// (record, id or error) on b, or changes b.
func checkSharedSameAsDecode(t *testing.T, b []byte) {
	t.Helper()
	want, werr := Decode(b)
	buf := append([]byte(nil), b...)
	var got Record
	id, err := DecodeShared(buf, &got)
	if string(buf) != string(b) {
		t.Fatalf("DecodeShared changed its input %q", b)
	}
	if (err == nil) != (werr == nil) || (err != nil && err.Error() != werr.Error()) {
		t.Fatalf("DecodeShared error %v, Decode %v: %q", err, werr, b)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeShared differs from Decode:\ninput %q\nshared %#v\ndecode %#v", b, got, want)
	}
	if wid, _ := uuid.Parse(want.ID); err == nil && id != wid {
		t.Fatalf("DecodeShared id %s, record id %s", id, want.ID)
	}
}

func TestDecodeMatchesEncodingJSON(t *testing.T) {
	fast := 0
	seeds := decodeSeeds()
	for _, s := range seeds {
		if checkSameAsEncodingJSON(t, []byte(s)) {
			fast++
		}
		checkSharedSameAsDecode(t, []byte(s))
	}
	// The wire format itself must take the fast path.
	for _, s := range seeds[:3] {
		if _, ok := decodeFast([]byte(s)); !ok {
			t.Errorf("wire message not decoded by the fast path: %s", s)
		}
	}
	t.Logf("%d of %d seeds on the fast path", fast, len(seeds))
}

func TestDecodeRandomRecords(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	str := func() string {
		var sb strings.Builder
		for range rng.IntN(12) {
			switch rng.IntN(5) {
			case 0:
				sb.WriteByte(byte(rng.IntN(256)))
			case 1:
				sb.WriteRune(rune(rng.IntN(0x11000)))
			default:
				sb.WriteByte(byte('a' + rng.IntN(26)))
			}
		}
		return sb.String()
	}
	fast := 0
	for range 3000 {
		r := Record{Schema: rng.IntN(3), ID: NewID(), TS: rng.Int64(), Tenant: str(), KeyID: str(), Kind: calls.Kind(str()),
			Target: str(), WorkflowID: str(), StepID: str(), Attempt: rng.Int32() - rng.Int32(), StatusCode: rng.Int32N(600),
			Outcome: Outcome(str()), LatencyMS: rng.NormFloat64() * float64(rng.IntN(1e6)), ReqBytes: rng.Int64N(1e9),
			TokensIn: rng.Int64N(3), CostUSD: rng.Float64() * float64(rng.IntN(2)), ErrorMsg: str(),
			Cache: str(), CostSavedUSD: rng.Float64() * float64(rng.IntN(2))}
		if rng.IntN(2) == 0 {
			r.Labels = map[string]string{}
			for range rng.IntN(6) {
				r.Labels[str()] = str()
			}
		}
		if checkSameAsEncodingJSON(t, r.AppendJSON(nil)) {
			fast++
		}
		checkSharedSameAsDecode(t, r.AppendJSON(nil))
	}
	if fast < 1000 {
		t.Errorf("only %d of 3000 random records on the fast path", fast)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range decodeSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkSameAsEncodingJSON(t, b)
		checkSharedSameAsDecode(t, b)
		// Decode never panics and agrees with the slow path on errors.
		_, err := Decode(b)
		var r Record
		if jerr := json.Unmarshal(b, &r); jerr == nil && err != nil && r.Validate() == nil {
			t.Fatalf("Decode refused what encoding/json accepts and validates: %v", err)
		}
	})
}

func BenchmarkDecodeEncodingJSON(b *testing.B) {
	r := sampleRecord()
	msg := r.AppendJSON(nil)
	b.ReportAllocs()
	for b.Loop() {
		var out Record
		_ = json.Unmarshal(msg, &out)
		_ = out.Validate()
	}
}

func TestDecodeAllocs(t *testing.T) {
	r := sampleRecord()
	r.TS = time.Now().UnixMilli()
	r.Labels = map[string]string{"region": "eu"}
	msg := r.AppendJSON(nil)
	n := testing.AllocsPerRun(100, func() { _, _ = Decode(msg) })
	// The message string and the labels map (strings with escapes add
	// one or two each).
	if n > 3 {
		t.Errorf("%v allocations per Decode", n)
	}
}
