package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	tlog "go.temporal.io/sdk/log"

	"github.com/gateflow/gateflow/activities/tracing"
	"github.com/gateflow/gateflow/analytics/schema"
	"github.com/gateflow/gateflow/workflows"
)

// envPrefix prefixes the environment variable of every flag: --temporal-host
// is also GATEFLOW_TEMPORAL_HOST. A flag given on the command line wins.
const envPrefix = "GATEFLOW_"

// envName returns the environment variable bound to a flag.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// applyEnv sets every flag of cmd not given on the command line from its
// GATEFLOW_* variable, refusing bad values with the variable's name.
func applyEnv(cmd *cobra.Command) error {
	var errs []error
	apply := func(f *pflag.Flag) {
		if f.Changed {
			return
		}
		v, ok := os.LookupEnv(envName(f.Name))
		if !ok {
			return
		}
		if err := f.Value.Set(v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", envName(f.Name), v, err))
			return
		}
		f.Changed = true
	}
	cmd.Flags().VisitAll(apply)
	cmd.InheritedFlags().VisitAll(apply)
	return errors.Join(errs...)
}

// logConfig selects the process logger.
type logConfig struct {
	Level  string
	Format string
}

func (c *logConfig) bind(fs *pflag.FlagSet) {
	fs.StringVar(&c.Level, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.Format, "log-format", "text", "log format: text or json")
}

func (c logConfig) logger() (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.Level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", c.Level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch c.Format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", c.Format)
	}
}

// tlsConfig is the client TLS settings shared by every connection kind.
type tlsConfig struct {
	Enabled    bool
	CAFile     string
	CertFile   string
	KeyFile    string
	ServerName string
}

func (c *tlsConfig) bind(fs *pflag.FlagSet, prefix, what string) {
	fs.BoolVar(&c.Enabled, prefix+"-tls", false, "use TLS to "+what)
	fs.StringVar(&c.CAFile, prefix+"-tls-ca", "", "CA bundle (PEM) to verify "+what)
	fs.StringVar(&c.CertFile, prefix+"-tls-cert", "", "client certificate (PEM) for "+what)
	fs.StringVar(&c.KeyFile, prefix+"-tls-key", "", "client key (PEM) for "+what)
	fs.StringVar(&c.ServerName, prefix+"-tls-server-name", "", "server name expected from "+what)
}

// build returns nil when TLS is off.
func (c tlsConfig) build(prefix string) (*tls.Config, error) {
	if !c.Enabled && c.CAFile == "" && c.CertFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("--%s-tls-ca: %w", prefix, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--%s-tls-ca %s: no PEM certificate found", prefix, c.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, fmt.Errorf("--%s-tls-cert and --%s-tls-key go together", prefix, prefix)
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("--%s-tls-cert/key: %w", prefix, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// temporalConfig locates the Temporal frontend.
type temporalConfig struct {
	HostPort  string
	Namespace string
	TaskQueue string
	APIKey    string
	TLS       tlsConfig
	// PayloadKeyFile enables the payload codec (payloadcodec).
	PayloadKeyFile string
	// Tracing configures traces (flags of every process that talks to
	// Temporal).
	Tracing tracingConfig

	// Set by code, not flags: the process's tracing, whose interceptor
	// dial installs on the client (and so on its workers); nil: none.
	tracer *tracing.Tracing
}

func (c *temporalConfig) bind(fs *pflag.FlagSet) {
	fs.StringVar(&c.HostPort, "temporal-host", "127.0.0.1:7233", "Temporal frontend host:port")
	fs.StringVar(&c.Namespace, "temporal-namespace", "default", "Temporal namespace")
	fs.StringVar(&c.TaskQueue, "temporal-task-queue", workflows.DefaultTaskQueue, "task queue of orchestrations")
	fs.StringVar(&c.APIKey, "temporal-api-key", "", "Temporal Cloud API key (prefer the env variable)")
	c.TLS.bind(fs, "temporal", "Temporal")
	fs.StringVar(&c.PayloadKeyFile, "payload-key-file", "", "AES-256-GCM keys encrypting what is stored in Temporal (docs/SECURITY.md); every process needs the same file")
	c.Tracing.bind(fs)
}

func (c temporalConfig) validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.HostPort); err != nil {
		errs = append(errs, fmt.Errorf("--temporal-host %q: want host:port", c.HostPort))
	}
	if c.Namespace == "" {
		errs = append(errs, errors.New("--temporal-namespace: must not be empty"))
	}
	if c.TaskQueue == "" {
		errs = append(errs, errors.New("--temporal-task-queue: must not be empty"))
	}
	errs = append(errs, c.Tracing.validate())
	return errors.Join(errs...)
}

// dial connects to Temporal and checks that the namespace answers.
func (c temporalConfig) dial(ctx context.Context, mh client.MetricsHandler, log *slog.Logger) (client.Client, error) {
	tlsCfg, err := c.TLS.build("temporal")
	if err != nil {
		return nil, err
	}
	opts := client.Options{
		HostPort:          c.HostPort,
		Namespace:         c.Namespace,
		Logger:            tlog.NewStructuredLogger(log.With("component", "temporal-client")),
		ConnectionOptions: client.ConnectionOptions{TLS: tlsCfg},
		MetricsHandler:    mh, // nil: none
	}
	if c.APIKey != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(c.APIKey)
	}
	codec, err := c.payloadCodec()
	if err != nil {
		return nil, err
	}
	if codec != nil {
		codec.ApplyTo(&opts)
	}
	if c.tracer != nil {
		// The SDK's OpenTelemetry interceptor: the caller's span goes into
		// the workflow's header, the workflow's into each activity's, and
		// each activity runs in a span of the same trace. Workflow spans
		// are made outside workflow code, which stays deterministic.
		ti, err := temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{
			Tracer:            c.tracer.Provider().Tracer("go.temporal.io/sdk"),
			TextMapPropagator: c.tracer.TextMapPropagator(),
			// No baggage: only the trace context goes into histories.
			DisableBaggage: true,
		})
		if err != nil {
			return nil, fmt.Errorf("temporal tracing interceptor: %w", err)
		}
		opts.Interceptors = append(opts.Interceptors, ti)
	}
	cl, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s (namespace %s): %w", c.HostPort, c.Namespace, err)
	}
	return cl, nil
}

// tracingConfig configures traces (docs/TRACING.md): trace ids are always
// made and passed on; spans are recorded and exported over OTLP/gRPC only
// with an endpoint.
type tracingConfig struct {
	// OTLPEndpoint is the collector's URL; empty: the standard
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT,
	// and without those no export.
	OTLPEndpoint string
	// SampleRatio is the share of new traces exported.
	SampleRatio float64
}

// otelEndpointEnv are the standard OpenTelemetry variables naming the
// collector, read when --otlp-endpoint is not given (the traces one first).
var otelEndpointEnv = []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"}

func (c *tracingConfig) bind(fs *pflag.FlagSet) {
	fs.StringVar(&c.OTLPEndpoint, "otlp-endpoint", "", "OTLP/gRPC collector receiving trace spans, http://host:4317 (plain text) or https://host:4317 (empty: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT, else no export)")
	fs.Float64Var(&c.SampleRatio, "trace-sample-ratio", 1, "share of new traces recorded and exported when an OTLP endpoint is set (a caller's sampled flag is followed)")
}

// endpoint is the flag's value, else the standard variables'.
func (c tracingConfig) endpoint() (string, string) {
	if c.OTLPEndpoint != "" {
		return c.OTLPEndpoint, "--otlp-endpoint"
	}
	for _, v := range otelEndpointEnv {
		if e := os.Getenv(v); e != "" {
			return e, v
		}
	}
	return "", ""
}

func (c tracingConfig) validate() error {
	var errs []error
	if e, from := c.endpoint(); e != "" {
		if err := tracing.CheckEndpoint(e); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", from, err))
		}
	}
	if c.SampleRatio <= 0 || c.SampleRatio > 1 {
		errs = append(errs, fmt.Errorf("--trace-sample-ratio %g: want a share in (0, 1]", c.SampleRatio))
	}
	return errors.Join(errs...)
}

// start returns the process's tracing (service is its service.name);
// Shutdown it last, to flush the spans.
func (c tracingConfig) start(ctx context.Context, service string, log *slog.Logger) (*tracing.Tracing, error) {
	e, from := c.endpoint()
	tr, err := tracing.New(ctx, tracing.Options{Service: service, Endpoint: e, SampleRatio: c.SampleRatio,
		Log: log.With("component", "tracing")})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", from, err)
	}
	if e != "" {
		log.Info("exporting trace spans", "endpoint", redactDSN(e), "from", from, "sample_ratio", c.SampleRatio)
	}
	return tr, nil
}

// kafkaConfig locates the Kafka cluster and the call-record topics.
type kafkaConfig struct {
	Brokers       []string
	Topic         string
	DLQTopic      string
	SASLMechanism string
	SASLUser      string
	SASLPassword  string
	TLS           tlsConfig
}

func (c *kafkaConfig) bind(fs *pflag.FlagSet) {
	fs.StringSliceVar(&c.Brokers, "kafka-brokers", []string{"127.0.0.1:9092"}, "Kafka bootstrap brokers (comma separated)")
	fs.StringVar(&c.Topic, "kafka-topic", "gateflow.calls", "topic of call records")
	fs.StringVar(&c.DLQTopic, "kafka-dlq-topic", "gateflow.calls.dlq", "dead-letter topic for records that cannot be stored")
	fs.StringVar(&c.SASLMechanism, "kafka-sasl-mechanism", "", "SASL mechanism: plain, scram-sha-256 or scram-sha-512 (empty: none)")
	fs.StringVar(&c.SASLUser, "kafka-sasl-user", "", "SASL user")
	fs.StringVar(&c.SASLPassword, "kafka-sasl-password", "", "SASL password (prefer the env variable)")
	c.TLS.bind(fs, "kafka", "Kafka")
}

func (c kafkaConfig) validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("--kafka-brokers: at least one broker is needed"))
	}
	for _, b := range c.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			errs = append(errs, fmt.Errorf("--kafka-brokers %q: want host:port", b))
		}
	}
	if c.Topic == "" {
		errs = append(errs, errors.New("--kafka-topic: must not be empty"))
	}
	if c.DLQTopic == "" || c.DLQTopic == c.Topic {
		errs = append(errs, errors.New("--kafka-dlq-topic: must be set and differ from --kafka-topic"))
	}
	if _, err := c.mechanism(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c kafkaConfig) mechanism() (sasl.Mechanism, error) {
	switch strings.ToLower(c.SASLMechanism) {
	case "":
		return nil, nil
	case "plain":
		return plain.Mechanism{Username: c.SASLUser, Password: c.SASLPassword}, nil
	case "scram-sha-256":
		return scram.Mechanism(scram.SHA256, c.SASLUser, c.SASLPassword)
	case "scram-sha-512":
		return scram.Mechanism(scram.SHA512, c.SASLUser, c.SASLPassword)
	default:
		return nil, fmt.Errorf("--kafka-sasl-mechanism %q: want plain, scram-sha-256 or scram-sha-512", c.SASLMechanism)
	}
}

// transport is used by writers and admin calls.
func (c kafkaConfig) transport() (*kafka.Transport, error) {
	mech, err := c.mechanism()
	if err != nil {
		return nil, err
	}
	tlsCfg, err := c.TLS.build("kafka")
	if err != nil {
		return nil, err
	}
	return &kafka.Transport{SASL: mech, TLS: tlsCfg, DialTimeout: 5 * time.Second, ClientID: "gateflow"}, nil
}

// reachable checks that a broker answers a metadata request (without
// topics, so it never auto-creates one).
func (c kafkaConfig) reachable(ctx context.Context, transport *kafka.Transport) error {
	kc := &kafka.Client{Addr: kafka.TCP(c.Brokers...), Transport: transport}
	_, err := kc.Metadata(ctx, &kafka.MetadataRequest{})
	return err
}

// dialer is used by readers (kafka-go readers take a Dialer, not a Transport).
func (c kafkaConfig) dialer() (*kafka.Dialer, error) {
	mech, err := c.mechanism()
	if err != nil {
		return nil, err
	}
	tlsCfg, err := c.TLS.build("kafka")
	if err != nil {
		return nil, err
	}
	return &kafka.Dialer{SASLMechanism: mech, TLS: tlsCfg, Timeout: 5 * time.Second, DualStack: true, ClientID: "gateflow"}, nil
}

// clickhouseConfig locates ClickHouse.
type clickhouseConfig struct {
	DSN string
	// Cluster is the ClickHouse cluster (<remote_servers>) the schema is
	// laid out on; "" is a single server. Every process that binds the
	// ClickHouse flags takes it, so that one setting serves the sink
	// (migrations, inserts) and the queries alike.
	Cluster string
}

func (c *clickhouseConfig) bind(fs *pflag.FlagSet) {
	fs.StringVar(&c.DSN, "clickhouse-dsn", "clickhouse://127.0.0.1:9000/default", "ClickHouse DSN (clickhouse://user:pass@host:9000/db?secure=true)")
	fs.StringVar(&c.Cluster, "clickhouse-cluster", "", "ClickHouse cluster (remote_servers) for replicated and Distributed tables, DDL ON CLUSTER; empty: a single server")
}

func (c clickhouseConfig) validate() error {
	_, err := c.parse()
	if err == nil {
		if cerr := c.cluster().Validate(); cerr != nil {
			err = fmt.Errorf("--clickhouse-cluster: %w", cerr)
		}
	}
	return err
}

// cluster is the schema layout the flags ask for.
func (c clickhouseConfig) cluster() schema.Cluster { return schema.Cluster{Name: c.Cluster} }

// parse parses the DSN; its errors never quote the password (the
// driver's own errors quote the whole DSN).
func (c clickhouseConfig) parse() (*clickhouse.Options, error) {
	opts, err := clickhouse.ParseDSN(c.DSN)
	if err != nil {
		msg := err.Error()
		if u, perr := url.Parse(c.DSN); perr == nil && u.User != nil {
			if pw, ok := u.User.Password(); ok && pw != "" {
				msg = strings.ReplaceAll(msg, pw, "xxxxx")
				msg = strings.ReplaceAll(msg, url.QueryEscape(pw), "xxxxx")
			}
		}
		return nil, fmt.Errorf("--clickhouse-dsn %s: %s", redactDSN(c.DSN), msg)
	}
	return opts, nil
}

// redactDSN hides the password of a DSN for messages; a DSN that does not
// parse as a URL is not shown at all.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}

// open returns a pooled native-protocol connection; it does not check that
// the server answers (callers Ping when they need to).
func (c clickhouseConfig) open() (driver.Conn, error) {
	opts, err := c.parse()
	if err != nil {
		return nil, err
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 5 * time.Second
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open ClickHouse %v: %w", opts.Addr, err)
	}
	return conn, nil
}

// bindReloadInterval binds --reload-interval, shared by the processes that
// read the config dir.
func bindReloadInterval(fs *pflag.FlagSet, d *time.Duration) {
	fs.DurationVar(d, "reload-interval", 10*time.Second,
		"how often to check the config dir (and keys file) for changes and reload them; 0: on SIGHUP only")
}

func validateReloadInterval(d time.Duration) error {
	if d < 0 || (d > 0 && d < 100*time.Millisecond) {
		return fmt.Errorf("--reload-interval %s: want 0 (SIGHUP only) or at least 100ms", d)
	}
	return nil
}
