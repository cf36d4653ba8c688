package definition

// Bounds of foreach concurrency.
const (
	// MaxForeachConcurrency bounds foreach concurrency.
	MaxForeachConcurrency = 100
	// DefaultForeachConcurrency is used when a foreach sets none.
	DefaultForeachConcurrency = 1
)

// foreachKind runs its steps once per item of a list.
var foreachKind = stepKind{
	name: KindForeach,
	fields: []field{
		{name: "items", typ: tExpr, desc: "Expression giving the list to iterate."},
		concurrencyField,
		{name: "steps", typ: tStepList, minItems: 1},
	},
	required: []string{"items", "steps"},
	check:    (*validator).foreachStep,
	arms: func(s *Step) []arm {
		if len(s.Steps) == 0 {
			return nil
		}
		return []arm{{path: ".steps", steps: s.Steps}}
	},
	perItem: true,
}

var concurrencyField = field{name: "concurrency", typ: tInt, min: num(1), max: num(MaxForeachConcurrency), desc: "Items run at once; default 1."}

// foreachStep checks the list and the bounds; the body is checked as an
// arm, visible only inside.
func (v *validator) foreachStep(s *Step, path string, ctx exprCtx) {
	if s.Items == "" {
		v.errorf(path+".items", "required")
	} else {
		v.expr(path+".items", s.Items, ctx)
	}
	if len(s.Steps) == 0 {
		v.errorf(path+".steps", "at least one step is required")
	}
	v.intField(path, &concurrencyField, s.Concurrency)
}

// ForeachConcurrency is the number of items a foreach runs at once.
func (s *Step) ForeachConcurrency() int {
	if s.Concurrency <= 0 {
		return DefaultForeachConcurrency
	}
	return s.Concurrency
}
