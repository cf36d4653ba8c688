package triggers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/workflows/definition"
)

// Headers of dead-lettered messages.
const (
	HeaderError   = "gateflow-error"
	HeaderOrigin  = "gateflow-origin"
	HeaderTrigger = "gateflow-trigger"
)

// Timing of topic consumers.
const (
	// commitEvery bounds how long handled offsets wait to be committed.
	commitEvery = 200 * time.Millisecond
	// startTimeout bounds one start attempt.
	startTimeout = 30 * time.Second
	// retryMin and retryMax bound the backoff of a start Temporal refused
	// for a transient reason.
	retryMin = 200 * time.Millisecond
	retryMax = 10 * time.Second
	// rebalanceTimeout is how long the group waits for members to finish
	// their generation (starts in flight complete within startTimeout).
	rebalanceTimeout = 45 * time.Second
)

// TopicOptions configure the topic consumers of a process.
type TopicOptions struct {
	Brokers []string
	// Dialer is used by the readers and the consumer groups, Transport by
	// the dead-letter writers; nil means plain TCP.
	Dialer    *kafka.Dialer
	Transport *kafka.Transport
	// Registerer receives the metrics (lag, messages by result); nil
	// registers nothing.
	Registerer prometheus.Registerer
	// Recorder receives one call record per message; nil drops them.
	Recorder activities.Recorder
	// Resync is how often the set of triggers is compared with the
	// configuration (default 1s).
	Resync time.Duration
	Log    *slog.Logger
}

// Topics runs one consumer group member per topic trigger of the
// configuration, and follows its reloads: a trigger added starts, one
// removed or changed stops (its group hands the partitions over).
type Topics struct {
	opts    TopicOptions
	starter Starter
	sender  EventSender
	m       *topicMetrics
	log     *slog.Logger
}

// NewTopics returns the consumers; Run starts them.
func NewTopics(st Starter, es EventSender, opts TopicOptions) (*Topics, error) {
	if len(opts.Brokers) == 0 {
		return nil, errors.New("triggers: no Kafka brokers")
	}
	if opts.Dialer == nil {
		opts.Dialer = &kafka.Dialer{Timeout: 5 * time.Second, DualStack: true}
	}
	if opts.Transport == nil {
		opts.Transport = kafka.DefaultTransport.(*kafka.Transport)
	}
	if opts.Recorder == nil {
		opts.Recorder = activities.NopRecorder{}
	}
	if opts.Resync <= 0 {
		opts.Resync = time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	m := newTopicMetrics()
	if opts.Registerer != nil {
		if err := m.register(opts.Registerer); err != nil {
			return nil, err
		}
	}
	return &Topics{opts: opts, starter: st, sender: es, m: m, log: opts.Log}, nil
}

// running is a consumer started for one version of a trigger.
type running struct {
	digest string
	cancel context.CancelFunc
	done   chan struct{}
}

// Run consumes until ctx ends, following the configuration of reg.
func (t *Topics) Run(ctx context.Context, reg Snapshots) error {
	cur := map[string]*running{}
	defer func() {
		for _, r := range cur {
			r.cancel()
		}
		for _, r := range cur {
			<-r.done
		}
	}()
	tick := time.NewTicker(t.opts.Resync)
	defer tick.Stop()
	var last *sysconfig.Snapshot
	for {
		if snap := reg.Current(); snap != last {
			last = snap
			want := map[string]sysconfig.TopicTrigger{}
			for _, tr := range snap.TopicTriggers() {
				want[tr.Name] = tr
			}
			names := make([]string, 0, len(cur))
			for name := range cur {
				names = append(names, name)
			}
			sort.Strings(names)
			for _, name := range names {
				r := cur[name]
				if tr, ok := want[name]; ok && digest(tr) == r.digest {
					continue
				}
				r.cancel()
				<-r.done
				delete(cur, name)
				t.log.Info("topic trigger stopped", "trigger", name)
			}
			for _, tr := range snap.TopicTriggers() {
				if _, ok := cur[tr.Name]; ok {
					continue
				}
				cctx, cancel := context.WithCancel(ctx)
				r := &running{digest: digest(tr), cancel: cancel, done: make(chan struct{})}
				cur[tr.Name] = r
				c := t.newConsumer(tr)
				go func() {
					defer close(r.done)
					c.run(cctx)
				}()
				t.log.Info("topic trigger started", "trigger", tr.Name, "topic", tr.Topic, "group", tr.ConsumerGroup())
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func digest(tr sysconfig.TopicTrigger) string {
	b, _ := json.Marshal(struct {
		T sysconfig.TopicTrigger
		N string
	}{tr, tr.Name})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// consumer is one trigger's member of its consumer group.
type consumer struct {
	t    *Topics
	tr   sysconfig.TopicTrigger
	act  action
	dlq  *kafka.Writer
	log  *slog.Logger
	lags sync.Map // partition -> *kafka.Reader
}

func (t *Topics) newConsumer(tr sysconfig.TopicTrigger) *consumer {
	return &consumer{
		t:  t,
		tr: tr,
		act: action{kind: calls.KindTopic, tenant: tr.Tenant, name: tr.Name, start: tr.Start, event: tr.Event,
			dflt: "input.value"},
		log: t.log.With("trigger", tr.Name, "topic", tr.Topic),
	}
}

// run joins the group and handles each generation's partitions until ctx
// ends. A broker that cannot be reached is retried by the group itself.
func (c *consumer) run(ctx context.Context) {
	start := kafka.LastOffset
	if c.tr.StartOffset == "earliest" {
		start = kafka.FirstOffset
	}
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:      c.tr.ConsumerGroup(),
		Brokers: c.t.opts.Brokers,
		Dialer:  c.t.opts.Dialer,
		Topics:  []string{c.tr.Topic},
		// As in the analytics sink: quick heartbeats so that a rebalance
		// reaches this member fast, kfake's minimum session (a dead
		// member's partitions move in ~6 s), and room for starts in
		// flight to finish before partitions move.
		HeartbeatInterval: time.Second,
		SessionTimeout:    6 * time.Second,
		RebalanceTimeout:  rebalanceTimeout,
		JoinGroupBackoff:  time.Second,
		StartOffset:       start,
		Timeout:           5 * time.Second,
		ErrorLogger: kafka.LoggerFunc(func(f string, a ...any) {
			c.log.Debug("kafka group: " + fmt.Sprintf(f, a...))
		}),
	})
	if err != nil {
		c.log.Error("topic trigger: consumer group", "err", err)
		return
	}
	c.dlq = &kafka.Writer{
		Addr:                   kafka.TCP(c.t.opts.Brokers...),
		Topic:                  c.tr.DLQTopic(),
		Balancer:               &kafka.Hash{},
		RequiredAcks:           kafka.RequireAll,
		BatchTimeout:           5 * time.Millisecond,
		Transport:              c.t.opts.Transport,
		AllowAutoTopicCreation: true,
	}
	var wg sync.WaitGroup
	defer func() {
		// Close ends the generation and waits for its functions.
		if err := group.Close(); err != nil {
			c.log.Debug("topic trigger: leave group", "err", err)
		}
		wg.Wait()
		_ = c.dlq.Close()
	}()
	stopLag := c.reportLag(ctx)
	defer stopLag()
	for {
		gen, err := group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				return
			}
			c.t.m.errors.WithLabelValues(c.tr.Name).Inc()
			c.log.Warn("topic trigger: cannot join the consumer group; retrying", "err", err)
			continue
		}
		assigned := gen.Assignments[c.tr.Topic]
		c.log.Info("topic trigger: partitions assigned", "generation", gen.ID, "partitions", len(assigned))
		for _, a := range assigned {
			wg.Add(1)
			gen.Start(func(gctx context.Context) {
				defer wg.Done()
				c.partition(gctx, gen, a)
			})
		}
	}
}

// reportLag publishes the lag of the partitions this member reads.
func (c *consumer) reportLag(ctx context.Context) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			var lag int64
			c.lags.Range(func(_, v any) bool {
				lag += max(v.(*kafka.Reader).Stats().Lag, 0)
				return true
			})
			c.t.m.lag.WithLabelValues(c.tr.Name).Set(float64(lag))
		}
	}()
	return func() {
		close(done)
		c.t.m.lag.DeleteLabelValues(c.tr.Name)
	}
}

// slot is one message being handled; handled says its offset may be
// committed.
type slot struct {
	msg     kafka.Message
	done    chan struct{}
	handled bool
}

// partition handles one assigned partition until the generation ends:
// messages are handled concurrently (at most the trigger's concurrency in
// flight), and the offset after the longest run of handled messages is
// committed, so a message is committed only once its start was
// acknowledged (or it was filtered or dead-lettered). A message whose
// start keeps failing (Temporal down) holds the commit back; when the
// generation ends, what was not committed is redelivered to the next
// owner, whose starts are deduplicated.
func (c *consumer) partition(gctx context.Context, gen *kafka.Generation, a kafka.PartitionAssignment) {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:        c.t.opts.Brokers,
		Topic:          c.tr.Topic,
		Partition:      a.ID,
		Dialer:         c.t.opts.Dialer,
		MinBytes:       1,
		MaxBytes:       4 << 20,
		MaxWait:        500 * time.Millisecond,
		QueueCapacity:  1024,
		ReadBackoffMin: 100 * time.Millisecond,
		ReadBackoffMax: 2 * time.Second,
		ErrorLogger: kafka.LoggerFunc(func(f string, args ...any) {
			c.log.Debug("kafka reader: " + fmt.Sprintf(f, args...))
		}),
	})
	defer func() { _ = r.Close() }()
	if err := r.SetOffset(a.Offset); err != nil {
		c.log.Warn("topic trigger: set partition offset", "partition", a.ID, "offset", a.Offset, "err", err)
	}
	c.lags.Store(a.ID, r)
	defer c.lags.Delete(a.ID)

	queue := make(chan *slot, c.tr.InFlight())
	sem := make(chan struct{}, c.tr.InFlight())
	committed := make(chan struct{})
	go func() {
		defer close(committed)
		c.commit(gen, a.ID, queue)
	}()
	var handlers sync.WaitGroup
	for gctx.Err() == nil {
		msg, err := r.FetchMessage(gctx)
		if err != nil {
			if gctx.Err() != nil {
				break
			}
			c.t.m.errors.WithLabelValues(c.tr.Name).Inc()
			c.log.Debug("topic trigger: fetch", "partition", a.ID, "err", err)
			select {
			case <-gctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-gctx.Done():
		}
		if gctx.Err() != nil {
			break
		}
		s := &slot{msg: msg, done: make(chan struct{})}
		queue <- s
		handlers.Add(1)
		go func() {
			defer handlers.Done()
			defer func() { <-sem }()
			s.handled = c.handle(gctx, msg)
			close(s.done)
		}()
	}
	handlers.Wait()
	close(queue)
	<-committed
}

// commit commits, in the generation, the offset after the handled prefix
// of the partition's messages, at most every commitEvery.
func (c *consumer) commit(gen *kafka.Generation, partition int, queue <-chan *slot) {
	next := int64(-1)
	var last time.Time
	flush := func() {
		if next < 0 {
			return
		}
		if err := gen.CommitOffsets(map[string]map[int]int64{c.tr.Topic: {partition: next}}); err != nil {
			c.t.m.errors.WithLabelValues(c.tr.Name).Inc()
			c.log.Debug("topic trigger: commit failed; the messages come again and are deduplicated", "partition", partition, "err", err)
		}
		last = time.Now()
		next = -1
	}
	blocked := false
	for s := range queue {
		<-s.done
		if blocked || !s.handled {
			// Not handled (the generation ended mid-start): nothing after
			// it may be committed.
			blocked = true
			continue
		}
		next = s.msg.Offset + 1
		if time.Since(last) >= commitEvery {
			flush()
		}
	}
	flush()
}

// handle handles one message; false means it was not, and must come
// again (the generation ended while its start was retried).
func (c *consumer) handle(gctx context.Context, msg kafka.Message) bool {
	at := time.Now()
	origin := fmt.Sprintf("%s/%d/%d", msg.Topic, msg.Partition, msg.Offset)
	labels := map[string]string{"origin": origin}
	record := func(o outcome, err error) {
		f := c.act.firing(at, o, err)
		f.ReqBytes = int64(len(msg.Value))
		f.IDParts = []string{c.tr.Name, origin}
		f.At = msg.Time
		if f.At.IsZero() {
			f.At = at
		}
		f.Latency = time.Since(at)
		for k, v := range labels {
			f.Labels[k] = v
		}
		c.t.opts.Recorder.Emit(f.Record())
		c.t.m.messages.WithLabelValues(c.tr.Name, o.result).Inc()
	}
	input, err := messageInput(msg)
	if err == nil && c.tr.Filter != "" {
		var keep bool
		keep, err = definition.EvalCondition(c.tr.Filter, definition.Env{definition.EnvInput: input})
		if err == nil && !keep {
			record(outcome{result: ResultFiltered}, nil)
			return true
		}
		if err != nil {
			err = fmt.Errorf("%w: filter: %w", ErrPoison, err)
		}
	}
	dedup := origin
	if err == nil && c.tr.ID != "" {
		var key string
		key, err = definition.EvalString(c.tr.ID, definition.Env{definition.EnvInput: input})
		switch {
		case err != nil:
			err = fmt.Errorf("%w: id: %w", ErrPoison, err)
		case key == "":
			err = fmt.Errorf("%w: id: gave an empty key", ErrPoison)
		default:
			dedup = "key:" + key
		}
	}
	backoff := retryMin
	for err == nil || !errors.Is(err, ErrPoison) {
		sctx, cancel := context.WithTimeout(gctx, startTimeout)
		var o outcome
		o, err = c.act.fire(sctx, c.t.starter, c.t.sender, input, dedup, labels)
		cancel()
		if err == nil {
			record(o, nil)
			return true
		}
		if errors.Is(err, ErrPoison) {
			break
		}
		c.t.m.retries.WithLabelValues(c.tr.Name).Inc()
		c.log.Warn("topic trigger: start failed; retrying", "origin", origin, "backoff", backoff, "err", err)
		select {
		case <-gctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, retryMax)
	}
	// Poison: to the dead-letter topic with the reason, then committed.
	if !c.deadLetter(gctx, msg, err) {
		return false
	}
	labels["dead_letter_topic"] = c.tr.DLQTopic()
	record(outcome{result: ResultDeadLetter}, err)
	return true
}

// deadLetter writes msg to the dead-letter topic, retrying until it is
// written or the generation ends.
func (c *consumer) deadLetter(gctx context.Context, msg kafka.Message, reason error) bool {
	m := kafka.Message{
		Key:   msg.Key,
		Value: msg.Value,
		Headers: append(append([]kafka.Header(nil), msg.Headers...),
			kafka.Header{Key: HeaderError, Value: []byte(truncate(reason.Error(), 1024))},
			kafka.Header{Key: HeaderOrigin, Value: fmt.Appendf(nil, "%s/%d/%d", msg.Topic, msg.Partition, msg.Offset)},
			kafka.Header{Key: HeaderTrigger, Value: []byte(c.tr.Name)},
		),
	}
	backoff := retryMin
	for {
		wctx, cancel := context.WithTimeout(gctx, 30*time.Second)
		err := c.dlq.WriteMessages(wctx, m)
		cancel()
		if err == nil {
			c.log.Warn("topic trigger: message sent to the dead-letter topic", "dlq", c.tr.DLQTopic(),
				"origin", fmt.Sprintf("%d/%d", msg.Partition, msg.Offset), "reason", reason.Error())
			return true
		}
		c.log.Warn("topic trigger: cannot write to the dead-letter topic; retrying", "dlq", c.tr.DLQTopic(), "err", err)
		select {
		case <-gctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, retryMax)
	}
}

// messageInput is what a trigger's expressions see of a message: input =
// {topic, partition, offset, key, headers, value, timestamp}. A value that
// is not JSON is poison (ErrPoison); an empty one is null.
func messageInput(msg kafka.Message) (map[string]any, error) {
	var value any
	if len(msg.Value) > 0 {
		if err := json.Unmarshal(msg.Value, &value); err != nil {
			return nil, fmt.Errorf("%w: the value is not JSON: %v", ErrPoison, err)
		}
	}
	headers := make(map[string]any, len(msg.Headers))
	for _, h := range msg.Headers {
		headers[h.Key] = string(h.Value)
	}
	in := map[string]any{
		"topic":     msg.Topic,
		"partition": float64(msg.Partition),
		"offset":    float64(msg.Offset),
		"key":       string(msg.Key),
		"headers":   headers,
		"value":     value,
	}
	if !msg.Time.IsZero() {
		in["timestamp"] = msg.Time.UTC().Format(time.RFC3339Nano)
	}
	return in, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// topicMetrics are the consumers' Prometheus metrics.
type topicMetrics struct {
	lag      *prometheus.GaugeVec
	messages *prometheus.CounterVec
	retries  *prometheus.CounterVec
	errors   *prometheus.CounterVec
}

func newTopicMetrics() *topicMetrics {
	return &topicMetrics{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gateflow_trigger_lag",
			Help: "Messages of a topic trigger's partitions read by this process not yet fetched (consumer lag)."}, []string{"trigger"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateflow_trigger_messages_total",
			Help: "Messages handled by topic triggers, by result (started, duplicate, event, filtered, dead_letter)."}, []string{"trigger", "result"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateflow_trigger_start_retries_total",
			Help: "Starts of topic triggers retried after a transient failure (Temporal unreachable)."}, []string{"trigger"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateflow_trigger_kafka_errors_total",
			Help: "Kafka errors of topic triggers (join, fetch, commit); each is retried."}, []string{"trigger"}),
	}
}

func (m *topicMetrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.lag, m.messages, m.retries, m.errors} {
		if err := r.Register(c); err != nil {
			return fmt.Errorf("register trigger metrics: %w", err)
		}
	}
	return nil
}
