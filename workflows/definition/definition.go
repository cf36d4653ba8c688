// Package definition parses and validates orchestration definitions.
package definition

import "encoding/json"

// Definition is one published version of an orchestration.
// (Placeholder: the orchestration work fills in steps and the rest.)
type Definition struct {
	Name        string          `json:"name" yaml:"name"`
	Version     string          `json:"version" yaml:"version"`
	Description string          `json:"description,omitempty" yaml:"description,omitempty"`
	InputSchema json.RawMessage `json:"input_schema,omitempty" yaml:"-"`
}
