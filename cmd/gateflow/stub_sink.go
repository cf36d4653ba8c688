package main

// Stub: replaced by the file that owns this subcommand.

import (
	"errors"

	"github.com/spf13/cobra"
)

func newSinkCmd() *cobra.Command {
	return &cobra.Command{Use: "sink", RunE: func(*cobra.Command, []string) error { return errors.New("not implemented yet") }}
}

func newAnalyticsCmd() *cobra.Command {
	return &cobra.Command{Use: "analytics", RunE: func(*cobra.Command, []string) error { return errors.New("not implemented yet") }}
}

var _ = errors.New
