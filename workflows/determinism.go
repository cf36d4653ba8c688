package workflows

import (
	"encoding/json"

	"github.com/gateflow/gateflow/activities/llm"
	"github.com/gateflow/gateflow/workflows/definition"
)

// The wrappers below are the only places where workflow code calls
// functions that workflowcheck cannot prove deterministic. Each is
// deterministic for the reason given, so the call is marked with
// //workflowcheck:ignore here, once, instead of at every use.

// jsonMarshal: encoding/json sorts map keys, so the output is a function of
// the value.
func jsonMarshal(v any) ([]byte, error) {
	//workflowcheck:ignore
	return json.Marshal(v)
}

// jsonUnmarshal: decoding is a function of the bytes.
func jsonUnmarshal(data []byte, v any) error {
	//workflowcheck:ignore
	return json.Unmarshal(data, v)
}

// textMessage builds a chat message (encodes a string as JSON).
func textMessage(role, text string) llm.Message {
	//workflowcheck:ignore
	return llm.TextMessage(role, text)
}

// The definition package evaluates expressions deterministically: maps are
// walked in sorted key order, no clock (the now() builtin is disabled), no
// randomness, no I/O; its internal map iteration only copies environments
// and its program cache returns what a fresh compilation would.

func evalTemplate(v any, env definition.Env) (any, error) {
	//workflowcheck:ignore
	return definition.EvalTemplate(v, env)
}

func evalString(s string, env definition.Env) (string, error) {
	//workflowcheck:ignore
	return definition.EvalString(s, env)
}

func evalPath(s string, env definition.Env) (string, error) {
	//workflowcheck:ignore
	return definition.EvalPath(s, env)
}

func evalCondition(src string, env definition.Env) (bool, error) {
	//workflowcheck:ignore
	return definition.EvalCondition(src, env)
}

func evalList(src string, env definition.Env) ([]any, error) {
	//workflowcheck:ignore
	return definition.EvalList(src, env)
}

func evalValue(src string, env definition.Env) (any, error) {
	//workflowcheck:ignore
	return definition.EvalValue(src, env)
}

// sortedKeys returns the keys of m in order; the map iteration only
// collects them.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	//workflowcheck:ignore
	for k := range m {
		keys = append(keys, k)
	}
	sortStrings(keys)
	return keys
}

// sortStrings is an insertion sort: key lists here are short.
func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
