package wire

import (
	"encoding/json"
	"time"

	"github.com/gateflow/gateflow/workflows/definition"
)

// The REST API's answers about runs, approvals and definitions.

// RunStatus is an orchestration's state as the API shows it: its ids and
// the status query's answer (or Temporal's record once it has closed).
type RunStatus struct {
	ID    string `json:"id"`
	RunID string `json:"run_id"`
	Status
}

// Approval is an approval step waiting for the caller's decision.
type Approval struct {
	WorkflowID string `json:"workflow_id"`
	Definition string `json:"definition"`
	Version    string `json:"version"`
	PendingApproval
}

// Approvals is the answer of PendingApprovals.
type Approvals struct {
	Items []Approval `json:"items"`
	// Truncated is true when more workflows matched than were inspected
	// (Options.ApprovalScanLimit); the list may be incomplete.
	Truncated bool `json:"truncated,omitempty"`
	// Scanned is how many running workflows were queried.
	Scanned int `json:"scanned"`
}

// Summary is one orchestration in a list.
type Summary struct {
	ID         string     `json:"id"`
	RunID      string     `json:"run_id"`
	Definition string     `json:"definition"`
	Version    string     `json:"version"`
	State      RunState   `json:"state"`
	StartedAt  time.Time  `json:"started_at"`
	ClosedAt   *time.Time `json:"closed_at,omitempty"`
}

// Page is one page of a list; NextCursor is empty on the last page.
type Page struct {
	Items      []Summary `json:"items"`
	NextCursor string    `json:"next_cursor,omitempty"`
}

// DefinitionInfo describes one published version.
type DefinitionInfo struct {
	Name        string     `json:"name"`
	Version     string     `json:"version"`
	Description string     `json:"description,omitempty"`
	Source      string     `json:"source,omitempty"` // "file" or "api"
	PublishedAt *time.Time `json:"published_at,omitempty"`
	PublishedBy string     `json:"published_by,omitempty"`
	// Existing is true when a publish found the same content already
	// published (an idempotent retry).
	Existing bool `json:"existing,omitempty"`
}

// StartResult names the started (or already existing) orchestration.
type StartResult struct {
	ID         string `json:"id"`
	RunID      string `json:"run_id"`
	Definition string `json:"definition"`
	Version    string `json:"version"`
	// Created is false when an idempotent retry found the existing workflow.
	Created bool `json:"-"`
}

// RunInput is what an orchestration was started with: its input, the
// definition it runs (as resolved at start, with the services' default
// timeouts and retry policies merged in), who submitted it and its labels.
type RunInput struct {
	ID          string                `json:"id"`
	RunID       string                `json:"run_id"`
	Input       json.RawMessage       `json:"input,omitempty"`
	Definition  definition.Definition `json:"definition"`
	SubmittedBy string                `json:"submitted_by,omitempty"`
	Labels      map[string]string     `json:"labels,omitempty"`
}
