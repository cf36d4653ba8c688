package calls

import "testing"

// TestClasses checks that every class is declared once, with a doc, and
// that record-only classes are not retried.
func TestClasses(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range Classes() {
		if c.Name == "" || seen[c.Name] {
			t.Errorf("class %q: empty or declared twice", c.Name)
		}
		seen[c.Name] = true
		if c.Doc == "" {
			t.Errorf("class %s has no doc", c.Name)
		}
		if c.RecordOnly && c.Retryable {
			t.Errorf("class %s is record-only yet retryable", c.Name)
		}
		if Retryable(c.Name) != c.Retryable {
			t.Errorf("Retryable(%s) = %v", c.Name, !c.Retryable)
		}
	}
	if Retryable("no such class") {
		t.Error("an unknown class is retryable")
	}
}
