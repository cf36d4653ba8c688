// Package examples holds the example configuration directory (gateflow.yaml,
// definitions/, prompts/) that `gateflow dev` seeds its config dir from, so
// a newcomer has services, tenants and definitions to try at once.
package examples

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

//go:embed gateflow.yaml definitions prompts
var files embed.FS

// FS returns the example configuration directory.
func FS() fs.FS { return files }

// Seed writes the example configuration into dir unless dir already exists
// (an existing config dir is the operator's and is never touched). It
// reports whether it wrote anything.
func Seed(dir string) (bool, error) {
	if _, err := os.Stat(dir); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("config dir %s: %w", dir, err)
	}
	// Write into a sibling temp dir and rename, so an interrupted seed never
	// leaves a half-written config dir behind.
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".config-seed-")
	if err != nil {
		return false, fmt.Errorf("seed config dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	err = fs.WalkDir(files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(tmp, filepath.FromSlash(path))
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := files.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		return false, fmt.Errorf("seed config dir: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return false, fmt.Errorf("seed config dir: %w", err)
	}
	return true, nil
}
