package payloadcodec_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/payloadcodec"
)

func newKey(t *testing.T, id string) payloadcodec.KeyEntry {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return payloadcodec.KeyEntry{ID: id, Key: base64.StdEncoding.EncodeToString(b)}
}

func mustCodec(t *testing.T, keys ...payloadcodec.KeyEntry) *payloadcodec.Codec {
	t.Helper()
	c, err := payloadcodec.New(keys)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const secretInput = `{"card":"4111-1111-1111-1111"}`

func TestRoundTripAndRotation(t *testing.T) {
	old, cur := newKey(t, "2026-06"), newKey(t, "2026-12")
	before := mustCodec(t, old)
	after := mustCodec(t, cur, old) // the new key first: it encrypts

	dc := before.DataConverter()
	p, err := dc.ToPayload(map[string]any{"card": "4111-1111-1111-1111"})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(p.Data, []byte("4111")) || string(p.Metadata["encryption-key-id"]) != "2026-06" {
		t.Fatalf("payload not encrypted with the old key: %v", p)
	}
	// Old payloads still decrypt after the new key is added.
	var got map[string]any
	if err := after.DataConverter().FromPayload(p, &got); err != nil || got["card"] != "4111-1111-1111-1111" {
		t.Fatalf("rotation: %v %v", got, err)
	}
	// New payloads use the new key.
	p2, _ := after.DataConverter().ToPayload("x")
	if string(p2.Metadata["encryption-key-id"]) != "2026-12" {
		t.Errorf("new payload key id %q", p2.Metadata["encryption-key-id"])
	}
	// Two encryptions of one value differ (random nonce).
	p3, _ := after.DataConverter().ToPayload("x")
	if bytes.Equal(p2.Data, p3.Data) {
		t.Error("same ciphertext twice")
	}
	// Payloads written without the codec pass through.
	plain := &commonpb.Payload{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`"hello"`)}
	var s string
	if err := after.DataConverter().FromPayload(plain, &s); err != nil || s != "hello" {
		t.Errorf("plain payload: %q %v", s, err)
	}
}

func TestWrongKey(t *testing.T) {
	k := newKey(t, "k1")
	p, err := mustCodec(t, k).Encode([]*commonpb.Payload{{Data: []byte(secretInput)}})
	if err != nil {
		t.Fatal(err)
	}
	other := newKey(t, "k1") // same id, other material
	_, errOther := mustCodec(t, other).Decode(p)
	if !errors.Is(errOther, payloadcodec.ErrDecrypt) || !strings.Contains(errOther.Error(), `key "k1"`) {
		t.Errorf("same id, other key: %v", errOther)
	}
	_, errUnknown := mustCodec(t, newKey(t, "k2")).Decode(p)
	if !errors.Is(errUnknown, payloadcodec.ErrUnknownKey) || !strings.Contains(errUnknown.Error(), `"k1"`) {
		t.Errorf("unknown key: %v", errUnknown)
	}
	// Tampering with the key id is detected (it is authenticated data).
	c2 := mustCodec(t, k, payloadcodec.KeyEntry{ID: "k2", Key: k.Key})
	p[0].Metadata["encryption-key-id"] = []byte("k2")
	_, errSwapped := c2.Decode(p)
	if !errors.Is(errSwapped, payloadcodec.ErrDecrypt) {
		t.Errorf("swapped key id: %v", errSwapped)
	}
	for _, err := range []error{errOther, errUnknown, errSwapped} {
		if err != nil && (strings.Contains(err.Error(), k.Key) || strings.Contains(err.Error(), other.Key)) {
			t.Errorf("an error shows a key: %v", err)
		}
	}
}

func TestKeysNeverShown(t *testing.T) {
	k := newKey(t, "k1")
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s", k, k, k, k), fmt.Sprint(mustCodec(t, k)), fmt.Sprintf("%+v", *mustCodec(t, k))} {
		if strings.Contains(s, k.Key) {
			t.Fatalf("%q shows the key", s)
		}
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "key", k, "codec", mustCodec(t, k))
	if strings.Contains(buf.String(), k.Key) {
		t.Fatalf("log shows the key: %s", buf.String())
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	k1, k2 := newKey(t, "a"), newKey(t, "b")
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("keys:\n  - id: a\n    key: "+k1.Key+"\n  - id: b\n    key: "+k2.Key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := payloadcodec.LoadFile(good)
	if err != nil || strings.Join(c.KeyIDs(), ",") != "a,b" {
		t.Fatalf("%v %v", c, err)
	}
	short := base64.StdEncoding.EncodeToString([]byte("sixteen byte key"))
	for name, body := range map[string]string{
		"empty":     "",
		"short key": "keys:\n  - id: a\n    key: " + short + "\n",
		"bad id":    "keys:\n  - id: 'a b'\n    key: " + k1.Key + "\n",
		"twice":     "keys:\n  - id: a\n    key: " + k1.Key + "\n  - id: a\n    key: " + k2.Key + "\n",
		"unknown":   "keys:\n  - id: a\n    key: " + k1.Key + "\n    secret: x\n",
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := payloadcodec.LoadFile(p)
		if !errors.Is(err, payloadcodec.ErrKeyFile) {
			t.Errorf("%s: %v", name, err)
		}
		if err != nil && (strings.Contains(err.Error(), k1.Key) || strings.Contains(err.Error(), short)) {
			t.Errorf("%s: the error shows a key: %v", name, err)
		}
	}
}

// TestHistoriesWithoutCodecReplay: the histories recorded before the codec
// (plain payloads) replay on a worker that has it.
func TestHistoriesWithoutCodecReplay(t *testing.T) {
	var opts client.Options
	mustCodec(t, newKey(t, "k")).ApplyTo(&opts)
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "histories", "*.json"))
	older, _ := filepath.Glob(filepath.Join("..", "testdata", "histories", "*", "*.json"))
	files = append(files, older...)
	if len(files) == 0 {
		t.Fatal("no histories")
	}
	quiet := tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	for _, f := range files {
		r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{DataConverter: opts.DataConverter, FailureConverter: opts.FailureConverter})
		if err != nil {
			t.Fatal(err)
		}
		r.RegisterWorkflowWithOptions(workflows.Orchestration, workflow.RegisterOptions{Name: workflows.OrchestrationWorkflow})
		if err := r.ReplayWorkflowHistoryFromJSONFile(quiet, f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
