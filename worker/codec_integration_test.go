//go:build integration

package worker_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"google.golang.org/protobuf/proto"

	"github.com/gateflow/gateflow/worker"
	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/payloadcodec"
)

// TestPayloadCodecKeepsInputOutOfHistory runs an orchestration on a worker
// and client with the payload codec (issue 10 item 10): the input reaches
// the service, its echo comes back as a step output, a failure quotes it,
// and yet no byte of the stored history holds it in clear.
func TestPayloadCodecKeepsInputOutOfHistory(t *testing.T) {
	const card = "4111-1111-1111-1111"
	ts := newServer(t)
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	codec, err := payloadcodec.New([]payloadcodec.KeyEntry{{ID: "it", Key: base64.StdEncoding.EncodeToString(key)}})
	if err != nil {
		t.Fatal(err)
	}
	opts := client.Options{Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))}
	codec.ApplyTo(&opts)
	c := ts.NewClientWithOptions(opts)

	var seen []string
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		seen = append(seen, r.URL.Path+" "+r.Header.Get("X-Card")+" "+string(body))
		if r.URL.Path == "/fail" {
			http.Error(w, "card "+string(body)+" declined", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"echo": %s}`, body)
	}))
	defer svc.Close()
	startWorker(t, c, "codec", worker.Deps{Services: staticServices{"svc": svc.URL}})

	d := mustDef(t, `{"name": "pay", "version": "1", "steps": [
		{"id": "charge", "kind": "http", "service": "svc", "method": "POST", "path": "/charge/${{ input.card }}",
		 "headers": {"X-Card": "${{ input.card }}"}, "body": {"card": "${{ input.card }}"}},
		{"id": "notify", "kind": "http", "service": "svc", "method": "POST", "path": "/fail",
		 "body": "${{ steps.charge.output.body.echo.card }}", "retry": {"max_attempts": 1}}
	]}`)
	in := orchestration(d, `{"card": "`+card+`"}`)
	run, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: "codec-history", TaskQueue: "codec", Memo: map[string]any{"note": "memo with " + card},
	}, workflows.OrchestrationWorkflow, in)
	if err != nil {
		t.Fatal(err)
	}
	_, err = resultOf(t, run, 30*time.Second)
	// The client with the codec reads everything back.
	if err == nil || !strings.Contains(err.Error(), "declined") {
		t.Fatalf("workflow error %v, want the notify step's failure", err)
	}
	if st := queryStatus(t, c, "codec-history"); !strings.Contains(string(stepStatus(st, "charge").Output), card) {
		t.Errorf("status through the codec: %+v", stepStatus(st, "charge"))
	}
	if len(seen) != 2 || !strings.Contains(seen[0], card) {
		t.Fatalf("the service saw %q", seen)
	}

	// The history as Temporal stores it: raw bytes of every event.
	it := c.GetWorkflowHistory(context.Background(), "codec-history", run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var raw bytes.Buffer
	events := 0
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		b, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		raw.Write(b)
		events++
	}
	for _, needle := range []string{card, "4111", "declined", base64.StdEncoding.EncodeToString([]byte(card))} {
		if bytes.Contains(raw.Bytes(), []byte(needle)) {
			t.Errorf("the history (%d events, %d bytes) holds %q in clear", events, raw.Len(), needle)
		}
	}
	if !bytes.Contains(raw.Bytes(), []byte(payloadcodec.EncodingEncrypted)) {
		t.Error("no encrypted payload in the history")
	}
	// What the server returns for the memo cannot be read without the key.
	desc, err := ts.GetDefaultClient().DescribeWorkflowExecution(context.Background(), "codec-history", run.GetRunID())
	if err != nil {
		t.Fatal(err)
	}
	if m := desc.GetWorkflowExecutionInfo().GetMemo().GetFields()["note"]; m == nil || bytes.Contains(m.GetData(), []byte(card)) {
		t.Errorf("memo %v", m)
	}
	t.Logf("history: %d events, %d bytes, no plaintext of the input", events, raw.Len())
}
