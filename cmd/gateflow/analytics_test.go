package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestHumanCell(t *testing.T) {
	for _, tc := range []struct {
		column, cell, valueAs, want string
	}{
		{"error_rate", "0.052668142665635", "", "5.27 %"},
		{"error_rate", "0.000014260859644619378", "", "<0.01 %"},
		{"error_rate", "0", "", "0 %"},
		{"current.error_rate", "0.25", "", "25.0 %"},
		{"error_rate", "1", "", "100 %"},
		{"calls_change", "0.1234", "", "+12 %"},
		{"latency_p95_change", "-0.04", "", "-4.0 %"},
		{"cost_change", "", "", "new"},
		{"latency_p50_ms", "0.4213", "", "0.42 ms"},
		{"latency_p95_ms", "4.21", "", "4.2 ms"},
		{"latency_p99_ms", "123.4", "", "123 ms"},
		{"turnaround_p95_ms", "1234.5", "", "1.23 s"},
		{"latency_max_ms", "75000", "", "1m 15s"},
		{"turnaround_max_ms", "7380000", "", "2h 03m"},
		{"cost_usd", "0.000014260859644619378", "", "$0.0000143"},
		{"cost_usd", "0.052668142665635", "", "$0.0527"},
		{"cost_usd", "0.5", "", "$0.50"},
		{"previous.cost_usd", "1234.567", "", "$1,234.57"},
		{"cost_usd", "0", "", "$0"},
		{"calls", "1234567", "", "1,234,567"},
		{"tokens_in", "557", "", "557"},
		{"value", "0.25", "rate", "25.0 %"},
		{"value", "812.5", "ms", "812 ms"},
		{"value", "0.031", "usd", "$0.031"},
		{"value", "12000", "count", "12,000"},
		{"group", "404", "", "404"},
		{"time", "2026-11-20T10:00:00Z", "", "2026-11-20T10:00:00Z"},
		{"role", "manager", "", "manager"},
	} {
		if got := humanCell(tc.column, tc.cell, tc.valueAs); got != tc.want {
			t.Errorf("humanCell(%q, %q, %q) = %q, want %q", tc.column, tc.cell, tc.valueAs, got, tc.want)
		}
	}
}

// TestRenderKeepsPrecision: the table is for people, CSV and JSON keep
// every digit.
func TestRenderKeepsPrecision(t *testing.T) {
	rows := []map[string]any{{"group": "model", "calls": 1234, "error_rate": 0.052668142665635, "cost_usd": 0.000014260859644619378, "latency_p95_ms": 1234.5}}
	var table, csv, js bytes.Buffer
	for _, f := range []struct {
		format string
		w      *bytes.Buffer
	}{{"table", &table}, {"csv", &csv}, {"json", &js}} {
		if err := render(f.w, f.format, rows, ""); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"LATENCY_P95", "COST", "1,234", "5.27 %", "$0.0000143", "1.23 s"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	for _, out := range []string{csv.String(), js.String()} {
		if !strings.Contains(out, "0.052668142665635") || !strings.Contains(out, "0.000014260859644619378") || !strings.Contains(out, "1234.5") {
			t.Errorf("full precision lost:\n%s", out)
		}
	}
	if !strings.Contains(csv.String(), "latency_p95_ms") {
		t.Errorf("csv header renamed:\n%s", csv.String())
	}
}
