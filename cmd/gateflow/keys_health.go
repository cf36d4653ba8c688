package main

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gateflow/gateflow/ingress"
	"github.com/gateflow/gateflow/ingress/auth"
)

// keysHealth makes the keys file's reloads visible (issue 10 item 9): a
// reload that skipped invalid entries applies the rest, so its failure
// must not go unnoticed — it is counted, shown as a gauge and turns
// /readyz "degraded" (not unready: the valid keys serve).
type keysHealth struct {
	store    *auth.Store
	failures prometheus.Counter
}

func newKeysHealth(store *auth.Store, reg prometheus.Registerer) (*keysHealth, error) {
	h := &keysHealth{store: store, failures: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gateflow_keys_reload_failures_total",
		Help: "Reloads of the keys file that found problems (invalid entries were skipped, or nothing could be read).",
	})}
	ok := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gateflow_keys_reload_ok",
		Help: "1 when the last load of the keys file applied it whole, 0 when it found problems.",
	}, func() float64 {
		if store.LastReload().Err != nil {
			return 0
		}
		return 1
	})
	invalid := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gateflow_keys_invalid_entries",
		Help: "Entries of the keys file the last reload skipped as invalid.",
	}, func() float64 { return float64(store.LastReload().Invalid) })
	for _, c := range []prometheus.Collector{h.failures, ok, invalid} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register keys metrics: %w", err)
		}
	}
	return h, nil
}

// ready is the /readyz check "keys". /readyz is public: the message names
// neither the file nor key ids (the log has them).
func (h *keysHealth) ready() ingress.ReadyCheck {
	return ingress.ReadyCheck{Name: "keys", Optional: true, Check: func(context.Context) error {
		st := h.store.LastReload()
		switch {
		case st.Err == nil:
			return nil
		case st.Applied:
			return fmt.Errorf("the keys file reload at %s skipped %d invalid entries (valid and disabled entries were applied; see the log)",
				st.At.UTC().Format("2006-01-02T15:04:05Z"), st.Invalid)
		default:
			return fmt.Errorf("the keys file reload at %s failed; the previous keys are in use (see the log)", st.At.UTC().Format("2006-01-02T15:04:05Z"))
		}
	}}
}
