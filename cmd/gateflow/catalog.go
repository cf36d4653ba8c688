package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/gateflow/gateflow/activities/llm/prompt"
	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/ingress"
	"github.com/gateflow/gateflow/ingress/auth"
	"github.com/gateflow/gateflow/workflows/apikeys"
	"github.com/gateflow/gateflow/workflows/catalog"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/orchestrator"
	"github.com/gateflow/gateflow/workflows/replicated"
)

// The catalogue and the API-created keys (docs/CATALOG.md) are replicated
// to every ingress through compacted topics: this file wires them into the
// worker (entities, publisher) and the ingress (tails, read models,
// services).

// replicationConfig names the compacted topics.
type replicationConfig struct {
	CatalogTopic string
	KeysTopic    string
}

func (c *replicationConfig) bind(fs *pflag.FlagSet) {
	fs.StringVar(&c.CatalogTopic, "catalog-topic", catalog.DefaultTopic, "compacted topic replicating the API catalogue and its grants to every ingress (created compacted if missing)")
	fs.StringVar(&c.KeysTopic, "keys-topic", apikeys.DefaultTopic, "compacted topic replicating API-created keys (hashes) to every ingress (created compacted if missing)")
}

// quotaConfig tunes the plan quotas of the catalogue (docs/CATALOG.md).
type quotaConfig struct {
	IngestLag time.Duration
	CacheTTL  time.Duration
}

func (c *quotaConfig) bind(fs *pflag.FlagSet) {
	d := catalog.NewQuotas(nil, nil, catalog.QuotaPolicy{}).Policy()
	fs.DurationVar(&c.IngestLag, "quota-ingest-lag", d.IngestLag, "how long a call record may take to reach ClickHouse: quotas count this replica's calls of that window locally (other replicas' calls of it are the possible overshoot)")
	fs.DurationVar(&c.CacheTTL, "quota-cache-ttl", d.CacheTTL, "how long a quota's ClickHouse figure is reused")
}

func (c quotaConfig) validate() error {
	if c.IngestLag <= 0 || c.CacheTTL <= 0 {
		return errors.New("--quota-ingest-lag and --quota-cache-ttl must be positive")
	}
	return nil
}

func (c quotaConfig) policy() catalog.QuotaPolicy {
	return catalog.QuotaPolicy{IngestLag: c.IngestLag, CacheTTL: c.CacheTTL}
}

func (c replicationConfig) validate() error {
	switch {
	case c.CatalogTopic == "" || c.KeysTopic == "":
		return errors.New("--catalog-topic and --keys-topic must not be empty")
	case c.CatalogTopic == c.KeysTopic:
		return errors.New("--catalog-topic and --keys-topic must differ")
	}
	return nil
}

// ensureReplicatedTopics creates the compacted topics when missing. A
// failure is logged, not fatal: the tails and publishers retry, and an
// operator may have created the topics under an account that may not.
func ensureReplicatedTopics(ctx context.Context, cfg replicationConfig, kc kafkaConfig, transport *kafka.Transport, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for _, topic := range []string{cfg.CatalogTopic, cfg.KeysTopic} {
		if err := replicated.EnsureTopic(ctx, kc.Brokers, transport, topic, replicated.DefaultPartitions); err != nil {
			log.Warn("cannot create the replicated topic (create it compacted: cleanup.policy=compact)", "topic", topic, "err", err)
		}
	}
}

// registerReplicated returns the worker registrations of the catalogue and
// the keys: their entities and workflows, the decision activity, and the
// publisher every entity publishes through.
func registerReplicated(c client.Client, taskQueue string, cfg replicationConfig, pub *replicated.Publisher) func(sdkworker.Registry) {
	return func(r sdkworker.Registry) {
		pub.Register(r)
		catalog.Register(r, catalog.RegisterOptions{Client: c, TaskQueue: taskQueue, Topic: cfg.CatalogTopic})
		apikeys.Register(r)
	}
}

// ingressReplicas is what an ingress replica runs for the catalogue and
// the API-created keys.
type ingressReplicas struct {
	catalog *catalog.Service
	keys    *apikeys.Service
	ready   []ingress.ReadyCheck
}

// definitionsOf adapts the orchestrator to catalog.DefinitionGetter.
type definitionsOf struct{ o *orchestrator.Orchestrator }

func (d definitionsOf) Get(ctx context.Context, tenant, name, version string) (definition.Definition, error) {
	return d.o.GetDefinition(ctx, orchestrator.Caller{Tenant: tenant}, name, version)
}

// startReplicas starts the tails of both topics into their read models
// (until ctx ends) and builds the services over them. The ingress is
// ready only once both tails have caught up with their topics.
func startReplicas(ctx context.Context, cfg replicationConfig, kc kafkaConfig, transport *kafka.Transport, c client.Client, taskQueue string,
	reg *sysconfig.Registry, orch *orchestrator.Orchestrator, quotas *catalog.Quotas, keys *auth.Store, log *slog.Logger) (*ingressReplicas, error) {
	dialer, err := kc.dialer()
	if err != nil {
		return nil, err
	}
	ensureReplicatedTopics(ctx, cfg, kc, transport, log)

	var catTail *replicated.Tail
	catModel := catalog.NewReadModel(func() bool { return catTail.IsReady() }, log.With("component", "catalog"))
	catTail = replicated.NewTail(replicated.TailConfig{Brokers: kc.Brokers, Topic: cfg.CatalogTopic, Transport: transport, Dialer: dialer,
		Log: log.With("component", "catalog-tail")}, catModel.Apply)
	go runTail(ctx, catTail, log)

	keyLog := log.With("component", "keys")
	var keyTail *replicated.Tail
	keyModel := apikeys.NewReadModel(func(k apikeys.Key) {
		err := keys.PutReplicated(auth.Key{ID: k.ID, Hash: k.Hash, Tenant: k.Tenant, Roles: k.Roles, User: k.User, App: k.App,
			Created: k.CreatedAt, Disabled: k.Disabled, RPS: k.RPS, Burst: k.Burst, Note: k.Note})
		if err != nil {
			keyLog.Warn("skipping an invalid replicated key", "key_id", k.ID, "err", err)
		}
	}, func() bool { return keyTail.IsReady() }, keyLog)
	keyTail = replicated.NewTail(replicated.TailConfig{Brokers: kc.Brokers, Topic: cfg.KeysTopic, Transport: transport, Dialer: dialer,
		Log: log.With("component", "keys-tail")}, keyModel.Apply)
	go runTail(ctx, keyTail, log)

	svc, err := catalog.NewService(catalog.ServiceOptions{
		Client: c, TaskQueue: taskQueue, Topic: cfg.CatalogTopic, ReadModel: catModel,
		Targets: catalog.Targets{Config: reg, Definitions: definitionsOf{orch}, Prompts: prompt.FromRegistry(reg)},
		Quotas:  quotas,
		Log:     log.With("component", "catalog"),
	})
	if err != nil {
		return nil, err
	}
	return &ingressReplicas{
		catalog: svc,
		keys:    apikeys.NewService(c, taskQueue, cfg.KeysTopic, keyModel),
		ready: []ingress.ReadyCheck{
			{Name: "catalog", Check: catTail.Check},
			{Name: "keys", Check: keyTail.Check},
		},
	}, nil
}

func runTail(ctx context.Context, t *replicated.Tail, log *slog.Logger) {
	if err := t.Run(ctx); err != nil && ctx.Err() == nil {
		log.Error("replicated topic tail stopped", "err", err)
	}
}

// ownedAPIs lists a tenant's APIs for analytics questions on the catalogue.
func ownedAPIs(svc *catalog.Service) func(string) []string {
	return func(tenant string) []string { return svc.ReadModel().OwnedAPIs(tenant) }
}
