package definition

// mcpKind calls a tool of a registered MCP server.
var mcpKind = stepKind{
	name: KindMCP,
	fields: []field{
		{name: "server", typ: tName, desc: "Registered MCP server name."},
		{name: "tool", typ: tName},
		{name: "arguments", typ: tTemplate},
		timeoutField,
		retryField,
	},
	required:     []string{"server", "tool"},
	compensation: true,
	check:        (*validator).mcpStep,
}

func (v *validator) mcpStep(s *Step, path string, ctx exprCtx) {
	if s.Server == "" {
		v.errorf(path+".server", "required")
	} else {
		v.name(path+".server", s.Server)
		if v.cat != nil && !v.cat.HasMCPServer(s.Server) {
			v.errorf(path+".server", "unknown MCP server %q", s.Server)
		}
	}
	if s.Tool == "" {
		v.errorf(path+".tool", "required")
	} else {
		v.name(path+".tool", s.Tool)
	}
	if s.Arguments != nil {
		v.template(path+".arguments", s.Arguments, ctx)
	}
}
