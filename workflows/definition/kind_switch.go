package definition

import "fmt"

// switchKind runs the first case whose condition is true, else default.
var switchKind = stepKind{
	name: KindSwitch,
	fields: []field{
		{name: "cases", typ: tList, elem: &field{typ: tObject, obj: caseSpec}, minItems: 1},
		{name: "default", typ: tStepList},
	},
	required: []string{"cases"},
	check:    (*validator).switchStep,
	arms: func(s *Step) []arm {
		out := make([]arm, 0, len(s.Cases)+1)
		for c := range s.Cases {
			out = append(out, arm{path: fmt.Sprintf(".cases[%d].steps", c), index: c, steps: s.Cases[c].Steps})
		}
		if len(s.Default) > 0 {
			out = append(out, arm{path: ".default", index: -1, steps: s.Default})
		}
		return out
	},
}

var caseSpec = &objectSpec{
	name: "case",
	desc: "One arm of a switch step: runs when its condition is the first to be true.",
	fields: []field{
		{name: "when", typ: tExpr, required: true},
		{name: "steps", typ: tStepList, required: true, minItems: 1},
	},
}

// switchStep checks the cases' conditions; the arms' steps are checked as
// arms. After the switch, steps of the arm taken hold results and the
// others are absent (null in expressions).
func (v *validator) switchStep(s *Step, path string, ctx exprCtx) {
	if len(s.Cases) == 0 {
		v.errorf(path+".cases", "at least one case is required")
	}
	for c := range s.Cases {
		cs := &s.Cases[c]
		cp := fmt.Sprintf("%s.cases[%d]", path, c)
		if cs.When == "" {
			v.errorf(cp+".when", "required")
		} else {
			v.expr(cp+".when", cs.When, ctx)
		}
		if len(cs.Steps) == 0 {
			v.errorf(cp+".steps", "at least one step is required")
		}
	}
}
