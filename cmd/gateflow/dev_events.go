package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/gateflow/gateflow/deploy/embedded"
)

// What gateflow dev provides for the event-driven examples of
// deploy/examples (docs/EVENTS.md): the demo topics of the topic triggers
// (with their dead-letter topics), the demo webhook's secret and a
// callback signing key kept in the data dir.

// devDemoTopics are the topics of the example topic triggers.
var devDemoTopics = []embedded.Topic{
	{Name: "demo.orders", Partitions: 3, Retention: devTopicRetention},
	{Name: "demo.orders.dlq", Partitions: 1, Retention: devTopicRetention},
	{Name: "demo.shipments", Partitions: 3, Retention: devTopicRetention},
	{Name: "demo.shipments.dlq", Partitions: 1, Retention: devTopicRetention},
}

// Environment variables the example gateflow.yaml reads its secrets from,
// and the demo webhook's secret dev sets when the variable is unset.
const (
	devCallbackKeyEnv     = "GATEFLOW_CALLBACK_KEY"
	devWebhookSecretEnv   = "GATEFLOW_DEMO_WEBHOOK_SECRET"
	devDemoWebhookSecret  = "demo-webhook-secret"
	devCallbackKeyFile    = "callback-key"
	devCallbackKeyEntropy = 32
)

// setupDevEventSecrets sets the secrets of the example webhooks and
// callbacks for this process when they are not set: the webhook's to a
// documented demo value, the callback signing key to a random key kept in
// dataDir (so that callback URLs handed out stay valid across restarts).
// Secret references are resolved at each use, so the parts read them.
func setupDevEventSecrets(dataDir string) error {
	if _, ok := os.LookupEnv(devWebhookSecretEnv); !ok {
		if err := os.Setenv(devWebhookSecretEnv, devDemoWebhookSecret); err != nil {
			return err
		}
	}
	if _, ok := os.LookupEnv(devCallbackKeyEnv); ok {
		return nil
	}
	path := filepath.Join(dataDir, devCallbackKeyFile)
	b, err := os.ReadFile(path)
	key := strings.TrimSpace(string(b))
	switch {
	case err == nil && key != "":
	case err == nil || errors.Is(err, fs.ErrNotExist):
		raw := make([]byte, devCallbackKeyEntropy)
		if _, err := rand.Read(raw); err != nil {
			return fmt.Errorf("callback key: %w", err)
		}
		key = hex.EncodeToString(raw)
		if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
			return fmt.Errorf("callback key: %w", err)
		}
	default:
		return fmt.Errorf("callback key: %w", err)
	}
	return os.Setenv(devCallbackKeyEnv, key)
}

// devEventsSummary is the line dev prints about the event examples.
func devEventsSummary() (string, string) {
	return "Events", "schedule heartbeat (paused), topics demo.orders and demo.shipments, webhook /v1/hooks/demo-carrier (docs/EVENTS.md)"
}

// devDefaultPublicURL is the callbacks.public_url of the example config.
const devDefaultPublicURL = "http://127.0.0.1:8080"

// pointCallbacksAt rewrites the callbacks.public_url of a config dir just
// seeded from the examples to where this dev's ingress listens, when that
// is not the default port.
func pointCallbacksAt(configDir, ingressAddr string) error {
	url := "http://" + ingressAddr
	if url == devDefaultPublicURL {
		return nil
	}
	path := filepath.Join(configDir, "gateflow.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out := strings.Replace(string(b), "public_url: "+devDefaultPublicURL, "public_url: "+url, 1)
	if out == string(b) {
		return nil
	}
	return os.WriteFile(path, []byte(out), 0o644)
}
