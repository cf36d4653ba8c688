package llm

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// secretFileTTL is how long a secret file's content is reused before it is
// read again, so that a rotated mounted secret applies within that time.
const secretFileTTL = 30 * time.Second

// credential is a provider's API key, read from an environment variable or
// a secret file. Its value only ever goes into a request header; errors
// name where it comes from, never what it is.
type credential struct {
	env      string
	file     string
	lookup   func(string) (string, bool)
	readFile func(string) ([]byte, error)
	now      func() time.Time

	mu     sync.Mutex
	value  string
	readAt time.Time
}

// get returns the key, "" when the provider needs none (a local server with
// neither api_key_env nor api_key_file).
func (c *credential) get() (string, error) {
	switch {
	case c.env != "":
		v, ok := c.lookup(c.env)
		v = strings.TrimSpace(v)
		if !ok || v == "" {
			return "", fmt.Errorf("environment variable %s is not set", c.env)
		}
		return v, nil
	case c.file != "":
		c.mu.Lock()
		defer c.mu.Unlock()
		now := c.now()
		if c.value != "" && now.Sub(c.readAt) < secretFileTTL {
			return c.value, nil
		}
		b, err := c.readFile(c.file)
		if err != nil {
			// The os error names the path only.
			return "", fmt.Errorf("read secret file: %w", err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("secret file %s is empty", c.file)
		}
		c.value, c.readAt = v, now
		return v, nil
	}
	return "", nil
}

func newCredential(p Provider, lookup func(string) (string, bool), readFile func(string) ([]byte, error), now func() time.Time) *credential {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	if readFile == nil {
		readFile = os.ReadFile
	}
	return &credential{env: p.APIKeyEnv, file: p.APIKeyFile, lookup: lookup, readFile: readFile, now: now}
}
