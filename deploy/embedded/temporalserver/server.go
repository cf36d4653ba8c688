// Package temporalserver runs a real Temporal server inside the process, on
// SQLite, for `gateflow dev` and for integration tests. It is kept apart
// from package embedded because importing go.temporal.io/server is costly to
// build (especially with -race); only what needs the server imports it.
package temporalserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/membership/static"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Options configures Start. Zero values get the defaults in brackets.
type Options struct {
	// DBPath is the SQLite file (WAL mode); created with its schema if
	// missing. Empty keeps everything in memory.
	DBPath string
	// Host all services bind to [127.0.0.1].
	Host string
	// FrontendPort is the gRPC port clients use [7233]. HistoryPort,
	// MatchingPort and WorkerPort are internal [FrontendPort+1, +2, +3].
	FrontendPort int
	HistoryPort  int
	MatchingPort int
	WorkerPort   int
	// FrontendHTTPPort serves Temporal's HTTP API [0: off].
	FrontendHTTPPort int
	// Namespace is created if missing ["default"].
	Namespace string
	// NamespaceRetention applies to a namespace created here [7 days].
	NamespaceRetention time.Duration
	// SearchAttributes are registered in Namespace if missing (custom
	// attributes map to SQLite visibility columns of the same type).
	SearchAttributes map[string]enumspb.IndexedValueType
	// UIPort serves the Temporal Web UI when > 0 (see ui.go).
	UIPort int
	// LogFile receives the server's own logs (JSON) when LogOutput is nil
	// [next to DBPath: temporal.log; discarded without DBPath].
	LogFile string
	// LogOutput, if set, receives the server's logs instead of LogFile.
	LogOutput io.Writer
	// LogLevel of the server's logs [info].
	LogLevel slog.Level
	// ReadyTimeout bounds the wait for the frontend and namespace [30s].
	ReadyTimeout time.Duration
	// DynamicConfig adds or overrides dynamic config values by key.
	DynamicConfig map[string]any
	// Logger receives lifecycle lines [discard].
	Logger *slog.Logger
}

// Server is a running embedded Temporal server.
type Server struct {
	opts    Options
	server  temporal.Server
	ui      *uiServer
	logFile *os.File
	// startDone is closed when server.Start returns, with startErr.
	startDone chan struct{}
	startErr  error
	stop      sync.Once
	stopErr   error
}

// Start builds, starts and waits for a Temporal server: the frontend
// answers health checks, the namespace exists and the search attributes are
// registered. Stop it with Stop.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	s := &Server{opts: opts}
	logOut := opts.LogOutput
	if logOut == nil {
		if opts.LogFile == "" {
			logOut = io.Discard
		} else {
			f, err := os.OpenFile(opts.LogFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
			if err != nil {
				return nil, fmt.Errorf("open Temporal log: %w", err)
			}
			s.logFile, logOut = f, f
		}
	}
	serverLog := newLogger(slog.New(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: opts.LogLevel})))

	began := time.Now()
	sqlCfg, err := opts.prepareDB()
	opts.Logger.Debug("temporal database prepared", "took", time.Since(began))
	if err != nil {
		s.closeLog()
		return nil, err
	}
	cfg := opts.serverConfig(sqlCfg)
	srv, err := temporal.NewServer(
		temporal.WithConfig(cfg),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(map[primitives.ServiceName]static.Hosts{
			primitives.FrontendService: static.SingleLocalHost(opts.addr(opts.FrontendPort)),
			primitives.HistoryService:  static.SingleLocalHost(opts.addr(opts.HistoryPort)),
			primitives.MatchingService: static.SingleLocalHost(opts.addr(opts.MatchingPort)),
			primitives.WorkerService:   static.SingleLocalHost(opts.addr(opts.WorkerPort)),
		}),
		temporal.WithLogger(serverLog),
		temporal.WithDynamicConfigClient(opts.dynamicConfig()),
	)
	if err != nil {
		s.closeLog()
		return nil, fmt.Errorf("build Temporal server: %w", err)
	}
	opts.Logger.Debug("temporal server built", "took", time.Since(began))
	// Start blocks until every service, including the internal system
	// worker, is up (~1.5 s more than the frontend needs). Clients only need
	// the frontend and the namespace, so readiness is polled meanwhile.
	s.server = srv
	s.startDone = make(chan struct{})
	go func() {
		defer close(s.startDone)
		s.startErr = srv.Start()
		opts.Logger.Debug("temporal server started", "took", time.Since(began), "err", s.startErr)
	}()
	if err := s.waitReady(ctx); err != nil {
		_ = s.Stop()
		return nil, err
	}
	opts.Logger.Debug("temporal server ready", "took", time.Since(began))
	if opts.UIPort > 0 {
		ui, err := startUI(opts.Host, opts.UIPort, s.FrontendAddr(), opts.Logger)
		if err != nil {
			_ = s.Stop()
			return nil, err
		}
		s.ui = ui
	}
	return s, nil
}

func (o *Options) setDefaults() error {
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.FrontendPort == 0 {
		o.FrontendPort = 7233
	}
	if o.HistoryPort == 0 {
		o.HistoryPort = o.FrontendPort + 1
	}
	if o.MatchingPort == 0 {
		o.MatchingPort = o.FrontendPort + 2
	}
	if o.WorkerPort == 0 {
		o.WorkerPort = o.FrontendPort + 3
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.NamespaceRetention == 0 {
		o.NamespaceRetention = 7 * 24 * time.Hour
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.DBPath != "" {
		abs, err := filepath.Abs(o.DBPath)
		if err != nil {
			return err
		}
		o.DBPath = abs
		if o.LogFile == "" {
			o.LogFile = filepath.Join(filepath.Dir(abs), "temporal.log")
		}
	}
	return nil
}

func (o Options) addr(port int) string {
	return net.JoinHostPort(o.Host, strconv.Itoa(port))
}

// sqlConfig is the persistence config of both stores. WAL lets readers run
// beside the writer (measured ~3x the throughput of the default journal).
func (o Options) sqlConfig() *config.SQL {
	if o.DBPath == "" {
		return &config.SQL{
			PluginName:        sqliteplugin.PluginName,
			DatabaseName:      "gateflow-" + strconv.FormatInt(time.Now().UnixNano(), 36),
			ConnectAttributes: map[string]string{"mode": "memory", "cache": "shared"},
		}
	}
	return &config.SQL{
		PluginName:   sqliteplugin.PluginName,
		DatabaseName: o.DBPath,
		ConnectAttributes: map[string]string{
			"mode": "rwc", "journal_mode": "wal", "synchronous": "normal",
		},
	}
}

// prepareDB creates the schema on a new file and the namespace if missing.
// The schema goes into a side file renamed into place when complete, so a
// crash during setup never leaves a half-made database behind.
func (o Options) prepareDB() (*config.SQL, error) {
	cfg := o.sqlConfig()
	if o.DBPath != "" {
		if _, err := os.Stat(o.DBPath); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(filepath.Dir(o.DBPath), 0o755); err != nil {
				return nil, fmt.Errorf("create Temporal data dir: %w", err)
			}
			tmp := o.DBPath + ".init"
			for _, p := range []string{tmp, tmp + "-wal", tmp + "-shm", tmp + "-journal"} {
				_ = os.Remove(p)
			}
			// No journal and no fsync per statement while the file is private;
			// one fsync before it is renamed into place.
			setup := &config.SQL{PluginName: sqliteplugin.PluginName, DatabaseName: tmp,
				ConnectAttributes: map[string]string{"mode": "rwc", "journal_mode": "memory", "synchronous": "off"}}
			if err := sqliteschema.SetupSchema(setup); err != nil {
				return nil, fmt.Errorf("create Temporal schema in %s: %w", tmp, err)
			}
			if err := fsyncFile(tmp); err != nil {
				return nil, fmt.Errorf("create Temporal schema: %w", err)
			}
			if err := os.Rename(tmp, o.DBPath); err != nil {
				return nil, fmt.Errorf("install Temporal database: %w", err)
			}
		} else if err != nil {
			return nil, fmt.Errorf("temporal database %s: %w", o.DBPath, err)
		}
	}
	// In memory, the sqlite plugin creates the schema itself.
	ns, err := sqliteschema.NewNamespaceConfig(clusterName, o.Namespace, false, o.SearchAttributes)
	if err != nil {
		return nil, fmt.Errorf("namespace %s: %w", o.Namespace, err)
	}
	ns.Detail.Config.Retention = durationpb.New(o.NamespaceRetention)
	if err := sqliteschema.CreateNamespaces(cfg, ns); err != nil {
		return nil, fmt.Errorf("create namespace %s: %w", o.Namespace, err)
	}
	return cfg, nil
}

func fsyncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

const clusterName = "active"

func (o Options) serverConfig(sqlCfg *config.SQL) *config.Config {
	const store = "sqlite-default"
	var cfg config.Config
	cfg.Global.Membership = config.Membership{MaxJoinDuration: 30 * time.Second, BroadcastAddress: o.Host}
	cfg.Persistence = config.Persistence{
		DefaultStore:     store,
		VisibilityStore:  store,
		NumHistoryShards: 1,
		DataStores:       map[string]config.DataStore{store: {SQL: sqlCfg}},
	}
	cfg.ClusterMetadata = &cluster.Config{
		EnableGlobalNamespace:    false,
		FailoverVersionIncrement: 10,
		MasterClusterName:        clusterName,
		CurrentClusterName:       clusterName,
		ClusterInformation: map[string]cluster.ClusterInformation{
			clusterName: {Enabled: true, InitialFailoverVersion: 1, RPCAddress: o.addr(o.FrontendPort)},
		},
	}
	cfg.DCRedirectionPolicy.Policy = "noop"
	svc := func(port int) config.Service {
		return config.Service{RPC: config.RPC{GRPCPort: port, BindOnIP: o.Host}}
	}
	frontend := svc(o.FrontendPort)
	frontend.RPC.HTTPPort = o.FrontendHTTPPort
	cfg.Services = map[string]config.Service{
		string(primitives.FrontendService): frontend,
		string(primitives.HistoryService):  svc(o.HistoryPort),
		string(primitives.MatchingService): svc(o.MatchingPort),
		string(primitives.WorkerService):   svc(o.WorkerPort),
	}
	cfg.Archival.History.State = "disabled"
	cfg.Archival.Visibility.State = "disabled"
	cfg.NamespaceDefaults.Archival.History.State = "disabled"
	cfg.NamespaceDefaults.Archival.Visibility.State = "disabled"
	cfg.PublicClient.HostPort = o.addr(o.FrontendPort)
	return &cfg
}

func (o Options) dynamicConfig() dynamicconfig.StaticClient {
	dc := dynamicconfig.StaticClient{
		// Timers and retry backoffs fire up to ~1 s late without this.
		dynamicconfig.TimerProcessorMaxTimeShift.Key(): 10 * time.Millisecond,
		// Search attributes usable right after registration.
		dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): true,
		// A dev machine runs many visibility queries (UI, status lists).
		dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key(): 100,
		// Orchestrations carry their tenant as fairness key: dispatch
		// each tenant's tasks in turn (docs/SECURITY.md, fairness).
		dynamicconfig.MatchingEnableFairness.Key(): true,
	}
	for k, v := range o.DynamicConfig {
		dc[dynamicconfig.MakeKey(k)] = v
	}
	return dc
}

// waitReady polls until the frontend is healthy and the namespace answers,
// then registers missing search attributes.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.ReadyTimeout)
	defer cancel()
	var (
		c       client.Client
		lastErr error
	)
	for c == nil {
		cl, err := client.DialContext(ctx, client.Options{
			HostPort:  s.FrontendAddr(),
			Namespace: s.opts.Namespace,
			Logger:    tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)),
		})
		if err == nil {
			c = cl
			break
		}
		lastErr = err
		select {
		case <-s.startDone:
			if s.startErr != nil {
				return fmt.Errorf("start Temporal server: %w", s.startErr)
			}
		default:
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("temporal frontend %s not ready after %s: %w", s.FrontendAddr(), s.opts.ReadyTimeout, lastErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
	defer c.Close()
	for {
		_, err := c.CheckHealth(ctx, &client.CheckHealthRequest{})
		if err == nil {
			_, err = c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: s.opts.Namespace})
		}
		if err == nil {
			break
		}
		lastErr = err
		select {
		case <-s.startDone:
			if s.startErr != nil {
				return fmt.Errorf("start Temporal server: %w", s.startErr)
			}
		default:
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("temporal namespace %s not ready after %s: %w", s.opts.Namespace, s.opts.ReadyTimeout, lastErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := EnsureSearchAttributes(ctx, c.OperatorService(), s.opts.Namespace, s.opts.SearchAttributes); err != nil {
		return err
	}
	return nil
}

// EnsureSearchAttributes registers the custom search attributes of attrs
// that namespace does not have yet. It is idempotent; an attribute that
// exists with another type is an error.
func EnsureSearchAttributes(ctx context.Context, ops operatorservice.OperatorServiceClient, namespace string, attrs map[string]enumspb.IndexedValueType) error {
	if len(attrs) == 0 {
		return nil
	}
	have, err := ops.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes of %s: %w", namespace, err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for name, typ := range attrs {
		got, ok := have.GetCustomAttributes()[name]
		if !ok {
			missing[name] = typ
			continue
		}
		if got != typ {
			return fmt.Errorf("search attribute %s exists in %s as %s, want %s", name, namespace, got, typ)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = ops.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: namespace, SearchAttributes: missing,
	})
	var exists *serviceerror.AlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("add search attributes to %s: %w", namespace, err)
	}
	return nil
}

// FrontendAddr is the frontend's host:port, for client.Options.HostPort.
func (s *Server) FrontendAddr() string { return s.opts.addr(s.opts.FrontendPort) }

// Namespace is the namespace created at start.
func (s *Server) Namespace() string { return s.opts.Namespace }

// UIURL is the Web UI's URL, or "" when the UI is not served.
func (s *Server) UIURL() string {
	if s.ui == nil {
		return ""
	}
	return "http://" + s.opts.addr(s.opts.UIPort)
}

// LogFile is where the server's logs go ("" when given a writer or none).
func (s *Server) LogFile() string {
	if s.opts.LogOutput != nil {
		return ""
	}
	return s.opts.LogFile
}

// Stop stops the UI and the server and closes the log file. Calling it
// again does nothing and returns the first result.
func (s *Server) Stop() error {
	s.stop.Do(func() { s.stopErr = s.doStop() })
	return s.stopErr
}

func (s *Server) doStop() error {
	var errs []error
	if s.ui != nil {
		s.ui.stop()
	}
	if s.server != nil {
		// Stopping while Start still runs would race inside the server.
		<-s.startDone
		if s.startErr == nil {
			if err := s.server.Stop(); err != nil {
				errs = append(errs, fmt.Errorf("stop Temporal server: %w", err))
			}
		}
	}
	s.closeLog()
	return errors.Join(errs...)
}

func (s *Server) closeLog() {
	if s.logFile != nil {
		s.logFile.Close()
		s.logFile = nil
	}
}
