package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gateflow/gateflow/deploy/embedded/demo"
)

// demoPortFlags names what moves or turns off the demo services, for the
// "port in use" errors.
const demoPortFlags = "--demo-port-base (or --demo-services=false to turn the demo services off)"

// startDemo starts the canned demo services the example definitions call
// (deploy/embedded/demo) and stops them with the other app parts. A config
// dir seeded just now is pointed at --demo-port-base when it is not the
// default; the example payments service's ${env:PAYMENTS_TOKEN} gets a
// demo value when the variable is unset.
func startDemo(ctx context.Context, env devEnv, configDir string, seeded bool) error {
	ports := demo.PortsAt(env.DemoPortBase)
	if seeded && env.DemoPortBase != demo.DefaultPortBase {
		if err := demo.RewriteConfigPorts(configDir, ports); err != nil {
			return err
		}
	}
	if _, ok := os.LookupEnv(demo.PaymentsTokenEnv); !ok {
		// Read at call time by the worker in this process (secret
		// references are resolved per call).
		if err := os.Setenv(demo.PaymentsTokenEnv, demo.DemoPaymentsToken); err != nil {
			return fmt.Errorf("demo services: %w", err)
		}
	}
	d, err := demo.Start(ctx, demo.Options{
		Ports:    ports,
		Logger:   env.Log.With("part", "demo"),
		PortHint: "choose other ports with " + demoPortFlags,
	})
	if err != nil {
		return err
	}
	if !seeded && env.DemoPortBase != demo.DefaultPortBase {
		// The config dir was seeded by an earlier run: it may still point
		// at other ports.
		if b, err := os.ReadFile(filepath.Join(configDir, "gateflow.yaml")); err == nil && !bytes.Contains(b, []byte(d.Addr(demo.Echo))) {
			env.Log.Warn("the config dir does not name the demo services on --demo-port-base (it was seeded by an earlier run): edit its gateflow.yaml or use a new --data-dir",
				"config", configDir, "demo_port_base", env.DemoPortBase)
		}
	}
	env.Go("demo", func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return d.Close()
		case err := <-d.Failed():
			_ = d.Close()
			return err
		}
	})
	var names []string
	for _, p := range ports.List() {
		if p.Name != demo.Model {
			names = append(names, p.Name+" :"+strconv.Itoa(p.Port))
		}
	}
	env.AddSummary("Demo services", strings.Join(names, ", ")+" (canned stand-ins; --demo-services=false turns them off)")
	env.AddSummary("Demo model", d.URL(demo.Model)+" (model demo/echo; alias default = local/llama3.2, then demo/echo)")
	return nil
}
