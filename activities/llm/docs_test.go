package llm

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const modelsDoc = "../../docs/MODELS.md"

// Every gateflow.yaml example of docs/MODELS.md that declares providers is
// a valid models configuration.
func TestModelsDocExamplesAreValid(t *testing.T) {
	b, err := os.ReadFile(modelsDoc)
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(models:\n.*?)```").FindAllStringSubmatch(string(b), -1)
	checked := 0
	for _, m := range blocks {
		var doc struct {
			Models Config `yaml:"models"`
		}
		if err := yaml.Unmarshal([]byte(m[1]), &doc); err != nil {
			t.Errorf("example does not decode: %v\n%s", err, m[1])
			continue
		}
		if len(doc.Models.Providers) == 0 {
			continue
		}
		// Examples may name an alias target or catalogue entry defined in
		// another example; each is checked on its own otherwise.
		if err := doc.Models.Validate(); err != nil {
			t.Errorf("example is invalid: %v\n%s", err, m[1])
		}
		checked++
	}
	if checked < 8 {
		t.Errorf("%d provider examples checked", checked)
	}
}

// The presets table of docs/MODELS.md lists every preset with its base URL
// and key variable.
func TestModelsDocListsPresets(t *testing.T) {
	b, err := os.ReadFile(filepath.Clean(modelsDoc))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start, end := strings.Index(doc, "<!-- presets:begin -->"), strings.Index(doc, "<!-- presets:end -->")
	if start < 0 || end < start {
		t.Fatal("no presets table")
	}
	table := doc[start:end]
	for _, p := range Presets() {
		key := "none"
		if p.KeyEnv != "" {
			key = "`" + p.KeyEnv + "`"
		}
		emb := "no"
		if p.Embeddings {
			emb = "yes"
		}
		row := fmt.Sprintf("| `%s` | %s | `%s` | %s | %s |", p.Kind, p.Vendor, p.BaseURL, key, emb)
		if !strings.Contains(table, row) {
			t.Errorf("presets table lacks or misstates %s: want a row starting %q", p.Kind, row)
		}
	}
	if rows := strings.Count(table, "\n| `"); rows != len(presets) {
		t.Errorf("%d rows for %d presets", rows, len(presets))
	}
}
