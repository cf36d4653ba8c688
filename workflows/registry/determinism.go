package registry

import (
	"encoding/json"
)

// The wrappers below are the only places where the registry workflow calls
// functions that workflowcheck cannot prove deterministic. Each is
// deterministic (or never replayed) for the reason given, so the call is
// marked with //workflowcheck:ignore once here.

// jsonMarshal: encoding/json sorts map keys, so the output is a function of
// the value.
func jsonMarshal(v any) ([]byte, error) {
	//workflowcheck:ignore
	return json.Marshal(v)
}

// validateAgainstConfig runs in the publish Update's validator, which the
// SDK does not run on replay (an accepted update is in the history), so it
// may read the current configuration.
func (e *Entity) validateAgainstConfig(st *entityState, req PublishRequest) error {
	//workflowcheck:ignore
	return e.validate(st, req)
}

// gzipState and gunzipState: compress/gzip output is a function of the
// input and level.
func gzipState(pubs []Published) ([]byte, error) {
	//workflowcheck:ignore
	return encodeState(pubs)
}

func gunzipState(b []byte) ([]Published, error) {
	//workflowcheck:ignore
	return decodeState(b)
}
