package main

// This file checks the import rules of docs/ARCHITECTURE.md against the
// real package graph (go list), so that the picture in the docs stays true.
// A failure names the offending import and the rule it breaks.

import (
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/gateflow/gateflow"

// importRule forbids packages under from (a module-relative path prefix) to
// import packages under any of to. Test files are exempt unless tests is
// set.
type importRule struct {
	from  string
	to    []string
	tests bool
	why   string
}

// importRules are the rules of docs/ARCHITECTURE.md, in its order.
var importRules = []importRule{
	{from: "workflows/", to: []string{"ingress/", "analytics/"}, why: "workflow code is driven by the edge and feeds analytics only through activities' records"},
	{from: "activities/", to: []string{"ingress/"}, why: "what the worker registers and the model gateway core never depend on the HTTP edge"},
	{from: "analytics/", to: []string{"ingress/", "workflows/"}, why: "records, producer, sink, schema and queries serve every part and depend on none"},
	{from: "ingress/api", to: []string{"workflows/", "analytics/", "activities/", "ingress/httperr"}, why: "the edge's toolkit is a leaf; domain errors are mapped in ingress/httperr"},
	{from: "workflows/wire", to: []string{"workflows/orchestrator", "workflows/registry", "activities/"}, why: "wire types must stay free of server code"},
	{from: "analytics/report", to: []string{"analytics/query", "analytics/sink", "analytics/producer"}, why: "report types must stay free of database and broker drivers"},
}

// outsideOnly lists packages that only cmd/ and tests may import.
var outsideOnly = []struct{ pkg, allowed, why string }{
	{pkg: "deploy/", allowed: "cmd/", why: "deploy/ wires the dev stack and examples; the parts never depend on how they are deployed"},
	{pkg: "github.com/labstack/echo", allowed: "ingress", why: "Echo types stay inside ingress/"},
}

// clientForbidden are dependencies the public Go client must not link.
var clientForbidden = []string{
	"go.temporal.io/",
	"github.com/ClickHouse/",
	"github.com/segmentio/kafka-go",
	"github.com/twmb/franz-go",
	"github.com/labstack/echo",
}

type listedPackage struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
	Deps         []string
}

func listPackages(t *testing.T, args ...string) []listedPackage {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-e", "-json=ImportPath,Imports,TestImports,XTestImports,Deps"}, args...)...)
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// rel returns the module-relative path of an import path ("" outside the
// module).
func rel(path string) string {
	if path == module {
		return "."
	}
	r, ok := strings.CutPrefix(path, module+"/")
	if !ok {
		return ""
	}
	return r
}

func under(relPath, prefix string) bool {
	if strings.HasSuffix(prefix, "/") {
		return strings.HasPrefix(relPath+"/", prefix)
	}
	return relPath == prefix || strings.HasPrefix(relPath, prefix+"/")
}

func TestImportRules(t *testing.T) {
	pkgs := listPackages(t, "./...")
	if len(pkgs) < 20 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	for _, p := range pkgs {
		from := rel(p.ImportPath)
		check := func(imports []string, test bool) {
			for _, imp := range imports {
				to := rel(imp)
				for _, r := range importRules {
					if !under(from, r.from) || (test && !r.tests) || to == "" {
						continue
					}
					for _, forbidden := range r.to {
						if under(to, forbidden) && !under(to, r.from) {
							t.Errorf("%s imports %s: %s must not import %s (%s)", from, to, r.from, forbidden, r.why)
						}
					}
				}
				if test {
					continue
				}
				for _, o := range outsideOnly {
					target := to
					if target == "" {
						target = imp
					}
					if under(target, o.pkg) || (to == "" && strings.HasPrefix(imp, o.pkg)) {
						if !under(from, o.allowed) && !under(from, strings.TrimSuffix(o.pkg, "/")) {
							t.Errorf("%s imports %s: only %s may (%s)", from, imp, o.allowed, o.why)
						}
					}
				}
			}
		}
		check(p.Imports, false)
		check(p.TestImports, true)
		check(p.XTestImports, true)
	}
}

// TestClientIsLight checks that a program importing the Go client links no
// server dependency.
func TestClientIsLight(t *testing.T) {
	pkgs := listPackages(t, "./ingress/client")
	if len(pkgs) != 1 {
		t.Fatalf("%d packages", len(pkgs))
	}
	for _, d := range pkgs[0].Deps {
		for _, f := range clientForbidden {
			if strings.HasPrefix(d, f) {
				t.Errorf("ingress/client links %s (importing the client must not pull %s*)", d, f)
			}
		}
	}
	t.Logf("ingress/client links %d packages", len(pkgs[0].Deps))
}
