package embedded

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Topic is a topic created when the broker starts.
type Topic struct {
	Name string
	// Partitions must be > 0.
	Partitions int32
	// Retention is the topic's retention.ms; 0 keeps records forever.
	Retention time.Duration
}

// KafkaOptions configures StartKafka.
type KafkaOptions struct {
	// DataDir persists topics, records and group offsets across restarts;
	// empty keeps everything in memory.
	DataDir string
	// Host to listen on; default 127.0.0.1.
	Host string
	// Port to listen on; 0 picks a free port.
	Port int
	// Ports, when set, starts one broker per port (0: a free port) instead
	// of the one broker on Port: a cluster of several brokers in this
	// process (kfake does not replicate between processes).
	Ports []int
	// Topics are created at start if missing; existing ones are kept as they
	// are (a partition count that differs is logged, not changed).
	Topics []Topic
	// SyncWrites fsyncs every produced batch (survives an OS crash, slower).
	SyncWrites bool
	// Logger receives lifecycle lines. Default: discard.
	Logger *slog.Logger
}

// Kafka is a running kfake cluster (one broker unless KafkaOptions.Ports).
type Kafka struct {
	cluster *kfake.Cluster
	addr    string
	addrs   []string
	conns   *connTracker
}

// StartKafka starts a one-broker Kafka-protocol cluster (kfake) and creates
// opts.Topics. kfake's defaults (3 brokers, 10 partitions, auto-created
// topics) are overridden: one broker, explicit partitions, no
// auto-creation, so that a typo in a topic name fails loudly.
func StartKafka(opts KafkaOptions) (*Kafka, error) {
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	for _, t := range opts.Topics {
		if t.Name == "" || t.Partitions <= 0 || t.Retention < 0 {
			return nil, fmt.Errorf("kafka topic %+v: want a name, partitions > 0, retention >= 0", t)
		}
	}
	host := opts.Host
	conns := &connTracker{byPort: map[string]map[net.Conn]struct{}{}}
	ports := opts.Ports
	if len(ports) == 0 {
		ports = []int{opts.Port}
	}
	kopts := []kfake.Opt{
		kfake.NumBrokers(len(ports)),
		kfake.Ports(ports...),
		kfake.DefaultNumPartitions(1),
		kfake.ClusterID("gateflow-dev"),
		kfake.ListenFn(func(network, addr string) (net.Listener, error) {
			// kfake listens on 127.0.0.1:port; honour Host.
			_, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			l, err := net.Listen(network, net.JoinHostPort(host, port))
			if err != nil {
				return nil, err
			}
			_, port, _ = net.SplitHostPort(l.Addr().String())
			return &trackingListener{Listener: l, port: port, t: conns}, nil
		}),
	}
	if opts.DataDir != "" {
		kopts = append(kopts, kfake.DataDir(opts.DataDir))
	}
	if opts.SyncWrites {
		kopts = append(kopts, kfake.SyncWrites())
	}
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		return nil, fmt.Errorf("start Kafka broker on %s: %w", net.JoinHostPort(host, strconv.Itoa(opts.Port)), err)
	}
	k := &Kafka{cluster: c, conns: conns}
	addrs := c.ListenAddrs()
	if len(addrs) != len(ports) {
		c.Close()
		return nil, fmt.Errorf("kafka: want %d listeners, got %v", len(ports), addrs)
	}
	k.addr, k.addrs = addrs[0], addrs
	if err := k.ensureTopics(opts.Topics, opts.Logger); err != nil {
		c.Close()
		return nil, err
	}
	return k, nil
}

func (k *Kafka) ensureTopics(topics []Topic, log *slog.Logger) error {
	var errs []error
	for _, t := range topics {
		if info := k.cluster.TopicInfo(t.Name); info != nil {
			if n := len(k.cluster.PartitionInfos(t.Name)); n != int(t.Partitions) {
				log.Warn("kafka topic exists with another partition count; keeping it",
					"topic", t.Name, "partitions", n, "wanted", t.Partitions)
			}
			continue
		}
		var cfg map[string]string
		if t.Retention > 0 {
			cfg = map[string]string{"retention.ms": strconv.FormatInt(t.Retention.Milliseconds(), 10)}
		}
		if err := k.cluster.CreateTopic(t.Name, t.Partitions, cfg); err != nil {
			errs = append(errs, fmt.Errorf("create topic %s: %w", t.Name, err))
			continue
		}
		log.Debug("kafka topic created", "topic", t.Name, "partitions", t.Partitions, "retention", t.Retention)
	}
	return errors.Join(errs...)
}

// Addr is the broker's host:port (the bootstrap address); with several
// brokers, the first one's.
func (k *Kafka) Addr() string { return k.addr }

// Addrs are every broker's host:port.
func (k *Kafka) Addrs() []string { return k.addrs }

// Cluster exposes the kfake cluster for tests (ApplyRetention, TopicInfo...).
func (k *Kafka) Cluster() *kfake.Cluster { return k.cluster }

// RestartBroker takes broker node (0-based, in KafkaOptions.Ports order)
// away for down and brings it back on the same port, as clients see a
// broker of a real cluster restart: its listener closes, its connections
// drop, its partitions get other leaders (and are shuffled again when it
// returns). kfake's RemoveNode alone would leave existing connections
// served by the removed broker, answering "not leader" forever.
func (k *Kafka) RestartBroker(node int32, down time.Duration) error {
	if node < 0 || int(node) >= len(k.addrs) {
		return fmt.Errorf("kafka: no broker %d (have %d)", node, len(k.addrs))
	}
	_, port, err := net.SplitHostPort(k.addrs[node])
	if err != nil {
		return err
	}
	if err := k.cluster.RemoveNode(node); err != nil {
		return fmt.Errorf("kafka: take broker %d away: %w", node, err)
	}
	k.conns.closeAll(port)
	time.Sleep(down)
	p, _ := strconv.Atoi(port)
	if _, _, err := k.cluster.AddNode(node, p); err != nil {
		return fmt.Errorf("kafka: bring broker %d back on port %d: %w", node, p, err)
	}
	return nil
}

// connTracker remembers the open connections of each listener port.
type connTracker struct {
	mu     sync.Mutex
	byPort map[string]map[net.Conn]struct{}
}

func (t *connTracker) add(port string, c net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.byPort[port]
	if m == nil {
		m = map[net.Conn]struct{}{}
		t.byPort[port] = m
	}
	m[c] = struct{}{}
}

func (t *connTracker) remove(port string, c net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.byPort[port], c)
}

func (t *connTracker) closeAll(port string) {
	t.mu.Lock()
	conns := t.byPort[port]
	delete(t.byPort, port)
	t.mu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
}

// trackingListener records the connections it accepts.
type trackingListener struct {
	net.Listener
	port string
	t    *connTracker
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, port: l.port, t: l.t}
	l.t.add(l.port, tc)
	return tc, nil
}

type trackedConn struct {
	net.Conn
	port string
	t    *connTracker
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.t.remove(c.port, c) })
	return c.Conn.Close()
}

// Close stops the broker, persisting its state when it has a DataDir.
func (k *Kafka) Close() { k.cluster.Close() }
