package replicated

import "encoding/json"

// jsonMarshal is the one place where workflow code of this package calls
// encoding/json, which workflowcheck cannot prove deterministic: it is
// (map keys are sorted), so the call is marked here once.
func jsonMarshal(v any) ([]byte, error) {
	//workflowcheck:ignore
	return json.Marshal(v)
}
