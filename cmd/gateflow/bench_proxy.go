package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/deploy/embedded"
	"github.com/gateflow/gateflow/ingress"
	"github.com/gateflow/gateflow/ingress/auth"
	"github.com/gateflow/gateflow/ingress/proxy"
	"github.com/gateflow/gateflow/ingress/proxyapi"
	"github.com/gateflow/gateflow/ingress/ratelimit"
	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/orchestrator"
)

// benchProxyConfig drives `gateflow ingress bench-proxy` (hidden): one of
// the three processes the gateway benchmark compares under the same load
// (deploy/bench/gateway.sh runs them with loadcmp and wrk):
//
//	upstream  the local upstream (two ports, so the gateway balances over
//	          two instances) and a Kafka-protocol broker for the records
//	bare      net/http/httputil.ReverseProxy with a tuned transport
//	gateway   the real ingress with the gateway mounted: API key check,
//	          owner access, key and tenant rate limits and a per-API limit
//	          (all high enough never to refuse), round robin over two
//	          instances, proxy call records through the real producer,
//	          JSON access log (to --log-file)
type benchProxyConfig struct {
	Role     string
	Listen   string
	Listen2  string
	Upstream []string
	Kafka    string
	KafkaDir string
	LogFile  string
	CPUProf  string
	// Records is the gateway's record log (--records-durable): the
	// benchmark runs the gateway both ways to price the durable log.
	Records recordLogConfig
}

// benchProxyToken is the API key of the gateway role (tenant bench).
const benchProxyToken = "gf_b3c400000001_benchsecretbenchsecretbenchsecret0"

func newBenchProxyCmd() *cobra.Command {
	var cfg benchProxyConfig
	cmd := &cobra.Command{
		Use:    "bench-proxy",
		Short:  "Run one process of the gateway benchmark (upstream, bare or gateway); see deploy/bench/gateway.sh",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if cfg.CPUProf != "" {
				f, err := os.Create(cfg.CPUProf)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			switch cfg.Role {
			case "upstream":
				return runBenchUpstream(ctx, cfg)
			case "bare":
				return runBenchBare(ctx, cfg)
			case "gateway":
				return runBenchGateway(ctx, cfg)
			}
			return fmt.Errorf("--role %q: want upstream, bare or gateway", cfg.Role)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&cfg.Role, "role", "", "upstream, bare or gateway")
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:27181", "listen address")
	fs.StringVar(&cfg.Listen2, "listen2", "127.0.0.1:27183", "upstream: second instance's address")
	fs.StringSliceVar(&cfg.Upstream, "upstream", []string{"http://127.0.0.1:27181"}, "bare and gateway: upstream instance URLs")
	fs.StringVar(&cfg.Kafka, "kafka", "127.0.0.1:27192", "upstream: broker address to serve; gateway: broker to send records to")
	fs.StringVar(&cfg.KafkaDir, "kafka-dir", "", "upstream: the broker's data dir (default: a temporary dir)")
	fs.StringVar(&cfg.LogFile, "log-file", os.DevNull, "gateway: where the JSON access log goes")
	fs.StringVar(&cfg.CPUProf, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	cfg.Records.bind(fs)
	return cmd
}

// benchBody is the upstream's answer: a small JSON document.
const benchBody = `{"id":42,"name":"widget","price":9.99,"tags":["a","b","c"],"in_stock":true}` + "\n"

func runBenchUpstream(ctx context.Context, cfg benchProxyConfig) error {
	dir := cfg.KafkaDir
	if dir == "" {
		d, err := os.MkdirTemp("", "gateflow-bench-kafka-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	_, port, err := net.SplitHostPort(cfg.Kafka)
	if err != nil {
		return err
	}
	var p int
	fmt.Sscan(port, &p)
	k, err := embedded.StartKafka(embedded.KafkaOptions{DataDir: dir, Port: p,
		Topics: []embedded.Topic{{Name: "gateflow.calls", Partitions: 6, Retention: time.Hour}}})
	if err != nil {
		return err
	}
	defer k.Close()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		if strings.Contains(r.URL.Path, "cached") {
			w.Header().Set("Cache-Control", "max-age=3600")
		}
		_, _ = io.WriteString(w, benchBody)
	})
	errc := make(chan error, 2)
	var servers []*http.Server
	for _, addr := range []string{cfg.Listen, cfg.Listen2} {
		srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
		servers = append(servers, srv)
		go func() { errc <- srv.ListenAndServe() }()
	}
	fmt.Fprintf(os.Stderr, "bench upstream on %s and %s, broker on %s\n", cfg.Listen, cfg.Listen2, cfg.Kafka)
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	for _, s := range servers {
		_ = s.Close()
	}
	return nil
}

// benchTransport is the tuned transport of the bare proxy: the same
// connection reuse the gateway's transport has.
func benchTransport() *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
}

func runBenchBare(ctx context.Context, cfg benchProxyConfig) error {
	target, err := url.Parse(cfg.Upstream[0])
	if err != nil {
		return err
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = benchTransport()
	srv := &http.Server{Addr: cfg.Listen, Handler: rp, ReadHeaderTimeout: 5 * time.Second}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	fmt.Fprintf(os.Stderr, "bare httputil.ReverseProxy on %s -> %s\n", cfg.Listen, target)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func runBenchGateway(ctx context.Context, cfg benchProxyConfig) error {
	logOut, err := os.OpenFile(cfg.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logOut.Close()
	log := slog.New(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var instances []sysconfig.Instance
	for _, u := range cfg.Upstream {
		instances = append(instances, sysconfig.Instance{BaseURL: u})
	}
	reg, err := sysconfig.NewStatic(sysconfig.Config{Services: map[string]sysconfig.Service{
		"bench": {Owner: "bench", Instances: instances, GatewayRateLimit: sysconfig.RateLimit{RPS: 1e7, Burst: 1e7}},
		"benchcache": {Owner: "bench", Instances: instances, GatewayRateLimit: sysconfig.RateLimit{RPS: 1e7, Burst: 1e7},
			Cache: sysconfig.Cache{Enabled: true, MaxTTL: "1h"}},
	}})
	if err != nil {
		return err
	}
	keys, err := auth.NewStore("", auth.EntryFor(benchProxyToken, "bench", []string{"submitter"}, ""))
	if err != nil {
		return err
	}
	metrics := newProcessRegistry()
	kc := kafkaConfig{Brokers: []string{cfg.Kafka}, Topic: "gateflow.calls"}
	transport, err := kc.transport()
	if err != nil {
		return err
	}
	spool, err := os.MkdirTemp("", "gateflow-bench-spool-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(spool)
	prod, closeProducer, err := openProducer(kc, transport, spool, cfg.Records, metrics, log)
	if err != nil {
		return err
	}
	defer closeProducer()
	srv, err := ingress.New(ingress.Deps{Orchestrator: noOrchestrator{}, Keys: keys, Recorder: prod, Metrics: metrics, Log: log},
		ingress.Config{Addr: cfg.Listen, KeyLimit: ratelimit.Limit{RPS: 1e7, Burst: 1e7}, TenantLimit: ratelimit.Limit{RPS: 1e7, Burst: 1e7}})
	if err != nil {
		return err
	}
	gw, err := proxy.New(proxy.Options{Access: proxy.OwnerAccess{Config: reg}, Config: reg, WriteError: proxyapi.WriteError,
		Recorder: prod, Registerer: metrics, PathPrefix: proxyapi.Prefix, Log: log})
	if err != nil {
		return err
	}
	defer gw.Close()
	gw.Warm()
	if err := srv.Mount(proxyapi.Routes(gw)); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "gateway on %s -> %v (key %s)\n", cfg.Listen, cfg.Upstream, benchProxyToken)
	return srv.Run(ctx)
}

// noOrchestrator answers nothing: the benchmark calls only the gateway.
type noOrchestrator struct{}

var errBenchNoOrch = errors.New("no orchestrations in the gateway benchmark")

func (noOrchestrator) Start(context.Context, orchestrator.Caller, orchestrator.StartRequest) (orchestrator.StartResult, error) {
	return orchestrator.StartResult{}, errBenchNoOrch
}
func (noOrchestrator) Status(context.Context, orchestrator.Caller, string) (orchestrator.Status, error) {
	return orchestrator.Status{}, errBenchNoOrch
}
func (noOrchestrator) List(context.Context, orchestrator.Caller, orchestrator.ListFilter) (orchestrator.Page, error) {
	return orchestrator.Page{}, errBenchNoOrch
}
func (noOrchestrator) Watch(context.Context, orchestrator.Caller, string) (<-chan orchestrator.Update, error) {
	return nil, errBenchNoOrch
}
func (noOrchestrator) Cancel(context.Context, orchestrator.Caller, string) error {
	return errBenchNoOrch
}
func (noOrchestrator) Decide(context.Context, orchestrator.Caller, string, orchestrator.DecideRequest) (workflows.DecisionResult, error) {
	return workflows.DecisionResult{}, errBenchNoOrch
}
func (noOrchestrator) PendingApprovals(context.Context, orchestrator.Caller) (orchestrator.Approvals, error) {
	return orchestrator.Approvals{}, errBenchNoOrch
}
func (noOrchestrator) ListDefinitions(context.Context, orchestrator.Caller) ([]orchestrator.DefinitionInfo, error) {
	return nil, errBenchNoOrch
}
func (noOrchestrator) GetDefinition(context.Context, orchestrator.Caller, string, string) (definition.Definition, error) {
	return definition.Definition{}, errBenchNoOrch
}
func (noOrchestrator) PublishDefinition(context.Context, orchestrator.Caller, string, string, definition.Definition) (orchestrator.DefinitionInfo, error) {
	return orchestrator.DefinitionInfo{}, errBenchNoOrch
}
func (noOrchestrator) Input(context.Context, orchestrator.Caller, string) (orchestrator.RunInput, error) {
	return orchestrator.RunInput{}, errBenchNoOrch
}
