package main

// Temporary stubs; each is replaced by the file that owns the subcommand.

import (
	"errors"

	"github.com/spf13/cobra"
)

func notYet(*cobra.Command, []string) error { return errors.New("not implemented yet") }

func newDevCmd() *cobra.Command       { return &cobra.Command{Use: "dev", RunE: notYet} }
func newIngressCmd() *cobra.Command   { return &cobra.Command{Use: "ingress", RunE: notYet} }
func newWorkerCmd() *cobra.Command    { return &cobra.Command{Use: "worker", RunE: notYet} }
func newSinkCmd() *cobra.Command      { return &cobra.Command{Use: "sink", RunE: notYet} }
func newKeysCmd() *cobra.Command      { return &cobra.Command{Use: "keys", RunE: notYet} }
func newAnalyticsCmd() *cobra.Command { return &cobra.Command{Use: "analytics", RunE: notYet} }
func newAPICmds() []*cobra.Command    { return nil }
func newClickHouseChildCmd() *cobra.Command {
	return &cobra.Command{Use: "clickhouse-child", Hidden: true, RunE: notYet}
}
