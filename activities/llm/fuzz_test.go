package llm

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// Fuzz targets: no input from a provider may panic the gateway.

func addFixtures(f *testing.F, patterns ...string) {
	for _, p := range patterns {
		files, _ := filepath.Glob(filepath.Join("testdata", p))
		for _, name := range files {
			b, err := os.ReadFile(name)
			if err == nil {
				f.Add(b)
			}
		}
	}
}

func FuzzSSEReader(f *testing.F) {
	addFixtures(f, "*/*.sse")
	f.Add([]byte("data: a\r\rdata: b\r\n\r\n: c\nevent: x\ndata"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s := newSSEReader(bytes.NewReader(in))
		s.max = 4 << 10
		for i := 0; i < len(in)+2; i++ {
			ev, err := s.next()
			if err != nil {
				return
			}
			if len(ev.Data) > s.max {
				t.Fatalf("event of %d bytes above the cap", len(ev.Data))
			}
		}
		t.Fatal("reader did not end")
	})
}

var fuzzTarget = &target{name: "p/m", upstream: "m", prov: &provider{name: "p", apiVersion: "v1"}}

// allAdapters are the wire formats fuzzed.
var allAdapters = []adapter{openaiAdapter{}, anthropicAdapter{}, geminiAdapter{}, azureAdapter{}, bedrockAdapter{}, vertexAdapter{}, cohereAdapter{}}

func FuzzDecodeResponse(f *testing.F) {
	addFixtures(f, "*/*.json")
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, a := range allAdapters {
			if resp, err := a.decodeResponse(fuzzTarget, body); err == nil && resp == nil {
				t.Fatal("nil response without error")
			}
			for _, status := range []int{400, 429, 500, 529} {
				if e := a.decodeError(status, http.Header{"Retry-After": {string(body)}}, body); e == nil || e.Class == "" {
					t.Fatalf("unclassified error for %d", status)
				}
			}
		}
	})
}

func FuzzDecodeStream(f *testing.F) {
	addFixtures(f, "*/*.sse")
	for _, name := range []string{"bedrock/stream.events.json", "bedrock/tool_stream.events.json", "bedrock/stream_throttled.events.json"} {
		f.Add(eventStream(f, name))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, a := range allAdapters {
			d := a.newDecoder(fuzzTarget, bytes.NewReader(body))
			for i := 0; ; i++ {
				c, err := d.next()
				if err == io.EOF {
					break
				}
				if err != nil {
					if _, ok := err.(*Error); !ok {
						t.Fatalf("unclassified error %T %v", err, err)
					}
					break
				}
				if c == nil {
					t.Fatal("nil chunk without error")
				}
				if i > len(body)+10 {
					t.Fatal("decoder did not end")
				}
			}
		}
	})
}

func FuzzEncodeRequest(f *testing.F) {
	addFixtures(f, "unified/*.json")
	f.Fuzz(func(t *testing.T, body []byte) {
		var req ChatRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return
		}
		measurePrompt(&req)
		for _, a := range allAdapters {
			_, _ = a.encodeRequest(fuzzTarget, &req, false)
		}
	})
}

func FuzzDecodeEmbeddings(f *testing.F) {
	addFixtures(f, "*/*embed*.json", "vertex/predict_embeddings.json")
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, a := range allAdapters {
			e, ok := a.(embedder)
			if !ok {
				continue
			}
			for _, n := range []int{1, 2} {
				if resp, err := e.decodeEmbeddings(fuzzTarget, [][]byte{body, body}, n); err == nil && resp == nil {
					t.Fatal("nil answer without error")
				}
			}
		}
		in, err := parseEmbeddingInput(body)
		if err == nil && (in.len() == 0 || in.len() > MaxEmbeddingInputs) {
			t.Fatalf("accepted %d inputs", in.len())
		}
	})
}

func FuzzJSONStringLen(f *testing.F) {
	for _, s := range []string{"", "hello", "é", "日本", "😀", "a\nb\"c\\", "<&>", "\u2028", "\x00\x1f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		raw, _ := json.Marshal(s)
		n, ok := jsonStringLen(raw)
		var back string
		_ = json.Unmarshal(raw, &back)
		if !ok || n != len(back) {
			t.Fatalf("jsonStringLen(%s) = %d, %v; want %d", raw, n, ok, len(back))
		}
		// Arbitrary bytes never panic.
		jsonStringLen([]byte(s))
	})
}
