package schedules

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/workflows/wire"
)

// configBy names who created config schedules.
const configBy = "gateflow.yaml"

// Reconcile makes the schedules of the configuration exist in Temporal as
// written: it creates the missing ones, updates those whose entry (or
// resolved definition) changed, and deletes config schedules no longer in
// desired. Schedules created through the API are left alone; one whose id
// a config entry also names is reported and kept. Several processes may
// reconcile at once: they converge on the same result.
func (m *Manager) Reconcile(ctx context.Context, desired []sysconfig.Schedule) error {
	var errs []error
	want := map[string]bool{}
	for _, s := range desired {
		id := ScheduleID(s.Tenant, s.Name)
		want[id] = true
		if err := m.reconcileOne(ctx, s); err != nil {
			errs = append(errs, fmt.Errorf("schedule %s of tenant %s: %w", s.Name, s.Tenant, err))
		}
	}
	ids, err := m.allIDs(ctx)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, id := range ids {
		if want[id] {
			continue
		}
		tenant, name, ok := splitID(id)
		if !ok {
			continue
		}
		cur, err := m.describe(ctx, tenant, name)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if cur.source != wire.SourceConfig {
			continue
		}
		if err := m.sc.GetHandle(ctx, id).Delete(ctx); err != nil && !errors.Is(temporalError(err, name), ErrNotFound) {
			errs = append(errs, fmt.Errorf("delete schedule %s: %w", id, err))
			continue
		}
		m.log.Info("schedule removed from the configuration: deleted", "tenant", tenant, "schedule", name)
	}
	return errors.Join(errs...)
}

func (m *Manager) reconcileOne(ctx context.Context, s sysconfig.Schedule) error {
	opts, err := m.options(ctx, s.Tenant, s.Name, s.ScheduleSpec, wire.SourceConfig, configBy)
	if err != nil {
		return err
	}
	cur, err := m.describe(ctx, s.Tenant, s.Name)
	switch {
	case errors.Is(err, ErrNotFound):
		if _, err := m.sc.Create(ctx, opts); err != nil && !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
			return temporalError(err, s.Name)
		}
		m.log.Info("schedule of the configuration created", "tenant", s.Tenant, "schedule", s.Name, "paused", s.Paused)
		return nil
	case err != nil:
		return err
	case cur.source != wire.SourceConfig:
		m.log.Warn("a schedule created through the API has the id of a configured one; keeping the API's", "tenant", s.Tenant, "schedule", s.Name)
		return nil
	}
	var digest string
	if a, ok := opts.Action.(*client.ScheduleWorkflowAction); ok {
		memoString(a.Memo[memoDigest], &digest)
	}
	if digest == cur.digest {
		return nil
	}
	if err := m.replace(ctx, s.Tenant, s.Name, s.ScheduleSpec, wire.SourceConfig, configBy); err != nil {
		return err
	}
	m.log.Info("schedule of the configuration updated", "tenant", s.Tenant, "schedule", s.Name)
	return nil
}

// allIDs lists the ids of every Gateflow schedule (all tenants).
func (m *Manager) allIDs(ctx context.Context) ([]string, error) {
	it, err := m.sc.List(ctx, client.ScheduleListOptions{PageSize: 1000})
	if err != nil {
		return nil, temporalError(err, "")
	}
	var out []string
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, temporalError(err, "")
		}
		if strings.HasPrefix(e.ID, IDPrefix) {
			out = append(out, e.ID)
		}
	}
	return out, nil
}

func splitID(id string) (tenant, name string, ok bool) {
	rest, ok := strings.CutPrefix(id, IDPrefix)
	if !ok {
		return "", "", false
	}
	tenant, name, ok = strings.Cut(rest, "/")
	return tenant, name, ok && tenant != "" && name != "" && !strings.Contains(name, "/")
}

// Snapshots gives the current configuration snapshot (the registry).
type Snapshots interface {
	Current() *sysconfig.Snapshot
}

// RunReconciler reconciles the configured schedules now, whenever the
// configuration is reloaded, and every resync (a definition published
// since may change what "latest" resolves to), until ctx ends. Failures
// are logged and retried at the next round.
func (m *Manager) RunReconciler(ctx context.Context, reg Snapshots, poll, resync time.Duration) {
	var last *sysconfig.Snapshot
	var lastRun time.Time
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		snap := reg.Current()
		if snap != last || time.Since(lastRun) >= resync {
			if err := m.Reconcile(ctx, snap.Schedules()); err != nil {
				if ctx.Err() != nil {
					return
				}
				m.log.Error("schedules not reconciled with the configuration; retrying", "err", err)
			} else {
				last = snap
			}
			lastRun = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// CountRuns counts the firings of spec in [from, to), stopping at limit.
func CountRuns(spec wire.ScheduleSpec, from, to time.Time, limit int) (int, error) {
	if iv := spec.Interval.Std(); iv > 0 {
		// Temporal's intervals fire at epoch + n*every + offset.
		off := spec.Offset.Std()
		first := from.Add(-off).UnixNano()
		every := iv.Nanoseconds()
		n := first / every
		if first%every != 0 && first > 0 {
			n++
		}
		count := 0
		for t := time.Unix(0, n*every).Add(off); t.Before(to) && count < limit; t = t.Add(iv) {
			if !t.Before(from) {
				count++
			}
		}
		return count, nil
	}
	sched, err := cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor).Parse(spec.Cron)
	if err != nil {
		return 0, fmt.Errorf("%w: cron: %v", ErrInvalid, err)
	}
	loc := time.UTC
	if spec.Timezone != "" {
		if loc, err = time.LoadLocation(spec.Timezone); err != nil {
			return 0, fmt.Errorf("%w: timezone: %v", ErrInvalid, err)
		}
	}
	count := 0
	for t := sched.Next(from.Add(-time.Nanosecond).In(loc)); t.Before(to) && count < limit; t = sched.Next(t) {
		count++
	}
	return count, nil
}
