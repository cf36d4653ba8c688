package demo

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
)

// loopbackPort matches the loopback addresses that the example config
// uses for the demo services.
var loopbackPort = regexp.MustCompile(`127\.0\.0\.1:([0-9]{1,5})\b`)

// RewriteConfigPorts points a config dir seeded from deploy/examples at
// demo services listening on p instead of the default ports: every
// 127.0.0.1:<default demo port> in gateflow.yaml, definitions/ and prompts/
// becomes 127.0.0.1:<port in p>. Other addresses (Ollama's 11434) are left
// alone. gateflow dev calls it right after seeding with --demo-port-base.
func RewriteConfigPorts(dir string, p Ports) error {
	from := PortsAt(DefaultPortBase).List()
	to := p.List()
	remap := map[string]string{}
	for i := range from {
		remap[strconv.Itoa(from[i].Port)] = strconv.Itoa(to[i].Port)
	}
	rewrite := func(path string) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		out := loopbackPort.ReplaceAllFunc(b, func(m []byte) []byte {
			if np, ok := remap[string(loopbackPort.FindSubmatch(m)[1])]; ok {
				return []byte("127.0.0.1:" + np)
			}
			return m
		})
		if string(out) == string(b) {
			return nil
		}
		return os.WriteFile(path, out, 0o644)
	}
	if err := rewrite(filepath.Join(dir, "gateflow.yaml")); err != nil {
		return fmt.Errorf("point the config at the demo ports: %w", err)
	}
	for _, sub := range []string{"definitions", "prompts"} {
		err := filepath.WalkDir(filepath.Join(dir, sub), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			return rewrite(path)
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("point the config at the demo ports: %w", err)
		}
	}
	return nil
}
