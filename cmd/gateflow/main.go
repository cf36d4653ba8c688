// Command gateflow is the single binary of Gateflow: `gateflow dev` runs the
// whole system on one machine; `ingress`, `worker` and `sink` run each part
// against real clusters; the other subcommands are clients of the REST API.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "devel"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gateflow:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "gateflow",
		Short:         "Event-driven orchestration of microservices and AI models",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return applyEnv(cmd)
		},
	}
	root.AddCommand(
		newVersionCmd(),
		newDevCmd(),
		newIngressCmd(),
		newWorkerCmd(),
		newSinkCmd(),
		newTriggersCmd(),
		newClickHouseChildCmd(),
		newTemporalServerCmd(),
		newKafkaBrokerCmd(),
		newFaultRunCmd(),
	)
	root.AddCommand(newAPICmds()...)
	root.AddCommand(newKeysCmd(), newAnalyticsCmd())
	root.AddCommand(newSchedulesCmd(), newEventsCmd(), newProduceCmd())
	root.AddCommand(newCatalogCmd(), newSubscribeCmd(), newSubscriptionsCmd(), newAPIKeysCmd())
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "gateflow", version)
		},
	}
}
