package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/gateflow/gateflow/workflows/wire"
)

// The event-driven parts of the API: schedules, events and triggers.
type (
	// ScheduleSpec says when and what a schedule starts.
	ScheduleSpec = wire.ScheduleSpec
	// ScheduleRequest creates a schedule.
	ScheduleRequest = wire.ScheduleRequest
	// Schedule is a schedule with its state and next runs.
	Schedule = wire.Schedule
	// Schedules is a list of schedules.
	Schedules = wire.Schedules
	// BackfillRequest backfills a range.
	BackfillRequest = wire.BackfillRequest
	// EventRequest is an event for waiting event steps.
	EventRequest = wire.EventRequest
	// EventAccepted answers an event.
	EventAccepted = wire.EventAccepted
	// Triggers lists topic triggers and webhooks.
	Triggers = wire.Triggers
)

func schedulePath(id string) string { return "/v1/schedules/" + url.PathEscape(id) }

// Schedules lists the tenant's schedules.
func (c *Client) Schedules(ctx context.Context) (Schedules, error) {
	var out Schedules
	_, err := c.call(ctx, http.MethodGet, "/v1/schedules", nil, nil, nil, &out)
	return out, err
}

// Schedule returns one schedule.
func (c *Client) Schedule(ctx context.Context, id string) (Schedule, error) {
	var out Schedule
	_, err := c.call(ctx, http.MethodGet, schedulePath(id), nil, nil, nil, &out)
	return out, err
}

// CreateSchedule creates a schedule.
func (c *Client) CreateSchedule(ctx context.Context, r ScheduleRequest) (Schedule, error) {
	var out Schedule
	_, err := c.call(ctx, http.MethodPost, "/v1/schedules", nil, r, nil, &out)
	return out, err
}

// UpdateSchedule replaces a schedule's spec.
func (c *Client) UpdateSchedule(ctx context.Context, id string, spec ScheduleSpec) (Schedule, error) {
	var out Schedule
	_, err := c.call(ctx, http.MethodPut, schedulePath(id), nil, spec, nil, &out)
	return out, err
}

// DeleteSchedule deletes a schedule.
func (c *Client) DeleteSchedule(ctx context.Context, id string) error {
	_, err := c.call(ctx, http.MethodDelete, schedulePath(id), nil, nil, nil, nil)
	return err
}

// PauseSchedule pauses a schedule; ResumeSchedule resumes it.
func (c *Client) PauseSchedule(ctx context.Context, id, note string) (Schedule, error) {
	var out Schedule
	_, err := c.call(ctx, http.MethodPost, schedulePath(id)+"/pause", nil, wire.ScheduleAction{Note: note}, nil, &out)
	return out, err
}

// ResumeSchedule resumes a paused schedule.
func (c *Client) ResumeSchedule(ctx context.Context, id, note string) (Schedule, error) {
	var out Schedule
	_, err := c.call(ctx, http.MethodPost, schedulePath(id)+"/resume", nil, wire.ScheduleAction{Note: note}, nil, &out)
	return out, err
}

// TriggerSchedule starts a run now.
func (c *Client) TriggerSchedule(ctx context.Context, id, overlap string) error {
	_, err := c.call(ctx, http.MethodPost, schedulePath(id)+"/trigger", nil, wire.ScheduleAction{Overlap: overlap}, nil, nil)
	return err
}

// BackfillSchedule starts the runs of a range at once and returns their
// number.
func (c *Client) BackfillSchedule(ctx context.Context, id string, r BackfillRequest) (int, error) {
	var out struct {
		Runs int `json:"runs"`
	}
	_, err := c.call(ctx, http.MethodPost, schedulePath(id)+"/backfill", nil, r, nil, &out)
	return out.Runs, err
}

// SendEvent sends an event to the event steps waiting for it.
func (c *Client) SendEvent(ctx context.Context, r EventRequest) (EventAccepted, error) {
	var out EventAccepted
	_, err := c.call(ctx, http.MethodPost, "/v1/events", nil, r, nil, &out)
	return out, err
}

// Triggers lists the tenant's topic triggers and webhooks.
func (c *Client) Triggers(ctx context.Context) (Triggers, error) {
	var out Triggers
	_, err := c.call(ctx, http.MethodGet, "/v1/triggers", nil, nil, nil, &out)
	return out, err
}
