package definition

import (
	"fmt"
	"slices"
	"strings"
)

// ModelRoles are the roles of model step messages.
var ModelRoles = []string{"system", "user", "assistant"}

// modelKind calls a model through the model gateway.
var modelKind = stepKind{
	name: KindModel,
	fields: []field{
		{name: "model", typ: tName, desc: "\"provider/model\" or an alias from the model registry."},
		{name: "system", typ: tTemplateString},
		{name: "prompt", typ: tTemplateString, desc: "User message (or use messages)."},
		{name: "messages", typ: tList, elem: &field{typ: tObject, obj: messageSpec}},
		maxTokensField,
		temperatureField,
		{name: "response_format", typ: tString, enum: []string{"text", "json"}},
		timeoutField,
		retryField,
	},
	required:     []string{"model"},
	oneOf:        []string{"prompt", "messages"},
	compensation: true,
	check:        (*validator).modelStep,
}

// Bounded fields of a model step, checked by modelStep.
var (
	maxTokensField   = field{name: "max_tokens", typ: tInt, min: num(1), max: num(10_000_000)}
	temperatureField = field{name: "temperature", typ: tNumber, min: num(0), max: num(2)}
)

var messageSpec = &objectSpec{
	name: "message",
	desc: "One chat message of a model step.",
	fields: []field{
		{name: "role", typ: tString, enum: ModelRoles, required: true},
		{name: "content", typ: tTemplateString, required: true},
	},
}

func (v *validator) modelStep(s *Step, path string, ctx exprCtx) {
	switch {
	case s.Model == "":
		v.errorf(path+".model", "required")
	default:
		v.name(path+".model", s.Model)
		if v.cat != nil && !v.cat.HasModel(s.Model) {
			v.errorf(path+".model", "unknown model %q", s.Model)
		}
	}
	switch {
	case s.Prompt == "" && len(s.Messages) == 0:
		v.errorf(path+".prompt", "a model step needs prompt or messages")
	case s.Prompt != "" && len(s.Messages) > 0:
		v.errorf(path+".messages", "set prompt or messages, not both")
	}
	if s.System != "" {
		v.templateString(path+".system", s.System, ctx)
	}
	if s.Prompt != "" {
		v.templateString(path+".prompt", s.Prompt, ctx)
	}
	for i, m := range s.Messages {
		p := fmt.Sprintf("%s.messages[%d]", path, i)
		if !slices.Contains(ModelRoles, m.Role) {
			v.errorf(p+".role", "must be one of %s", strings.Join(ModelRoles, ", "))
		}
		if m.Content == "" {
			v.errorf(p+".content", "required")
		} else {
			v.templateString(p+".content", m.Content, ctx)
		}
	}
	v.intField(path, &maxTokensField, s.MaxTokens)
	if s.Temperature != nil {
		v.bounds(path+".temperature", &temperatureField, *s.Temperature)
	}
	if s.ResponseFormat != "" && s.ResponseFormat != "text" && s.ResponseFormat != "json" {
		v.errorf(path+".response_format", "must be text or json")
	}
}
