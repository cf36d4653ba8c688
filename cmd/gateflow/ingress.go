package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/gateflow/gateflow/activities/llm/prompt"
	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/analytics/query"
	"github.com/gateflow/gateflow/analytics/schema"
	"github.com/gateflow/gateflow/ingress"
	"github.com/gateflow/gateflow/ingress/analyticsapi"
	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/auth"
	"github.com/gateflow/gateflow/ingress/catalogapi"
	"github.com/gateflow/gateflow/ingress/chatapi"
	"github.com/gateflow/gateflow/ingress/keysapi"
	"github.com/gateflow/gateflow/ingress/mcpserver"
	"github.com/gateflow/gateflow/ingress/promptapi"
	"github.com/gateflow/gateflow/ingress/proxy"
	"github.com/gateflow/gateflow/ingress/proxyapi"
	"github.com/gateflow/gateflow/ingress/ratelimit"
	"github.com/gateflow/gateflow/workflows/catalog"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/orchestrator"
	"github.com/gateflow/gateflow/workflows/payloadcodec"
	"github.com/gateflow/gateflow/workflows/registry"
)

// defaultKeysFile is where API key hashes live unless --keys-file says
// otherwise (beside gateflow.yaml in the default config dir).
const defaultKeysFile = "config/keys.yaml"

// ingressConfig configures `gateflow ingress`: the REST API server.
type ingressConfig struct {
	Temporal   temporalConfig
	Kafka      kafkaConfig
	ClickHouse clickhouseConfig
	// Replication names the compacted topics of the catalogue and the
	// API-created keys.
	Replication replicationConfig
	// Quota tunes the plan quotas of the catalogue.
	Quota quotaConfig
	// Listen is the HTTP listen address.
	Listen string
	// KeysFile holds the API key hashes; reloaded on SIGHUP.
	KeysFile string
	// ConfigDir holds gateflow.yaml (tenants with their rate limits and
	// permissions) and definitions/*.yaml; reloaded on SIGHUP and, like
	// KeysFile, when its files change (polled every ReloadInterval).
	ConfigDir      string
	ReloadInterval time.Duration
	// SpoolDir is where call records wait while Kafka is unreachable.
	SpoolDir string
	// Records says how call records are kept until Kafka has them.
	Records recordLogConfig
	// Limits and timeouts of the HTTP server.
	MaxBodyBytes    int64
	MaxJSONDepth    int
	ReadTimeout     time.Duration
	WriteTimeout    time.Duration
	IdleTimeout     time.Duration
	RequestTimeout  time.Duration
	ShutdownTimeout time.Duration
	// GatewayCacheBytes bounds the gateway's answer cache (per replica).
	GatewayCacheBytes int64
	// Bounds of long-lived responses (SSE, streamed completions, MCP); 0
	// lifts a bound.
	MaxStreamsPerKey    int
	MaxStreamsPerTenant int
	MaxStreamAge        time.Duration
	StreamWriteTimeout  time.Duration
	// AdminListen serves /metrics (and /healthz) on a separate listener,
	// and takes /metrics off the API's; empty: /metrics stays on the API
	// listener.
	AdminListen string
	// CodecTenant is the operators' tenant, whose admin keys may use the
	// codec endpoint (mounted only with it and --payload-key-file);
	// CodecUIOrigin is the Temporal Web UI's origin allowed by CORS.
	CodecTenant   string
	CodecUIOrigin string
	// Console configures the web console at /console.
	Console consoleConfig

	// Set by code, not flags (gateflow dev):
	// ExtraKeys are accepted besides the keys file (the dev key).
	ExtraKeys []auth.Key
	// Groups are more route groups to mount (analytics, chat completions,
	// prompt APIs, MCP).
	Groups []api.Group
	// Metrics is the registry served at /metrics; nil makes one.
	Metrics *prometheus.Registry
	// Ready are more readiness checks.
	Ready []ingress.ReadyCheck
	// OnListen is called with the bound address once the server listens.
	OnListen func(addr string)
	// QuotaClock is the clock of the catalogue's plan quotas (nil:
	// time.Now); tests move it to the next day.
	QuotaClock func() time.Time
	// GatewayUnownedTenant may call services without an owner through
	// the gateway (gateflow dev: its tenant "dev"; else nobody).
	GatewayUnownedTenant string
	// OnAdminListen is called with the admin listener's bound address.
	OnAdminListen func(addr string)
}

func (c *ingressConfig) bind(fs *pflag.FlagSet) {
	d := ingress.DefaultConfig()
	c.Temporal.bind(fs)
	c.Kafka.bind(fs)
	c.ClickHouse.bind(fs)
	c.Replication.bind(fs)
	c.Quota.bind(fs)
	fs.StringVar(&c.Listen, "listen", d.Addr, "HTTP listen address of the API")
	fs.StringVar(&c.KeysFile, "keys-file", defaultKeysFile, "API keys file (hashes only; `gateflow keys create` adds keys); reloaded on SIGHUP or change")
	fs.StringVar(&c.ConfigDir, "config-dir", "config", "configuration directory (gateflow.yaml, definitions/*.yaml); reloaded on SIGHUP or change")
	bindReloadInterval(fs, &c.ReloadInterval)
	fs.StringVar(&c.SpoolDir, "spool-dir", ".gateflow/spool/ingress", "directory of the local call-record log (records wait there until Kafka has them)")
	c.Records.bind(fs)
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", d.MaxBodyBytes, "largest request body accepted (413 beyond)")
	fs.IntVar(&c.MaxJSONDepth, "max-json-depth", d.MaxJSONDepth, "deepest JSON nesting accepted in request bodies")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", d.ReadTimeout, "timeout to read a whole request")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", d.WriteTimeout, "timeout to write a response (not for event streams)")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", d.IdleTimeout, "how long an idle keep-alive connection stays open")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", d.RequestTimeout, "deadline of the work behind one request (not for event streams)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", d.ShutdownTimeout, "how long in-flight requests may finish on shutdown")
	fs.Int64Var(&c.GatewayCacheBytes, "gateway-cache-bytes", proxy.DefaultCacheBytes, "bytes of answers the gateway (/gw) may cache in this process")
	fs.IntVar(&c.MaxStreamsPerKey, "max-streams-per-key", d.StreamsPerKey, "long-lived responses (event streams, streamed chat completions, MCP requests) one API key may hold open (429 beyond; 0: no cap)")
	fs.IntVar(&c.MaxStreamsPerTenant, "max-streams-per-tenant", d.StreamsPerTenant, "long-lived responses all keys of a tenant may hold open (429 beyond; 0: no cap)")
	fs.DurationVar(&c.MaxStreamAge, "max-stream-age", d.MaxStreamAge, "longest life of a long-lived response; it then ends with a shutdown event and clients reconnect (0: no bound)")
	fs.DurationVar(&c.StreamWriteTimeout, "stream-write-timeout", d.StreamWriteTimeout, "longest a write of one event may block before the stream is cut (a client that stopped reading; 0: no bound)")
	fs.StringVar(&c.AdminListen, "admin-listen", "", "address of an admin listener serving /metrics and /healthz; /metrics then leaves the API listener (empty: /metrics on --listen)")
	fs.StringVar(&c.CodecTenant, "codec-tenant", "", "tenant whose admin keys may use the codec endpoint /codec/{decode,encode} (needs --payload-key-file; empty: no endpoint)")
	fs.StringVar(&c.CodecUIOrigin, "codec-ui-origin", "", "origin of the Temporal Web UI allowed to call the codec endpoint from a browser (CORS)")
	c.Console.bind(fs)
}

// defaultIngressConfig returns the flag defaults, for callers that build
// the config in code (gateflow dev) and then change what they need.
func defaultIngressConfig() ingressConfig {
	var c ingressConfig
	c.bind(pflag.NewFlagSet("ingress-defaults", pflag.ContinueOnError))
	return c
}

func (c ingressConfig) validate() error {
	errs := []error{c.Temporal.validate(), c.Kafka.validate(), c.ClickHouse.validate(), c.validateCodec(), c.Replication.validate(), c.Quota.validate()}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("--listen %q: want host:port", c.Listen))
	}
	if c.AdminListen != "" {
		if _, _, err := net.SplitHostPort(c.AdminListen); err != nil {
			errs = append(errs, fmt.Errorf("--admin-listen %q: want host:port or empty", c.AdminListen))
		}
	}
	if c.ConfigDir == "" {
		errs = append(errs, errors.New("--config-dir: must not be empty"))
	}
	errs = append(errs, validateReloadInterval(c.ReloadInterval))
	if c.SpoolDir == "" {
		errs = append(errs, errors.New("--spool-dir: must not be empty"))
	}
	errs = append(errs, c.Records.validate())
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("--max-body-bytes %d: must be at least 1024", c.MaxBodyBytes))
	}
	if c.GatewayCacheBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("--gateway-cache-bytes %d: must be at least 1 MiB", c.GatewayCacheBytes))
	}
	if c.MaxJSONDepth < 2 || c.MaxJSONDepth > 1000 {
		errs = append(errs, fmt.Errorf("--max-json-depth %d: must be between 2 and 1000", c.MaxJSONDepth))
	}
	errs = append(errs, c.Console.validate())
	for name, n := range map[string]int64{"max-streams-per-key": int64(c.MaxStreamsPerKey), "max-streams-per-tenant": int64(c.MaxStreamsPerTenant),
		"max-stream-age": int64(c.MaxStreamAge), "stream-write-timeout": int64(c.StreamWriteTimeout)} {
		if n < 0 {
			errs = append(errs, fmt.Errorf("--%s: must not be negative (0 lifts the bound)", name))
		}
	}
	for name, d := range map[string]time.Duration{"read-timeout": c.ReadTimeout, "write-timeout": c.WriteTimeout,
		"idle-timeout": c.IdleTimeout, "request-timeout": c.RequestTimeout, "shutdown-timeout": c.ShutdownTimeout} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("--%s %s: must be positive", name, d))
		}
	}
	return errors.Join(errs...)
}

func newIngressCmd() *cobra.Command {
	cfg := defaultIngressConfig() // the flags below start from the same values
	var logCfg logConfig
	cmd := &cobra.Command{
		Use:   "ingress",
		Short: "Run the REST API: submit orchestrations, decide approvals, read status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.validate(); err != nil {
				return err
			}
			log, err := logCfg.logger()
			if err != nil {
				return err
			}
			return runIngress(cmd.Context(), cfg, log)
		},
	}
	cfg.bind(cmd.Flags())
	logCfg.bind(cmd.Flags())
	cmd.AddCommand(newBenchIngressCmd(), newBenchProxyCmd())
	return cmd
}

// runIngress serves the API until ctx is cancelled, then shuts down
// gracefully: event streams end, in-flight requests finish (up to
// ShutdownTimeout), queued call records go to Kafka (or the spool).
func runIngress(ctx context.Context, cfg ingressConfig, log *slog.Logger) error {
	keys, err := auth.NewStore(cfg.KeysFile, cfg.ExtraKeys...)
	if err != nil {
		return err
	}
	if keys.Len() == 0 {
		log.Warn("no API keys: every request will be refused; add one with `gateflow keys create`", "keys_file", cfg.KeysFile)
	}
	bgCtx, stopBg := context.WithCancel(ctx)
	defer stopBg()
	reg, err := watchConfigDir(bgCtx, cfg.ConfigDir, cfg.ReloadInterval, log, prompt.Extension())
	if err != nil {
		return err
	}
	metrics := cfg.Metrics
	if metrics == nil {
		metrics = newProcessRegistry()
	}
	keysHealth, err := newKeysHealth(keys, metrics)
	if err != nil {
		return err
	}
	go watchKeys(bgCtx, keys, cfg.KeysFile, cfg.ReloadInterval, keysHealth, log.With("component", "keys"))
	transport, err := cfg.Kafka.transport()
	if err != nil {
		return err
	}
	prod, closeProducer, err := openProducer(cfg.Kafka, transport, cfg.SpoolDir, cfg.Records,
		prometheus.WrapRegistererWith(prometheus.Labels{"process": "ingress"}, metrics), log)
	if err != nil {
		return err
	}
	defer closeProducer()

	tr, stopTracing, err := startTracing(ctx, &cfg.Temporal, "gateflow-ingress", log)
	if err != nil {
		return err
	}
	defer stopTracing()
	c, err := dialOrchestrations(ctx, cfg.Temporal, nil, log)
	if err != nil {
		return err
	}
	defer c.Close()
	ch, err := cfg.ClickHouse.open()
	if err != nil {
		return err
	}
	defer ch.Close()

	codec, err := cfg.Temporal.payloadCodec()
	if err != nil {
		return err
	}
	orch, err := newOrchestrator(c, reg, cfg.Temporal.TaskQueue, codec, log)
	if err != nil {
		return err
	}
	codecRoutes, err := codecGroups(cfg, codec)
	if err != nil {
		return err
	}
	// The model gateway: /v1/chat/completions, prompt APIs and MCP tools.
	analytics := query.New(ch)
	gw, err := newModelGateway(bgCtx, reg, analytics, prod, tr, log)
	if err != nil {
		return err
	}
	runner := prompt.NewRunner(gw, prompt.FromRegistry(reg), prompt.RunnerOptions{Log: log.With("component", "prompt-apis")})
	// The catalogue and the API-created keys, replicated to this replica.
	replicas, err := startReplicas(bgCtx, cfg.Replication, cfg.Kafka, transport, c, cfg.Temporal.TaskQueue, reg, orch,
		catalog.NewQuotas(analytics, cfg.QuotaClock, cfg.Quota.policy()), keys, log)
	if err != nil {
		return err
	}
	ready := append([]ingress.ReadyCheck{
		{Name: "temporal", Check: func(ctx context.Context) error {
			_, err := c.CheckHealth(ctx, &client.CheckHealthRequest{})
			return err
		}},
		{Name: "kafka", Optional: true, Check: func(ctx context.Context) error {
			return cfg.Kafka.reachable(ctx, transport)
		}},
		// Reachable and migrated: the analytics routes and the model
		// budgets read the rollups.
		{Name: "clickhouse", Optional: true, Check: func(ctx context.Context) error { return schema.TablesExist(ctx, ch) }},
		keysHealth.ready(),
	}, append(replicas.ready, cfg.Ready...)...)

	srv, err := ingress.New(ingress.Deps{
		Orchestrator: orch,
		Keys:         keys,
		TenantLimits: func(t string) (ratelimit.Limit, bool) {
			l := reg.Current().Tenant(t).RateLimit
			return ratelimit.Limit{RPS: l.RPS, Burst: l.Burst, Unlimited: l.Unlimited}, true
		},
		KeyLimits: func(t string) (ratelimit.Limit, bool) {
			l := reg.Current().Tenant(t).KeyRateLimit
			return ratelimit.Limit{RPS: l.RPS, Burst: l.Burst, Unlimited: l.Unlimited}, true
		},
		Recorder: prod,
		Metrics:  metrics,
		Ready:    ready,
		Log:      log.With("component", "ingress"),
		Tracing:  tr,
	}, ingress.Config{
		Addr:            cfg.Listen,
		ReadTimeout:     cfg.ReadTimeout,
		WriteTimeout:    cfg.WriteTimeout,
		IdleTimeout:     cfg.IdleTimeout,
		RequestTimeout:  cfg.RequestTimeout,
		ShutdownTimeout: cfg.ShutdownTimeout,
		MaxBodyBytes:    cfg.MaxBodyBytes,
		MaxJSONDepth:    cfg.MaxJSONDepth,
		// 0 on the command line lifts a bound; in ingress.Config it takes
		// the default.
		StreamsPerKey:      orNone(cfg.MaxStreamsPerKey),
		StreamsPerTenant:   orNone(cfg.MaxStreamsPerTenant),
		MaxStreamAge:       orNone(cfg.MaxStreamAge),
		StreamWriteTimeout: orNone(cfg.StreamWriteTimeout),
		NoMetricsRoute:     cfg.AdminListen != "",
	})
	if err != nil {
		return err
	}
	// The gateway data plane: /gw/{api}/{path...}: the catalogue's service
	// APIs, and each tenant's own services.
	gateway, err := proxy.New(proxy.Options{
		Access:     catalogapi.NewAccess(replicas.catalog, proxy.OwnerAccess{Config: reg, UnownedTenant: cfg.GatewayUnownedTenant}),
		Config:     reg,
		WriteError: proxyapi.WriteError,
		Recorder:   prod,
		Registerer: metrics,
		CacheBytes: cfg.GatewayCacheBytes,
		PathPrefix: proxyapi.Prefix,
		Log:        log.With("component", "gateway"),
	})
	if err != nil {
		return err
	}
	defer gateway.Close()
	gateway.Warm()
	groups := append([]api.Group{
		proxyapi.Routes(gateway),
		chatapi.Routes(gw, chatapi.Options{Log: log.With("component", "chat"), MaxJSONDepth: cfg.MaxJSONDepth}),
		promptapi.Routes(runner, promptapi.RoutesOptions{}),
		mcpserver.New(orch, runner, mcpserver.Options{Log: log.With("component", "mcp"), Catalog: replicas.catalog, MaxJSONDepth: cfg.MaxJSONDepth}).Routes(),
		analyticsapi.Routes(analytics, analyticsapi.Options{OwnedAPIs: ownedAPIs(replicas.catalog)}),
		catalogapi.Routes(replicas.catalog, catalogapi.Options{Runners: catalog.Runners{Orchestrations: orch, Prompts: runner, Models: gw}}),
		keysapi.Routes(keys, replicas.keys, log.With("component", "keys-api")),
		eventsRoutes(c, reg, cfg.Temporal.TaskQueue, orch, prod, log),
	}, append(codecRoutes, cfg.Groups...)...)
	if cfg.Console.Enabled {
		// The console calls the API through the server's own handler, as
		// the signed-in user's key.
		con, err := cfg.Console.build(srv.Handler(), cfg.Temporal.Namespace, log.With("component", "console"))
		if err != nil {
			return err
		}
		groups = append(groups, con.Routes())
	}
	for _, g := range groups {
		if err := srv.Mount(g); err != nil {
			return err
		}
	}
	if cfg.AdminListen != "" {
		stop, err := serveAdmin(cfg.AdminListen, srv.MetricsHandler(), cfg.OnAdminListen, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("ingress: listen on %s: %w (is another gateflow running? choose another --listen)", cfg.Listen, err)
	}
	if cfg.OnListen != nil {
		cfg.OnListen(ln.Addr().String())
	}
	return srv.Serve(ctx, ln)
}

// orNone maps a flag's 0 ("no bound") to ingress.Config's -1.
func orNone[T int | time.Duration](v T) T {
	if v == 0 {
		return -1
	}
	return v
}

// newOrchestrator wires the orchestrator to Temporal and the registry:
// definitions from the config dir and the tenant registry workflows,
// inline definitions where the tenant allows them, validation against the
// registry's services, models and MCP servers.
func newOrchestrator(c client.Client, reg *sysconfig.Registry, taskQueue string, codec *payloadcodec.Codec, log *slog.Logger) (*orchestrator.Orchestrator, error) {
	var dc converter.DataConverter // memo fields are read with the client's converter
	if codec != nil {
		dc = codec.DataConverter()
	}
	store := registry.NewStore(c, reg, log.With("component", "definitions"), registry.WithTaskQueue(taskQueue))
	return orchestrator.New(orchestrator.Options{
		Client:             c,
		TaskQueue:          taskQueue,
		Definitions:        orchestrator.RegistryDefinitions(store),
		Policies:           reg,
		ValidateDefinition: reg.ValidateFor,
		ValidateInput:      func(d *definition.Definition, in json.RawMessage) error { return d.ValidateInput(in) },
		ServiceDefaults:    reg.ServiceDefaults,
		RunLimits:          reg.RunLimits,
		Log:                log.With("component", "orchestrator"),
		DataConverter:      dc,
	})
}

// watchKeys reloads the keys file on every SIGHUP and when it changes
// (polled every interval; 0: signals only) until ctx ends. Invalid entries
// are skipped and reported (the rest, and every disabled entry, applies);
// a file that cannot be read keeps the previous keys.
func watchKeys(ctx context.Context, keys *auth.Store, path string, interval time.Duration, health *keysHealth, log *slog.Logger) {
	sysconfig.OnChange(ctx, interval, []string{path}, func(trigger string) {
		if err := keys.Reload(); err != nil {
			health.failures.Inc()
			if keys.LastReload().Applied {
				log.Error("keys reload skipped invalid entries; valid and disabled entries were applied", "file", path, "trigger", trigger,
					"invalid", keys.LastReload().Invalid, "keys", keys.Len(), "err", err)
			} else {
				log.Error("keys reload failed; keeping the previous keys", "file", path, "trigger", trigger, "err", err)
			}
			return
		}
		log.Info("keys reloaded", "file", path, "trigger", trigger, "keys", keys.Len())
	})
}

func newKeysCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage API keys (stored as hashes in the keys file)",
	}
	var keysFile, tenant, user, note string
	var roles []string
	var rps float64
	var burst int
	create := &cobra.Command{
		Use:   "create --tenant T --roles R[,R...] [--user U]",
		Short: "Create an API key: prints it once and stores only its hash",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if tenant == "" || len(roles) == 0 {
				return errors.New("--tenant and --roles are required")
			}
			for _, r := range roles {
				if !slices.Contains(auth.BuiltinRoles, auth.Role(r)) {
					fmt.Fprintf(cmd.ErrOrStderr(), "note: %q is not a built-in role (%s); approval steps may name it\n", r, builtinRoleList())
				}
			}
			token, err := auth.NewToken()
			if err != nil {
				return err
			}
			k := auth.EntryFor(token, tenant, roles, user)
			k.Created = time.Now().UTC().Truncate(time.Second)
			k.Note, k.RPS, k.Burst = note, rps, burst
			if err := auth.AddKey(keysFile, k); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "key %s added to %s (tenant %s, roles %s); a running ingress loads it within --reload-interval (or at once on SIGHUP).\n"+
				"It is shown only now:\n", k.ID, keysFile, tenant, strings.Join(roles, ","))
			fmt.Fprintln(cmd.OutOrStdout(), token)
			return nil
		},
	}
	create.Flags().StringVar(&keysFile, "keys-file", defaultKeysFile, "keys file to add the key's hash to (created with mode 0600)")
	create.Flags().StringVar(&tenant, "tenant", "", "tenant of the key")
	create.Flags().StringSliceVar(&roles, "roles", nil, "roles: submitter, approver, analyst, admin (or custom ones named by approval steps)")
	create.Flags().StringVar(&user, "user", "", "user name, used by approval steps that name users")
	create.Flags().StringVar(&note, "note", "", "free text for operators")
	create.Flags().Float64Var(&rps, "rps", 0, "per-key rate limit (requests/s) overriding the tenant's; 0 keeps the tenant's")
	create.Flags().IntVar(&burst, "burst", 0, "per-key burst with --rps")

	var listFile string
	list := &cobra.Command{
		Use:   "list",
		Short: "List the keys of the keys file (ids, tenants, roles; never secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := auth.ReadFile(listFile)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTENANT\tROLES\tUSER\tCREATED\tDISABLED")
			for _, k := range f.Keys {
				created := ""
				if !k.Created.IsZero() {
					created = k.Created.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\n", k.ID, k.Tenant, strings.Join(k.Roles, ","), k.User, created, k.Disabled)
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&listFile, "keys-file", defaultKeysFile, "keys file")
	cmd.AddCommand(create, list)
	return cmd
}

// builtinRoleList names the built-in roles for messages.
func builtinRoleList() string {
	names := make([]string, len(auth.BuiltinRoles))
	for i, r := range auth.BuiltinRoles {
		names[i] = string(r)
	}
	return strings.Join(names, ", ")
}
