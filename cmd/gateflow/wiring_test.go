package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.temporal.io/api/serviceerror"
)

// TestStoppedOr: a Temporal call cut by a stop fails with
// serviceerror.Canceled, which is not context.Canceled; once the context
// has ended, the error must say it was a stop (gateflow dev then exits 0),
// and before that no error may change.
func TestStoppedOr(t *testing.T) {
	live := context.Background()
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	rpcCanceled := serviceerror.NewCanceled("context canceled")
	refused := errors.New("connection refused")
	tests := []struct {
		name         string
		ctx          context.Context
		err          error
		wantCanceled bool
		wantText     string
	}{
		{"no error", stopped, nil, false, ""},
		{"failure while running", live, refused, false, "connection refused"},
		{"cancelled call while running", live, rpcCanceled, false, "context canceled"},
		{"call cut by a stop", stopped, rpcCanceled, true, "context canceled"},
		{"failure after a stop", stopped, refused, true, "connection refused"},
		{"already context.Canceled", stopped, context.Canceled, true, "context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := stoppedOr(tt.ctx, tt.err)
			if tt.err == nil {
				if got != nil {
					t.Fatalf("stoppedOr(nil) = %v", got)
				}
				return
			}
			if is := errors.Is(got, context.Canceled); is != tt.wantCanceled {
				t.Errorf("errors.Is(%v, context.Canceled) = %v, want %v", got, is, tt.wantCanceled)
			}
			if !strings.Contains(got.Error(), tt.wantText) {
				t.Errorf("error %q does not name %q", got, tt.wantText)
			}
		})
	}
}
