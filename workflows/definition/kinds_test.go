package definition

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestStepKindsCoverStep checks the step kind table against the Step type:
// every JSON field of Step belongs to the common fields or to at least one
// kind, every field a kind names exists in Step, a field several kinds
// accept is described the same way in each, and required and oneOf name
// fields of the kind.
func TestStepKindsCoverStep(t *testing.T) {
	goFields := map[string]bool{}
	typ := reflect.TypeFor[Step]()
	for i := 0; i < typ.NumField(); i++ {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		goFields[name] = true
	}

	owners := map[string][]string{}
	for _, f := range stepCommonFields {
		owners[f.name] = append(owners[f.name], "every kind")
	}
	described := map[string]field{}
	names := map[string]bool{}
	for _, k := range stepKinds {
		if k.name == "" || names[k.name] {
			t.Errorf("kind %q: empty or listed twice", k.name)
		}
		names[k.name] = true
		if k.check == nil {
			t.Errorf("kind %s has no check", k.name)
		}
		accepts := map[string]bool{}
		for _, f := range k.fields {
			if !goFields[f.name] {
				t.Errorf("kind %s names field %q, which Step lacks", k.name, f.name)
			}
			if slices.ContainsFunc(stepCommonFields, func(c field) bool { return c.name == f.name }) {
				t.Errorf("kind %s lists common field %q", k.name, f.name)
			}
			if f.required {
				t.Errorf("kind %s: field %q sets required; list it in the kind's required", k.name, f.name)
			}
			if prev, ok := described[f.name]; ok && !reflect.DeepEqual(prev, f) {
				t.Errorf("field %q is described differently by %s than by %v: declare it once and list the variable", f.name, k.name, owners[f.name])
			}
			described[f.name] = f
			owners[f.name] = append(owners[f.name], k.name)
			accepts[f.name] = true
		}
		for _, r := range slices.Concat(k.required, k.oneOf) {
			if !accepts[r] {
				t.Errorf("kind %s requires %q, which it does not accept", k.name, r)
			}
		}
	}
	for _, f := range stepCommonFields {
		if !goFields[f.name] {
			t.Errorf("common field %q is not a field of Step", f.name)
		}
	}
	for name := range goFields {
		if len(owners[name]) == 0 {
			t.Errorf("Step field %q belongs to no step kind: add it to a kind's fields", name)
		}
	}
	if !slices.Equal(Kinds, kindNames(func(*stepKind) bool { return true })) || len(Kinds) != len(stepKinds) {
		t.Errorf("Kinds = %v, not the table's kinds", Kinds)
	}
}

// TestStepKindsRequired checks that each kind's check reports what the
// kind's table entry requires: a step with only id and kind has a problem
// at every required field and at one of its oneOf fields.
func TestStepKindsRequired(t *testing.T) {
	for _, k := range stepKinds {
		t.Run(k.name, func(t *testing.T) {
			d := &Definition{Name: "t", Version: "1", Steps: []Step{{ID: "a", Kind: k.name}}}
			at := map[string]bool{}
			var ve *ValidationError
			if err := d.Validate(nil); errors.As(err, &ve) {
				for _, p := range ve.Problems {
					at[p.Path] = true
				}
			}
			for _, r := range k.required {
				if !at["steps[0]."+r] {
					t.Errorf("no problem at steps[0].%s (problems at %v)", r, at)
				}
			}
			if len(k.oneOf) > 0 && !slices.ContainsFunc(k.oneOf, func(f string) bool { return at["steps[0]."+f] }) {
				t.Errorf("no problem at any of %v (problems at %v)", k.oneOf, at)
			}
		})
	}
}

// TestNotAllowedForKind sets, through reflection, each Step field a kind
// does not accept and expects Validate to refuse it at its path.
func TestNotAllowedForKind(t *testing.T) {
	for _, k := range stepKinds {
		allowed := kindsByName[k.name].allowed
		for _, f := range stepFields {
			if allowed[f.name] {
				continue
			}
			s := Step{ID: "a", Kind: k.name}
			setNonZero(t, reflect.ValueOf(&s).Elem().Field(f.index))
			if !f.set(&s) {
				t.Errorf("%s: set reports a non-zero value as unset", f.name)
			}
			d := &Definition{Name: "t", Version: "1", Steps: []Step{s}}
			want := Problem{Path: "steps[0]." + f.name, Message: "not allowed for kind " + k.name}
			var ve *ValidationError
			if err := d.Validate(nil); !errors.As(err, &ve) || !slices.Contains(ve.Problems, want) {
				t.Errorf("kind %s with %s set: want problem %q, got %v", k.name, f.name, want, err)
			}
		}
	}
	// Empty lists and maps count as unset, as before decoding dropped them.
	empty := Step{Headers: map[string]string{}, Steps: []Step{}}
	for _, f := range stepFields {
		if f.set(&empty) {
			t.Errorf("%s: an empty value counts as set", f.name)
		}
	}
}

func setNonZero(t *testing.T, v reflect.Value) {
	t.Helper()
	switch v.Kind() {
	case reflect.String:
		v.SetString("1s")
	case reflect.Int:
		v.SetInt(1)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		v.SetMapIndex(reflect.ValueOf("k"), reflect.ValueOf("v"))
	case reflect.Interface:
		v.Set(reflect.ValueOf("x"))
	default:
		t.Fatalf("no non-zero value for %s", v.Type())
	}
}
