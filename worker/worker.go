// Package worker runs the Temporal worker of Gateflow: the orchestration
// interpreter, the definition registry workflow, the event mailboxes, and
// the activities that make the calls (HTTP microservices, models, MCP
// tools) and record approvals and schedule firings.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/events"
)

// Defaults sized for a small machine (2 cores): activities are I/O-bound
// HTTP and model calls, so many may wait at once; workflow tasks are short
// CPU work, so a few at a time keep latency low.
const (
	DefaultMaxConcurrentActivities    = 512
	DefaultMaxConcurrentWorkflowTasks = 64
	DefaultPollers                    = 4
	DefaultStopTimeout                = 10 * time.Second
)

// Options tunes the worker; zero values take the defaults.
type Options struct {
	// TaskQueue polled for orchestrations and their activities
	// (workflows.DefaultTaskQueue when empty).
	TaskQueue                  string
	MaxConcurrentActivities    int
	MaxConcurrentWorkflowTasks int
	// Pollers is the number of pollers for each of workflow and activity
	// tasks.
	Pollers int
	// StopTimeout is how long a stopping worker lets running activities
	// finish before abandoning them (Temporal retries them elsewhere).
	StopTimeout time.Duration
	// HTTP tunes the HTTP call activity.
	HTTP   activities.HTTPOptions
	Logger *slog.Logger
}

// ModelCall is the model activity's Call method
// ((*activities.ModelActivity).Call).
type ModelCall func(context.Context, activities.ModelCallInput) (activities.ModelCallOutput, error)

// MCPCall is the MCP activity's call method.
type MCPCall func(context.Context, activities.MCPCallInput) (activities.MCPCallOutput, error)

// Deps are what the activities call and where records go.
type Deps struct {
	// Services resolves http step targets (required).
	Services activities.Services
	// Recorder receives the call records of HTTP attempts and approvals
	// (the analytics producer); nil drops them.
	Recorder activities.Recorder
	// Model and MCP serve model and mcp steps; when nil the activity is
	// not registered here, and such steps wait for a worker that has it.
	Model ModelCall
	MCP   MCPCall
	// Register adds more registrations, e.g. the definition registry
	// entity workflow's helper.
	Register []func(sdkworker.Registry)
}

// Worker is a started or startable Temporal worker.
type Worker struct {
	w     sdkworker.Worker
	log   *slog.Logger
	fatal chan error
}

// New builds the worker on client c and registers everything on it; Run
// starts it.
func New(c client.Client, opts Options, deps Deps) (*Worker, error) {
	if c == nil {
		return nil, errors.New("worker: nil Temporal client")
	}
	if deps.Services == nil {
		return nil, errors.New("worker: Deps.Services is required (http steps resolve their targets through it)")
	}
	if opts.TaskQueue == "" {
		opts.TaskQueue = workflows.DefaultTaskQueue
	}
	if opts.MaxConcurrentActivities <= 0 {
		opts.MaxConcurrentActivities = DefaultMaxConcurrentActivities
	}
	if opts.MaxConcurrentWorkflowTasks <= 0 {
		opts.MaxConcurrentWorkflowTasks = DefaultMaxConcurrentWorkflowTasks
	}
	if opts.Pollers <= 0 {
		opts.Pollers = DefaultPollers
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = DefaultStopTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.HTTP.Logger == nil {
		opts.HTTP.Logger = opts.Logger.With("component", "http-activity")
	}
	wk := &Worker{log: opts.Logger, fatal: make(chan error, 1)}
	wk.w = sdkworker.New(c, opts.TaskQueue, sdkworker.Options{
		MaxConcurrentActivityExecutionSize:      opts.MaxConcurrentActivities,
		MaxConcurrentLocalActivityExecutionSize: opts.MaxConcurrentActivities,
		MaxConcurrentWorkflowTaskExecutionSize:  opts.MaxConcurrentWorkflowTasks,
		MaxConcurrentWorkflowTaskPollers:        opts.Pollers,
		MaxConcurrentActivityTaskPollers:        opts.Pollers,
		WorkerStopTimeout:                       opts.StopTimeout,
		OnFatalError: func(err error) {
			select {
			case wk.fatal <- err:
			default:
			}
		},
	})
	Register(wk.w, deps, opts.HTTP)
	// Event mailboxes start on this task queue and reach Temporal
	// through this client.
	events.Register(wk.w, c, opts.TaskQueue)
	return wk, nil
}

// Register registers the orchestration workflow and the activities on r
// (a worker, or a test environment). It is what New does; tests use it to
// register on their own workers.
func Register(r sdkworker.Registry, deps Deps, httpOpts activities.HTTPOptions) {
	r.RegisterWorkflowWithOptions(workflows.Orchestration, workflow.RegisterOptions{Name: workflows.OrchestrationWorkflow})
	rec := deps.Recorder
	if rec == nil {
		rec = activities.NopRecorder{}
	}
	httpAct := activities.NewHTTPActivity(deps.Services, rec, httpOpts)
	r.RegisterActivityWithOptions(httpAct.Call, activity.RegisterOptions{Name: activities.HTTPCallActivity})
	approvals := activities.NewApprovalActivity(rec)
	r.RegisterActivityWithOptions(approvals.Record, activity.RegisterOptions{Name: activities.RecordApprovalActivity})
	firings := activities.NewTriggerActivity(rec)
	r.RegisterActivityWithOptions(firings.Record, activity.RegisterOptions{Name: activities.RecordTriggerActivity})
	if deps.Model != nil {
		r.RegisterActivityWithOptions(deps.Model, activity.RegisterOptions{Name: activities.ModelCallActivity})
	}
	if deps.MCP != nil {
		r.RegisterActivityWithOptions(deps.MCP, activity.RegisterOptions{Name: activities.MCPCallActivity})
	}
	for _, reg := range deps.Register {
		reg(r)
	}
}

// Run starts polling and blocks until ctx is cancelled (then stops
// gracefully: running activities get StopTimeout to finish) or the worker
// fails fatally.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.w.Start(); err != nil {
		return fmt.Errorf("start Temporal worker: %w", err)
	}
	w.log.Info("worker started")
	var err error
	select {
	case <-ctx.Done():
	case err = <-w.fatal:
		err = fmt.Errorf("temporal worker failed: %w", err)
	}
	w.w.Stop()
	w.log.Info("worker stopped")
	return err
}
