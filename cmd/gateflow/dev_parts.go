package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/gateflow/gateflow/cmd/gateflow/internal/partgroup"
	"github.com/gateflow/gateflow/deploy/examples"
	"github.com/gateflow/gateflow/ingress/auth"
)

// devEnv is what `gateflow dev` started, for the app parts to connect to.
type devEnv struct {
	// DataDir is dev's state dir (absolute); LogDir holds its log files.
	DataDir string
	LogDir  string
	// TemporalHostPort and TemporalNamespace locate the embedded Temporal.
	TemporalHostPort  string
	TemporalNamespace string
	// TemporalUI is the embedded Temporal Web UI's URL ("" when off); the
	// console's run pages link to it.
	TemporalUI string
	// KafkaBrokers, KafkaTopic and KafkaDLQTopic locate the embedded broker
	// and the topics dev created.
	KafkaBrokers  []string
	KafkaTopic    string
	KafkaDLQTopic string
	// ClickHouseDSN is "" when ClickHouse is not available (records then
	// wait in Kafka).
	ClickHouseDSN string
	// IngressAddr is where the ingress listens (127.0.0.1:8080).
	IngressAddr string
	// DemoServices starts the demo services on DemoPortBase (dev_demo.go).
	DemoServices bool
	DemoPortBase int
	// PayloadKeyFile, when set, encrypts payloads; the dev tenant's admins
	// may then use the codec endpoint, from the Web UI at UIURL too.
	PayloadKeyFile string
	UIURL          string
	// Log writes to LogDir/gateflow.log (warnings also to the terminal).
	Log *slog.Logger
	// Out is where a newly created dev key is printed (the terminal).
	Out io.Writer

	parts *partgroup.Group
}

// Go runs a part (e.g. runWorker) until dev stops: fn gets a context that
// dev cancels before it stops Temporal, Kafka and ClickHouse, and dev waits
// for fn to return. A part that returns early makes dev shut down.
func (e devEnv) Go(name string, fn func(ctx context.Context) error) { e.parts.Go(name, fn) }

// AddSummary adds a line (e.g. the dev API key) to the summary dev prints
// once ready.
func (e devEnv) AddSummary(label, value string) { e.parts.AddSummary(label, value) }

// flagDefaults returns a config holding its flags' defaults, so that dev
// starts from exactly what the standalone subcommand would use.
func flagDefaults[T any](bind func(*T, *pflag.FlagSet)) T {
	var c T
	bind(&c, pflag.NewFlagSet("defaults", pflag.ContinueOnError))
	return c
}

// devIngressReadyTimeout bounds the wait for the ingress to listen.
const devIngressReadyTimeout = 30 * time.Second

// startAppParts starts the worker, the analytics sink and the ingress in the
// dev process, through the same runX functions as their subcommands, each
// with env.Go. It returns once the ingress listens.
func startAppParts(ctx context.Context, env devEnv) error {
	configDir := filepath.Join(env.DataDir, "config")
	seeded, err := examples.Seed(configDir)
	if err != nil {
		return err
	}
	if seeded {
		env.Log.Info("seeded the config dir from the examples", "dir", configDir)
		if err := pointCallbacksAt(configDir, env.IngressAddr); err != nil {
			return err
		}
	}
	if env.DemoServices {
		if err := startDemo(ctx, env, configDir, seeded); err != nil {
			return err
		}
	}
	out := env.Out
	if out == nil {
		out = os.Stdout
	}
	devKey, _, err := auth.SetupDevKey(env.DataDir, os.Getenv("GATEFLOW_DEV_KEY"), out)
	if err != nil {
		return fmt.Errorf("dev API key: %w", err)
	}
	if err := setupDevEventSecrets(env.DataDir); err != nil {
		return err
	}

	temporal := flagDefaults((*temporalConfig).bind)
	temporal.HostPort = env.TemporalHostPort
	temporal.Namespace = env.TemporalNamespace
	temporal.PayloadKeyFile = env.PayloadKeyFile
	kafka := flagDefaults((*kafkaConfig).bind)
	kafka.Brokers = env.KafkaBrokers
	kafka.Topic = env.KafkaTopic
	kafka.DLQTopic = env.KafkaDLQTopic

	wcfg := flagDefaults((*workerConfig).bind)
	wcfg.Temporal, wcfg.Kafka = temporal, kafka
	wcfg.ConfigDir = configDir
	wcfg.ReloadInterval = devReloadInterval
	wcfg.SpoolDir = filepath.Join(env.DataDir, "spool", "worker")
	wcfg.MetricsListen = "" // one process: the ingress serves dev's probes and /metrics
	if env.ClickHouseDSN != "" {
		wcfg.ClickHouse.DSN = env.ClickHouseDSN
	}

	icfg := defaultIngressConfig()
	icfg.Temporal, icfg.Kafka = temporal, kafka
	icfg.Listen = env.IngressAddr
	icfg.ConfigDir = configDir
	icfg.ReloadInterval = devReloadInterval
	icfg.KeysFile = filepath.Join(configDir, "keys.yaml")
	icfg.SpoolDir = filepath.Join(env.DataDir, "spool", "ingress")
	icfg.ExtraKeys = []auth.Key{devKey}
	icfg.GatewayUnownedTenant = auth.DevTenant
	if env.PayloadKeyFile != "" {
		icfg.CodecTenant, icfg.CodecUIOrigin = auth.DevTenant, env.UIURL
	}
	icfg.Console.TemporalUI = env.TemporalUI
	if icfg.Console.SecretFile, err = devConsoleSecret(env.DataDir); err != nil {
		return err
	}
	if env.ClickHouseDSN != "" {
		icfg.ClickHouse.DSN = env.ClickHouseDSN
	}
	// One registry for the process, served by the ingress: its own
	// metrics, the worker's (process="worker") and the Temporal SDK's.
	metrics := newProcessRegistry()
	icfg.Metrics, wcfg.Metrics = metrics, metrics
	listening := make(chan string, 1)
	icfg.OnListen = func(addr string) { listening <- addr }

	scfg := flagDefaults((*sinkConfig).bind)
	scfg.Kafka = kafka
	scfg.ClickHouse.DSN = env.ClickHouseDSN
	scfg.MetricsListen = "" // the ingress serves dev's /metrics and /readyz

	for _, v := range []interface{ validate() error }{wcfg, icfg} {
		if err := v.validate(); err != nil {
			return err
		}
	}
	env.Go("worker", func(ctx context.Context) error { return runWorker(ctx, wcfg, env.Log.With("part", "worker")) })
	if env.ClickHouseDSN != "" {
		if err := scfg.validate(); err != nil {
			return err
		}
		env.Go("sink", func(ctx context.Context) error { return runSink(ctx, scfg, env.Log.With("part", "sink")) })
	}
	env.Go("ingress", func(ctx context.Context) error { return runIngress(ctx, icfg, env.Log.With("part", "ingress")) })

	select {
	case addr := <-listening:
		env.AddSummary("OpenAPI", "http://"+addr+"/v1/openapi.json")
		env.AddSummary("Ready check", "http://"+addr+"/readyz")
		env.AddSummary("MCP", "http://"+addr+"/mcp")
	case <-env.parts.Failed():
		return env.parts.Err()
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(devIngressReadyTimeout):
		return errors.New("the ingress did not start listening within 30s; see the log")
	}
	env.AddSummary(devEventsSummary())
	env.AddSummary("Config dir", configDir+" (edits apply within a second)")
	env.AddSummary("API key", "tenant dev, every role; in "+filepath.Join(env.DataDir, auth.DevKeyFile)+" (the CLI reads it)")
	return nil
}

// devReloadInterval: in dev, an edit of the config dir or the keys file
// applies within a second or two, without SIGHUP.
const devReloadInterval = time.Second
