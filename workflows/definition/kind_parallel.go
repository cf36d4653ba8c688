package definition

import "fmt"

// parallelKind runs branches concurrently and joins them.
var parallelKind = stepKind{
	name: KindParallel,
	fields: []field{
		{name: "branches", typ: tList, elem: &field{typ: tObject, obj: branchSpec}, minItems: 1},
	},
	required: []string{"branches"},
	check:    (*validator).parallelStep,
	arms: func(s *Step) []arm {
		out := make([]arm, len(s.Branches))
		for b := range s.Branches {
			out[b] = arm{path: fmt.Sprintf(".branches[%d].steps", b), index: b, steps: s.Branches[b].Steps}
		}
		return out
	},
}

var branchSpec = &objectSpec{
	name: "branch",
	desc: "One arm of a parallel step.",
	fields: []field{
		{name: "name", typ: tString},
		{name: "steps", typ: tStepList, required: true, minItems: 1},
	},
}

// parallelStep checks the branches; their steps are checked as arms, and
// after the join every branch's steps have run.
func (v *validator) parallelStep(s *Step, path string, _ exprCtx) {
	if len(s.Branches) == 0 {
		v.errorf(path+".branches", "at least one branch is required")
	}
	names := map[string]int{}
	for b := range s.Branches {
		br := &s.Branches[b]
		bp := fmt.Sprintf("%s.branches[%d]", path, b)
		if br.Name != "" {
			if first, dup := names[br.Name]; dup {
				v.errorf(bp+".name", "duplicate branch name %q (first used by branches[%d])", br.Name, first)
			} else {
				names[br.Name] = b
			}
		}
		if len(br.Steps) == 0 {
			v.errorf(bp+".steps", "at least one step is required")
		}
	}
}
