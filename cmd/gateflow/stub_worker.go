package main

// Stub: replaced by the file that owns this subcommand.

import (
	"errors"

	"github.com/spf13/cobra"
)

func newWorkerCmd() *cobra.Command {
	return &cobra.Command{Use: "worker", RunE: func(*cobra.Command, []string) error { return errors.New("not implemented yet") }}
}

var _ = errors.New
