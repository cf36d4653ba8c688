package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gateflow/gateflow/deploy/embedded"
)

func newDevCmd() *cobra.Command {
	return &cobra.Command{Use: "dev", RunE: func(*cobra.Command, []string) error { return errors.New("not implemented yet") }}
}

// newClickHouseChildCmd is the hidden subcommand that `gateflow dev` starts
// as its ClickHouse child process: it loads libchdb and serves the native
// and HTTP protocols on 127.0.0.1 until it is signalled.
func newClickHouseChildCmd() *cobra.Command {
	var args embedded.CHDBChildArgs
	cmd := &cobra.Command{
		Use:    "clickhouse-child --lib PATH --path DIR --tcp-port N --http-port N",
		Short:  "Serve ClickHouse from libchdb (started by gateflow dev)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := embedded.RunCHDBChild(cmd.Context(), args); err != nil {
				return fmt.Errorf("clickhouse-child: %w", err)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&args.LibPath, "lib", "", "path of libchdb.so")
	fs.StringVar(&args.DataDir, "path", "", "ClickHouse data dir")
	fs.IntVar(&args.TCPPort, "tcp-port", 9000, "native protocol port on 127.0.0.1")
	fs.IntVar(&args.HTTPPort, "http-port", 8123, "HTTP port on 127.0.0.1")
	return cmd
}
