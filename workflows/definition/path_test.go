package definition

import (
	"errors"
	"testing"
)

func TestEvalPath(t *testing.T) {
	env := Env{"input": map[string]any{
		"id":        "A#12 b/c",
		"n":         42.0,
		"q":         "x&admin=true",
		"traversal": "../../redirect?to=http://169.254.169.254/latest/meta-data/",
		"dots":      "..",
		"encoded":   "a/../b",
	}}
	tests := []struct {
		tmpl, want string
	}{
		{"/orders/${{ input.id }}", "/orders/A%2312%20b%2Fc"},
		{"/orders/${{ input.n }}/items", "/orders/42/items"},
		{"/search?q=${{ input.q }}&limit=${{ input.n }}", "/search?q=x%26admin%3Dtrue&limit=42"},
		{"/static/path?x=1", "/static/path?x=1"},
		{"/a/${{ input.n }}#${{ input.id }}", "/a/42#A%2312%20b%2Fc"},
	}
	for _, tt := range tests {
		got, err := EvalPath(tt.tmpl, env)
		if err != nil || got != tt.want {
			t.Errorf("%s: got %q %v, want %q", tt.tmpl, got, err, tt.want)
		}
	}
	for _, tmpl := range []string{
		"/orders/${{ input.traversal }}",
		"/orders/${{ input.dots }}",
		"/orders/${{ input.encoded }}",
		"/orders/.${{ '.' }}/x",
		"/a/../${{ input.n }}",
	} {
		_, err := EvalPath(tmpl, env)
		if !errors.Is(err, ErrUnsafePath) {
			t.Errorf("%s: %v, want ErrUnsafePath", tmpl, err)
		}
	}
}
