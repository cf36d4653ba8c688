package definition

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

var update = flag.Bool("update", false, "rewrite docs/definition.schema.json from the code")

const (
	schemaFile  = "../../docs/definition.schema.json"
	examplesDir = "../../deploy/examples/definitions"
)

// TestSchemaFileUpToDate keeps docs/definition.schema.json equal to
// JSONSchema(). Regenerate with: go test ./workflows/definition -run TestSchemaFile -update
func TestSchemaFileUpToDate(t *testing.T) {
	want := JSONSchema()
	if *update {
		if err := os.WriteFile(schemaFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("docs/definition.schema.json is stale: run go test ./workflows/definition -run TestSchemaFile -update")
	}
}

func compiledDefinitionSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(JSONSchema()))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(SchemaID, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(SchemaID)
	if err != nil {
		t.Fatalf("the generated schema does not compile: %v", err)
	}
	return s
}

func exampleFiles(t testing.TB) []string {
	t.Helper()
	var files []string
	for _, pat := range []string{"*.yaml", "*.yml", "*.json"} {
		m, err := filepath.Glob(filepath.Join(examplesDir, pat))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	if len(files) == 0 {
		t.Fatal("no example definitions")
	}
	return files
}

// TestExamples checks every example definition against the JSON Schema and
// with Parse + Validate, and that together they use every step kind.
func TestExamples(t *testing.T) {
	schema := compiledDefinitionSchema(t)
	kinds := map[string]bool{}
	for _, f := range exampleFiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			tree, err := decodeTree(data)
			if err != nil {
				t.Fatal(err)
			}
			if err := schema.Validate(tree); err != nil {
				t.Fatalf("JSON Schema: %v", err)
			}
			def, err := Load(data, nil)
			if err != nil {
				t.Fatal(err)
			}
			def.Walk(func(_ string, s *Step) bool {
				kinds[s.Kind] = true
				return true
			})
		})
	}
	for _, k := range Kinds {
		if !kinds[k] {
			t.Errorf("no example uses step kind %s", k)
		}
	}
}

// TestSchemaRejects checks that the schema is strict where Parse is.
func TestSchemaRejects(t *testing.T) {
	schema := compiledDefinitionSchema(t)
	for _, doc := range []string{
		`{"name": "x", "version": "1", "steps": [{"id": "a", "kidn": "http", "kind": "http", "service": "s"}]}`,
		`{"name": "x", "version": "1", "steps": [{"id": "a", "kind": "http", "service": "s", "model": "m"}]}`,
		`{"name": "x", "version": "1", "steps": [{"id": "a", "kind": "http"}]}`,
		`{"name": "x", "version": "1", "steps": [{"id": "a", "kind": "wait", "duration": "5x"}]}`,
		`{"name": "x", "version": "1", "steps": [{"id": "a", "kind": "nope"}]}`,
		`{"name": "x", "version": "1", "steps": []}`,
		`{"version": "1", "steps": [{"id": "a", "kind": "wait", "duration": "1s"}]}`,
	} {
		var v any
		if err := json.Unmarshal([]byte(doc), &v); err != nil {
			t.Fatal(err)
		}
		if schema.Validate(v) == nil {
			t.Errorf("schema accepted %s", doc)
		}
		if _, err := Load([]byte(doc), nil); err == nil {
			t.Errorf("Load accepted %s", doc)
		}
	}
}

// TestSchemaCoversGoFields checks that every JSON field of the Go types is
// in the format description (so Parse does not refuse it and the schema
// documents it) and that every described field exists in Go (so decoding
// does not drop it).
func TestSchemaCoversGoFields(t *testing.T) {
	var schema map[string]any
	if err := json.Unmarshal(JSONSchema(), &schema); err != nil {
		t.Fatal(err)
	}
	defs := schema["$defs"].(map[string]any)
	props := func(def string) map[string]any {
		if def == "" {
			return schema["properties"].(map[string]any)
		}
		return defs[def].(map[string]any)["properties"].(map[string]any)
	}
	types := map[string]reflect.Type{
		"":          reflect.TypeFor[Definition](),
		"step":      reflect.TypeFor[Step](),
		"retry":     reflect.TypeFor[RetryPolicy](),
		"approvers": reflect.TypeFor[Approvers](),
		"branch":    reflect.TypeFor[Branch](),
		"case":      reflect.TypeFor[Case](),
		"message":   reflect.TypeFor[ModelMessage](),
	}
	for def, typ := range types {
		p := props(def)
		goFields := map[string]bool{}
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				t.Errorf("%s.%s has no JSON name", typ.Name(), f.Name)
				continue
			}
			goFields[name] = true
			if _, ok := p[name]; !ok {
				t.Errorf("%s.%s (json %q) is missing from the schema", typ.Name(), f.Name, name)
			}
		}
		for name := range p {
			if !goFields[name] {
				t.Errorf("schema property %q of %s has no Go field", name, typ.Name())
			}
		}
	}
}
