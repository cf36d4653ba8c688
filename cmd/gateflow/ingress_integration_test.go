//go:build integration

// Integration-tagged although fast: the gateflow binary links the Temporal
// server, whose -race build is too slow for the unit test run.

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIngressConfig(t *testing.T) {
	c := defaultIngressConfig()
	if err := c.validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	c.Listen, c.MaxJSONDepth, c.RequestTimeout = "nope", 1, 0
	err := c.validate()
	for _, want := range []string{"--listen", "--max-json-depth", "--request-timeout"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate: %v, want it to name %s", err, want)
		}
	}
}

func TestKeysCreateCmd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.yaml")
	cmd := newKeysCmd()
	var out, errOut strings.Builder
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs([]string{"create", "--tenant", "acme", "--roles", "submitter,approver", "--user", "alice", "--keys-file", path})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(out.String())
	if !strings.HasPrefix(token, "gf_") {
		t.Fatalf("printed %q", token)
	}
	b, err := os.ReadFile(path)
	if err != nil || strings.Contains(string(b), strings.SplitN(token, "_", 3)[2]) || !strings.Contains(string(b), "tenant: acme") {
		t.Fatalf("keys file: %s %v", b, err)
	}
	cmd = newKeysCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs([]string{"create", "--roles", "submitter", "--keys-file", path})
	if err := cmd.Execute(); err == nil {
		t.Error("create without --tenant accepted")
	}
}
