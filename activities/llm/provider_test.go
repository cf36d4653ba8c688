package llm

import (
	"net/http"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		h    http.Header
		want time.Duration
	}{
		{http.Header{"Retry-After": {"5"}}, 5 * time.Second},
		{http.Header{"Retry-After": {"1.5"}}, 1500 * time.Millisecond},
		{http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}, 90 * time.Second},
		{http.Header{"Retry-After": {now.Add(-time.Minute).Format(http.TimeFormat)}}, 0},
		{http.Header{"Retry-After": {"soon"}}, 0},
		{http.Header{"Retry-After": {"-3"}}, 0},
		{http.Header{"Retry-After-Ms": {"250"}, "Retry-After": {"1"}}, 250 * time.Millisecond},
		{http.Header{}, 0},
	}
	for _, tc := range cases {
		if got := parseRetryAfter(tc.h, now); got != tc.want {
			t.Errorf("%v: got %s, want %s", tc.h, got, tc.want)
		}
	}
}

func TestShouldRetryHeader(t *testing.T) {
	e := statusError(500, http.Header{"X-Should-Retry": {"false"}}, "", "boom")
	if e.Class != ClassServer || e.Retryable() {
		t.Errorf("x-should-retry false: %+v retryable=%v", e, e.Retryable())
	}
	e = statusError(400, http.Header{"X-Should-Retry": {"true"}}, "", "lock")
	if !e.Retryable() {
		t.Errorf("x-should-retry true: %+v", e)
	}
}

func TestClassOfPlainErrors(t *testing.T) {
	if ClassOf(nil) != "" || ClassOf(errString("x")) != ClassInternal {
		t.Error("ClassOf")
	}
	e := &Error{Class: ClassRateLimit, Target: "p/m", Status: 429, Code: "rate_limit_exceeded", Message: "slow", RetryAfter: time.Second}
	if got := e.Error(); got != "p/m: rate_limit (HTTP 429) [rate_limit_exceeded]: slow (retry after 1s)" {
		t.Errorf("Error() = %q", got)
	}
	if redact("key sk-abcdef in text", "sk-abcdef") != "key [REDACTED] in text" || redact("abc", "ab") != "abc" {
		t.Error("redact")
	}
}
