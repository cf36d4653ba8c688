package main

// Stub: replaced by the file that owns this subcommand.

import (
	"errors"

	"github.com/spf13/cobra"
)

func newIngressCmd() *cobra.Command {
	return &cobra.Command{Use: "ingress", RunE: func(*cobra.Command, []string) error { return errors.New("not implemented yet") }}
}

func newKeysCmd() *cobra.Command {
	return &cobra.Command{Use: "keys", RunE: func(*cobra.Command, []string) error { return errors.New("not implemented yet") }}
}

func newAPICmds() []*cobra.Command { return nil }

var _ = errors.New
