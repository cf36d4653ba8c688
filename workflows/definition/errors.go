package definition

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong with a definition or an input, located by a
// path such as "steps[2].retry.max_attempts".
type Problem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// ValidationError lists every problem found; nothing was started or changed.
type ValidationError struct {
	// What was validated, e.g. "definition order-approval@3" or "input".
	Subject  string    `json:"subject,omitempty"`
	Problems []Problem `json:"problems"`
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	if e.Subject != "" {
		b.WriteString(e.Subject)
		b.WriteString(" is invalid: ")
	} else {
		b.WriteString("invalid: ")
	}
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	if len(e.Problems) == 0 {
		b.WriteString("(no details)")
	}
	return b.String()
}

// Errorf adds a problem at path.
func (e *ValidationError) Errorf(path, format string, args ...any) {
	e.Problems = append(e.Problems, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// OrNil returns e when it holds problems, else nil, so callers can write
// `return v.OrNil()` after collecting.
func (e *ValidationError) OrNil() error {
	if e == nil || len(e.Problems) == 0 {
		return nil
	}
	return e
}
