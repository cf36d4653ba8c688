package definition

// waitKind waits for a duration or until a time.
var waitKind = stepKind{
	name: KindWait,
	fields: []field{
		{name: "duration", typ: tDuration},
		{name: "until", typ: tExpr, desc: "Expression giving an RFC 3339 time or Unix milliseconds."},
	},
	oneOf: []string{"duration", "until"},
	check: (*validator).waitStep,
}

func (v *validator) waitStep(s *Step, path string, ctx exprCtx) {
	switch {
	case s.Duration == "" && s.Until == "":
		v.errorf(path+".duration", "a wait step needs duration or until")
	case s.Duration != "" && s.Until != "":
		v.errorf(path+".until", "set duration or until, not both")
	}
	v.duration(path+".duration", s.Duration, maxDefinitionTimeout)
	if s.Until != "" {
		v.expr(path+".until", s.Until, ctx)
	}
}
