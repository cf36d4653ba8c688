package catalog

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"sort"
)

// The wrappers below are the only places where the catalogue's workflow
// code calls functions workflowcheck cannot prove deterministic. Each is
// deterministic for the reason given, so the call is marked once here.

// jsonMarshal: encoding/json sorts map keys, so the output is a function of
// the value.
func jsonMarshal(v any) ([]byte, error) {
	//workflowcheck:ignore
	return json.Marshal(v)
}

// jsonUnmarshal: decoding is a function of the input.
func jsonUnmarshal(b []byte, v any) error {
	//workflowcheck:ignore
	return json.Unmarshal(b, v)
}

// sortedKeys: the keys are sorted after the map is read, so the order of
// the iteration does not matter.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	//workflowcheck:ignore
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// maxSavedState bounds what a continued run reads back.
const maxSavedState = 4 * MaxStateBytes

// gzipJSON and gunzipJSON: compress/gzip output is a function of the input
// and level.
func gzipJSON(v any) ([]byte, error) {
	//workflowcheck:ignore
	return encodeGzipJSON(v)
}

func gunzipJSON(b []byte, v any) error {
	//workflowcheck:ignore
	return decodeGzipJSON(b, v)
}

func encodeGzipJSON(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func decodeGzipJSON(b []byte, v any) error {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return err
	}
	raw, err := io.ReadAll(io.LimitReader(zr, maxSavedState))
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}
