package definition

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ErrUnsafePath is wrapped by EvalPath when a rendered path would leave the
// service's base path.
var ErrUnsafePath = errors.New("unsafe path")

// EvalPath evaluates the path template of an http step so that input cannot
// steer the call: literal text is kept as written, and each ${{ expr }}
// result, formatted as text like EvalString does, is escaped: with
// url.PathEscape in the path (a value cannot add segments, a query or a
// fragment) and url.QueryEscape after a literal "?" (a value cannot add
// parameters). A rendered path with a "." or ".." segment (percent-decoded,
// between slashes or backslashes) is refused with ErrUnsafePath; the
// message names the template, not the values.
func EvalPath(s string, env Env) (string, error) {
	b := newBudget()
	parts, err := splitTemplate(s)
	if err != nil {
		return "", err
	}
	var sb strings.Builder
	inQuery, inFragment := false, false
	for _, p := range parts {
		if !p.expr {
			sb.WriteString(p.text)
			if !inFragment {
				if i := strings.IndexAny(p.text, "?#"); i >= 0 {
					inQuery = inQuery || p.text[i] == '?'
					inFragment = strings.Contains(p.text[i:], "#")
				}
			}
			continue
		}
		v, err := eval(p.text, env, b)
		if err != nil {
			return "", err
		}
		text, err := FormatValue(v)
		if err != nil {
			return "", &ExprError{Expr: p.text, Message: err.Error(), Err: err}
		}
		if inQuery && !inFragment {
			text = url.QueryEscape(text)
		} else {
			text = url.PathEscape(text)
		}
		if err := b.charge(int64(len(text))); err != nil {
			return "", &ExprError{Expr: p.text, Message: err.Error(), Err: err}
		}
		sb.WriteString(text)
	}
	out := sb.String()
	path, _, _ := strings.Cut(out, "?")
	path, _, _ = strings.Cut(path, "#")
	if dec, err := url.PathUnescape(path); err == nil {
		path = dec
	}
	for _, seg := range strings.FieldsFunc(path, func(r rune) bool { return r == '/' || r == '\\' }) {
		if seg == "." || seg == ".." {
			return "", fmt.Errorf("%w: path %q renders a %q segment, which would leave the service's base path", ErrUnsafePath, s, seg)
		}
	}
	return out, nil
}
