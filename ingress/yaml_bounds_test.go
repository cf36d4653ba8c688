package ingress

import (
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
)

// yamlBomb is the body measured in issue 10: one 2 KB anchor referenced
// refs times (100k make 700 KB; the ingress held it 9 s and grew by 1.4 GB).
func yamlBomb(refs int) string {
	var b strings.Builder
	b.WriteString("x-a: &a \"" + strings.Repeat("A", 2048) + "\"\nsteps:\n")
	for i := 0; i < refs; i++ {
		b.WriteString("  - *a\n")
	}
	return b.String()
}

// TestPublishYAMLBounded publishes YAML definitions through the real
// handler: alias bombs and malformed documents get 413 or 400 in the error
// shape, and what a refused request allocates stays within a small
// multiple of its body (runtime.ReadMemStats; a memory bound, not a
// timing).
func TestPublishYAMLBounded(t *testing.T) {
	h := newHarness(t, nil)
	nested := "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
	for i := 1; i <= 9; i++ {
		p := "*l" + string(rune('0'+i-1))
		nested += "l" + string(rune('0'+i)) + ": &l" + string(rune('0'+i)) + " [" + strings.Repeat(p+", ", 9) + p + "]\n"
	}
	tests := []struct {
		name   string
		body   string
		status int
		code   string
	}{
		{"issue 10 body: 700 KB, 100k aliases of 2 KB", yamlBomb(100_000), 413, "payload_too_large"},
		{"fewer aliases, past the expanded-size bound", yamlBomb(2_000), 413, "payload_too_large"},
		{"nested laughs", nested, 413, "payload_too_large"},
		{"syntax", "steps: [", 400, "invalid_yaml"},
		{"alias inside its anchor", "steps: &s [*s]\n", 400, "invalid_yaml"},
		{"deep", strings.Repeat("- ", 200) + "x\n", 400, "invalid_yaml"},
		{"anchors within bounds", "steps:\n  - &w {id: a, kind: wait, duration: 1s}\n  - {<<: *w, id: b}\n", 201, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("PUT", "/v1/definitions/y/versions/"+string(rune('1'+i)), strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/yaml")
			req.Header.Set("Authorization", "Bearer "+testKeys["admin"].token)
			w := httptest.NewRecorder()
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			h.srv.Handler().ServeHTTP(w, req)
			took := time.Since(start)
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d bytes: %d in %v, allocated %d bytes", len(tt.body), w.Code, took, alloc)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			if tt.status < 400 {
				return
			}
			if e := apiErr(t, w); e.Code != tt.code || len(e.Details) == 0 {
				t.Fatalf("error %+v, want code %s", e, tt.code)
			}
			// Reading the body, the answer and the access record cost a
			// few copies; 8x the body (or 1 MiB for small ones) is ample
			// where the unbounded decoder allocated over 1000x.
			if bound := max(8*uint64(len(tt.body)), 1<<20); alloc > bound {
				t.Fatalf("allocated %d bytes, want at most %d", alloc, bound)
			}
		})
	}
}
