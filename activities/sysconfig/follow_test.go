package sysconfig_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gateflow/gateflow/activities/llm"
	"github.com/gateflow/gateflow/activities/sysconfig"
)

const modelsYAML = `
models:
  providers:
    local:
      kind: openai
      base_url: http://127.0.0.1:1/v1
      models:
        m1: {}
`

func TestFollowModels(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, sysconfig.ConfigFile)
	if err := os.WriteFile(file, []byte(modelsYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	reg, err := sysconfig.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := llm.NewGateway(reg.Current().Models(), llm.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sysconfig.FollowModels(ctx, reg, gw, 5*time.Millisecond, nil); close(done) }()
	defer func() { cancel(); <-done }()

	if err := os.WriteFile(file, []byte(strings.Replace(modelsYAML, "m1: {}", "m1: {}\n        m2: {}", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := reg.Reload(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !gw.Has("local/m2") {
		if time.Now().After(deadline) {
			t.Fatal("the gateway did not follow the reload")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
