// Package yamlread is the one bounded reader of the YAML (and JSON, its
// subset) documents Gateflow accepts: definitions published through the API
// or dropped in the config directory, gateflow.yaml, prompt files and the
// keys file. YAML aliases let a few hundred bytes stand for gigabytes once
// expanded ("billion laughs"), and gopkg.in/yaml.v3 expands them whenever it
// decodes into Go values, so every YAML document goes through here: the
// input's size and an upper estimate of its values are checked before
// parsing, the parsed node graph is then walked counting every alias at
// every use (values, scalar bytes, depth) before anything is expanded, and
// only a document within every bound becomes Go values.
//
// Memory: parsing allocates about 240 bytes per source value (yaml.v3's
// nodes); the estimate bounds that to about 32 MB at the defaults, plus a
// few copies of the input. The Go values built afterwards hold at most
// MaxValues values and MaxExpandedBytes bytes of text.
package yamlread

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"gopkg.in/yaml.v3"
)

// Defaults of Limits.
const (
	// DefaultMaxBytes bounds the input (the ingress's body limit).
	DefaultMaxBytes = 1 << 20
	// DefaultMaxValues bounds the values of a document: scalars,
	// sequences, mappings and keys, every alias counted at every use.
	DefaultMaxValues = 100_000
	// DefaultMaxDepth bounds nesting (an alias adds one level).
	DefaultMaxDepth = 64
	// ExpandedBytesFactor sets the default MaxExpandedBytes as a multiple
	// of MaxBytes: anchors may share text, not multiply it.
	ExpandedBytesFactor = 2
	// EstimateFactor bounds the estimate of a source's values taken
	// before parsing, as a multiple of MaxValues: the estimate is 2.5-5
	// times the real count for typical documents and at least 1.5 times
	// it for any, so parsing allocates at most about 160 bytes ×
	// EstimateFactor × MaxValues (32 MB at the defaults).
	EstimateFactor = 2
)

// Limits bound a document. Zero fields take the defaults.
type Limits struct {
	// MaxBytes bounds the input.
	MaxBytes int
	// MaxValues bounds the values after alias expansion; EstimateFactor
	// × MaxValues bounds an estimate of the source's values taken before
	// parsing.
	MaxValues int
	// MaxExpandedBytes bounds the text of all scalars (keys included)
	// after alias expansion; 0 means ExpandedBytesFactor × MaxBytes.
	MaxExpandedBytes int
	// MaxDepth bounds nesting.
	MaxDepth int
}

// DefaultLimits returns the bounds used when a caller sets none.
func DefaultLimits() Limits {
	return Limits{}.withDefaults()
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxValues <= 0 {
		l.MaxValues = DefaultMaxValues
	}
	if l.MaxExpandedBytes <= 0 {
		l.MaxExpandedBytes = ExpandedBytesFactor * l.MaxBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	return l
}

// Sentinel errors; every *Error wraps one of them.
var (
	// ErrTooLarge is a document over a size bound (bytes, values,
	// expanded size): the ingress answers 413.
	ErrTooLarge = errors.New("document too large")
	// ErrInvalid is a malformed or too deeply nested document: 400.
	ErrInvalid = errors.New("invalid document")
)

// Limit names, in Error.Limit.
const (
	LimitBytes         = "bytes"
	LimitValues        = "values"
	LimitExpandedBytes = "expanded_bytes"
	LimitDepth         = "depth"
)

// Error is a document the reader refuses. Its message locates the problem
// (line or offset) when it can and never quotes more than a key.
type Error struct {
	// Limit is the bound exceeded (Limit* constants), "" when the
	// document is malformed.
	Limit string
	// Msg is the message, e.g. "line 3: key \"a\" defined twice".
	Msg string
}

func (e *Error) Error() string { return e.Msg }

// Unwrap returns ErrTooLarge or ErrInvalid.
func (e *Error) Unwrap() error {
	if e.TooLarge() {
		return ErrTooLarge
	}
	return ErrInvalid
}

// TooLarge reports whether a size bound was exceeded (413 rather than 400).
func (e *Error) TooLarge() bool {
	switch e.Limit {
	case LimitBytes, LimitValues, LimitExpandedBytes:
		return true
	}
	return false
}

func invalidf(format string, args ...any) *Error {
	return &Error{Msg: fmt.Sprintf(format, args...)}
}

func limitf(limit, format string, args ...any) *Error {
	return &Error{Limit: limit, Msg: fmt.Sprintf(format, args...)}
}

// ReadTree reads a YAML or JSON document into generic values:
// map[string]any, []any, string, float64, bool and nil. Mapping keys must
// be strings and appear once; YAML merge keys (<<) are applied; one
// document only. Errors are *Error.
func ReadTree(data []byte, lim Limits) (any, error) {
	lim = lim.withDefaults()
	if len(data) > lim.MaxBytes {
		return nil, limitf(LimitBytes, "document larger than %d bytes", lim.MaxBytes)
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, invalidf("empty document")
	}
	if trimmed[0] == '{' {
		// JSON (a subset of YAML) has no aliases and a much faster
		// decoder.
		return readJSONTree(trimmed, lim)
	}
	doc, err := readNode(data, lim)
	if err != nil {
		return nil, err
	}
	if doc == nil {
		return nil, invalidf("empty document")
	}
	return convert(doc)
}

// ReadInto decodes a YAML document into v (a pointer) by its yaml struct
// tags, refusing fields v does not have, once the document is within lim.
// An empty document leaves v unchanged. Errors are *Error.
func ReadInto(data []byte, lim Limits, v any) error {
	lim = lim.withDefaults()
	if len(data) > lim.MaxBytes {
		return limitf(LimitBytes, "document larger than %d bytes", lim.MaxBytes)
	}
	doc, err := readNode(data, lim)
	if err != nil || doc == nil {
		return err
	}
	// The graph is within bounds, so yaml.v3's own alias expansion is
	// too. A second decode of the bytes keeps KnownFields, which
	// yaml.Node.Decode lacks.
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return invalidf("%s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return nil
}

// readNode parses the first and only YAML document of data, after the
// token estimate, and checks its graph. A document without content
// returns nil, nil.
func readNode(data []byte, lim Limits) (*yaml.Node, error) {
	if err := preScan(data, lim); err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, invalidf("syntax: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, invalidf("more than one YAML document")
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	c := checker{lim: lim, active: map[*yaml.Node]bool{}}
	if err := c.walk(&doc, 0); err != nil {
		return nil, err
	}
	return &doc, nil
}

// checker walks a node graph as if every alias were expanded, stopping at
// the first bound exceeded, so its cost is bounded by MaxValues.
type checker struct {
	lim    Limits
	values int
	bytes  int
	// active holds the anchors being expanded, to refuse an alias inside
	// its own anchor (yaml.v3 registers an anchor before its content).
	active map[*yaml.Node]bool
}

func (c *checker) walk(n *yaml.Node, depth int) error {
	c.values++
	if c.values > c.lim.MaxValues {
		return limitf(LimitValues, "document has more than %d values (YAML aliases count each time they are used)", c.lim.MaxValues)
	}
	if depth > c.lim.MaxDepth {
		return limitf(LimitDepth, "line %d: nested deeper than %d", n.Line, c.lim.MaxDepth)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, e := range n.Content {
			if err := c.walk(e, depth); err != nil {
				return err
			}
		}
	case yaml.AliasNode:
		if n.Alias == nil {
			return invalidf("line %d: unknown alias", n.Line)
		}
		if c.active[n.Alias] {
			return invalidf("line %d: alias *%s is used inside its own anchor", n.Line, n.Value)
		}
		c.active[n.Alias] = true
		err := c.walk(n.Alias, depth+1)
		delete(c.active, n.Alias)
		return err
	case yaml.ScalarNode:
		c.bytes += len(n.Value)
		if c.bytes > c.lim.MaxExpandedBytes {
			return limitf(LimitExpandedBytes, "document expands to more than %d bytes of text (YAML aliases count each time they are used)", c.lim.MaxExpandedBytes)
		}
	case yaml.SequenceNode, yaml.MappingNode:
		for _, e := range n.Content {
			if err := c.walk(e, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}
