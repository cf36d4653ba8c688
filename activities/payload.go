package activities

import "encoding/json"

// Temporal stores an activity's result as one payload of an event, and
// refuses an event blob above its dynamic config limit.blobSize.error:
// 2 MiB by default (go.temporal.io/server common/dynamicconfig,
// BlobSizeLimitError; it warns from limit.blobSize.warn, 512 KiB). A
// result above it does not complete the call: the server fails it with
// an error the step cannot explain. So a call's output is bounded below
// that limit, and a larger one fails the call with class too_large (not
// retried), like a response over the response cap (issue 10 item 9).
const (
	// TemporalBlobSizeLimit is the Temporal server's default
	// limit.blobSize.error.
	TemporalBlobSizeLimit = 2 << 20
	// MaxOutputBytes bounds the JSON-encoded output of one call: the
	// blob limit less room for the payload's metadata and the payload
	// codec's envelope. Response caps (--max-response-bytes, a service's
	// max_response_bytes) may not exceed it.
	MaxOutputBytes = TemporalBlobSizeLimit - 64<<10
)

// outputSize returns the encoded size of a call's output, as the data
// converter will write it (JSON), and whether it is over MaxOutputBytes. A
// response body within the response cap can still grow here: a non-JSON
// body becomes a JSON string, where every '<', '>' and '&' takes six bytes.
func outputSize(v any) (int, bool) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, false // the data converter reports it
	}
	return len(b), len(b) > MaxOutputBytes
}
