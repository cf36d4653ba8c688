package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

type inner struct {
	N     int               `json:"n"`
	F     float64           `json:"f,omitempty"`
	Tags  []string          `json:"tags,omitempty"`
	M     map[string]string `json:"m,omitempty"`
	Raw   json.RawMessage   `json:"raw,omitempty"`
	Any   any               `json:"any,omitempty"`
	When  time.Time         `json:"when,omitzero"`
	Small int8              `json:"small,omitempty"`
	U     uint              `json:"u,omitempty"`
	B     bool              `json:"b,omitempty"`
}

type Embedded struct {
	E string `json:"e"`
}

type outer struct {
	Embedded
	Name   string   `json:"name"`
	In     *inner   `json:"in,omitempty"`
	List   []inner  `json:"list,omitempty"`
	Hidden string   `json:"-"`
	Arr    [2]int   `json:"arr,omitempty"`
	Bytes  []byte   `json:"bytes,omitempty"`
	Ptrs   []*inner `json:"ptrs,omitempty"`
}

func TestDecodeJSON(t *testing.T) {
	cases := []struct {
		body  string
		code  string
		paths string
	}{
		{`{"name":"x","e":"y","in":{"n":1,"raw":{"z":[1]},"any":[1,"a"],"when":"2025-01-01T00:00:00Z"}}`, "", ""},
		{`{"name":"x","in":null}`, "", ""},
		{`{"nmae":"x"}`, "invalid_request", "nmae"},
		{`{"Name":"x"}`, "invalid_request", "Name"},
		{`{"Hidden":"x"}`, "invalid_request", "Hidden"},
		{`{"name":1,"in":{"n":"1","tags":"a","m":{"k":2},"small":300,"u":-1,"b":"true","f":"x"}}`, "invalid_request",
			"in.b,in.f,in.m.k,in.n,in.small,in.tags,in.u,name"},
		{`{"list":[{"n":1},{"bad":1}],"ptrs":[null,{"n":1.5}]}`, "invalid_request", "list[1].bad,ptrs[1].n"},
		{`{"arr":[1,2,3]}`, "invalid_request", "arr"},
		{`{"bytes":[1]}`, "invalid_request", "bytes"},
		{`{"in":{"when":"not a time"}}`, "invalid_request", "in.when"},
		{`"x"`, "invalid_request", ""},
		{`{"name":"x"`, "invalid_json", ""},
		{`{"name":"x"}}`, "invalid_json", ""},
		{`   `, "invalid_json", ""},
		{`{"in":{"any":[[[[[[[[[[1]]]]]]]]]]}}`, "invalid_json", ""},
	}
	for _, c := range cases {
		var out outer
		err := DecodeJSON([]byte(c.body), &out, 8, "")
		if c.code == "" {
			if err != nil {
				t.Errorf("%s: %v", c.body, err)
			}
			continue
		}
		var e *Error
		if !errors.As(err, &e) || e.Status != 400 || e.Code != c.code {
			t.Errorf("%s: %v", c.body, err)
			continue
		}
		if c.paths != "" {
			var got []string
			for _, d := range e.Details {
				got = append(got, d.Path)
			}
			if strings.Join(got, ",") != c.paths {
				t.Errorf("%s: paths %q, want %q", c.body, strings.Join(got, ","), c.paths)
			}
		}
	}
	var out outer
	var ae *Error
	if err := DecodeJSON([]byte(`{"nope":1}`), &out, 0, "definition"); !errors.As(err, &ae) || ae.Details[0].Path != "definition.nope" {
		t.Errorf("prefix: %v", err)
	}
}

func TestCheckDepth(t *testing.T) {
	if err := CheckDepth([]byte(`{"a":"[[[[[[[[[[[[","b":"\"{{{{"}`), 2); err != nil {
		t.Errorf("brackets in strings counted: %v", err)
	}
	if err := CheckDepth([]byte(`[[[]]]`), 2); err == nil {
		t.Error("depth 3 accepted with max 2")
	}
}

func TestRouteCheck(t *testing.T) {
	h := http.NotFoundHandler()
	for _, r := range []Route{{Method: "get", Path: "/x", Handler: h}, {Method: "GET", Path: "x", Handler: h}, {Method: "GET", Path: "/x"}, {Method: "GET", Path: "/x/:id", Handler: h},
		{Method: "GET", Path: "/x/{rest...}/y", Handler: h, Page: true},      // not the last segment
		{Method: "GET", Path: "/x/a{rest...}", Handler: h, Page: true},       // not a whole segment
		{Method: "GET", Path: "/x/{a...}/{rest...}", Handler: h, Page: true}, // two
	} {
		if r.Check() == nil {
			t.Errorf("%+v accepted", r)
		}
	}
	if err := (Route{Method: "GET", Path: "/console/assets/{file...}", Handler: h, Page: true}).Check(); err != nil {
		t.Errorf("page wildcard refused: %v", err)
	}
	if got := PathParams("/v1/a/{name}/b/{v}"); strings.Join(got, ",") != "name,v" {
		t.Errorf("params %v", got)
	}
	if got := PathParams("/console/{id}/{rest...}"); strings.Join(got, ",") != "id,rest" {
		t.Errorf("params %v", got)
	}
}

type fuzzTarget struct {
	Name  string            `json:"name"`
	N     int32             `json:"n,omitempty"`
	Items []inner           `json:"items,omitempty"`
	Raw   json.RawMessage   `json:"raw,omitempty"`
	M     map[string]string `json:"m,omitempty"`
	P     *inner            `json:"p,omitempty"`
}

// FuzzFastPath checks that the fast path never accepts what the slow,
// fully checked path refuses, and decodes to the same value.
func FuzzFastPath(f *testing.F) {
	for _, s := range []string{`{"name":"x","n":1}`, `{"Name":"x"}`, `{"items":[{"n":1,"tags":["a"]}],"raw":{"Name":1}}`,
		`{"p":{"N":1}}`, `{"m":{"Name":"x"}}`, `{"name":"\"n\":"}`, `{"na\u006de":"x"}`, `{"n":1e3}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if CheckDepth(body, 16) != nil {
			return
		}
		var fast, slow fuzzTarget
		okFast := fastDecode(body, &fast)
		errSlow := slowDecode(body, &slow, "")
		if okFast && errSlow != nil {
			t.Fatalf("fast path accepted %q, slow path: %v", body, errSlow)
		}
		if okFast {
			a, _ := json.Marshal(fast)
			b, _ := json.Marshal(slow)
			if string(a) != string(b) {
				t.Fatalf("%q: fast %s, slow %s", body, a, b)
			}
		}
	})
}
