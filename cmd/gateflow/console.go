package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/gateflow/gateflow/ingress/console"
)

// consoleConfig configures the web console the ingress serves at /console.
type consoleConfig struct {
	// Enabled serves the console.
	Enabled bool
	// SecretFile holds the secret that seals session cookies (at least 32
	// bytes); replicas behind one load balancer share it. Empty: a random
	// secret per process, so sessions end when the process restarts.
	SecretFile string
	// SessionTTL is how long a sign-in lasts.
	SessionTTL time.Duration
	// SecureCookie is auto, always or never.
	SecureCookie string
	// TemporalUI is the Temporal Web UI that run pages link to ("": none).
	TemporalUI string
}

func (c *consoleConfig) bind(fs *pflag.FlagSet) {
	fs.BoolVar(&c.Enabled, "console", true, "serve the web console at /console")
	fs.StringVar(&c.SecretFile, "console-secret-file", "", "file holding the secret (at least 32 bytes) that seals console sessions; replicas share it (default: random per process, sessions end at restart)")
	fs.DurationVar(&c.SessionTTL, "console-session-ttl", 12*time.Hour, "how long a console sign-in lasts")
	fs.StringVar(&c.SecureCookie, "console-secure-cookie", string(console.SecureAuto), "mark the console's session cookie Secure: auto (when the request came over TLS or X-Forwarded-Proto: https), always or never")
	fs.StringVar(&c.TemporalUI, "console-temporal-ui", "", "URL of a Temporal Web UI; run pages link to the run there, for operators")
}

func (c consoleConfig) validate() error {
	var errs []error
	switch console.SecureMode(c.SecureCookie) {
	case console.SecureAuto, console.SecureAlways, console.SecureNever:
	default:
		errs = append(errs, fmt.Errorf("--console-secure-cookie %q: want auto, always or never", c.SecureCookie))
	}
	if c.SessionTTL < time.Minute || c.SessionTTL > 30*24*time.Hour {
		errs = append(errs, fmt.Errorf("--console-session-ttl %s: want between 1m and 720h", c.SessionTTL))
	}
	return errors.Join(errs...)
}

// secret reads the session secret file (surrounding whitespace ignored).
func (c consoleConfig) secret() ([]byte, error) {
	if c.SecretFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(c.SecretFile)
	if err != nil {
		return nil, fmt.Errorf("--console-secret-file: %w", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) < 32 {
		return nil, fmt.Errorf("--console-secret-file %s: the secret must have at least 32 bytes, has %d (e.g. `openssl rand -hex 32 > %s`)", c.SecretFile, len(b), c.SecretFile)
	}
	return b, nil
}

// build returns the console serving api as the signed-in user.
func (c consoleConfig) build(api http.Handler, namespace string, log *slog.Logger) (*console.Console, error) {
	secret, err := c.secret()
	if err != nil {
		return nil, err
	}
	return console.New(console.Options{
		API:               api,
		Secret:            secret,
		SessionTTL:        c.SessionTTL,
		Secure:            console.SecureMode(c.SecureCookie),
		TemporalUI:        c.TemporalUI,
		TemporalNamespace: namespace,
		Log:               log,
	})
}

// devConsoleSecret returns dev's console secret file, creating it (mode
// 0600, 32 random bytes in hex) on the first start, so that console
// sessions outlive a restart of `gateflow dev`.
func devConsoleSecret(dataDir string) (string, error) {
	path := filepath.Join(dataDir, "console-secret")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(b)+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("console secret: %w", err)
	}
	return path, nil
}
