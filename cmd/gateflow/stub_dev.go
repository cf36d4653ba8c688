package main

// Stub: replaced by the file that owns this subcommand.

import (
	"errors"

	"github.com/spf13/cobra"
)

func newDevCmd() *cobra.Command {
	return &cobra.Command{Use: "dev", RunE: func(*cobra.Command, []string) error { return errors.New("not implemented yet") }}
}

func newClickHouseChildCmd() *cobra.Command {
	return &cobra.Command{Use: "clickhouse-child", Hidden: true, RunE: func(*cobra.Command, []string) error { return errors.New("not implemented yet") }}
}

var _ = errors.New
