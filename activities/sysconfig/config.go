// Package sysconfig is Gateflow's system configuration: the configuration
// directory that operators manage (services, tenants, models, MCP servers,
// config-dir definitions, prompt APIs through extensions). It loads and
// validates the directory into an immutable Snapshot, and a Registry holds
// the current one, reloaded on change or SIGHUP (an invalid reload keeps the
// old snapshot). It is not workflow code: the ingress, the worker and the
// model gateway read it; definitions published through the API live in
// workflows/registry.
//
// Config directory layout:
//
//	gateflow.yaml          services, tenants, models, mcp_servers
//	definitions/*.yaml     one definition per file (.yaml, .yml or .json)
//	prompts/*.yaml         loaded by an Extension (prompt APIs)
package sysconfig

import (
	"encoding/json"
	"fmt"
	"net"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/activities/llm"
	"github.com/gateflow/gateflow/workflows/definition"
)

// Config is gateflow.yaml.
type Config struct {
	// Services are the microservices http steps call, by name.
	Services map[string]Service `json:"services,omitempty"`
	// Tenants configure permissions and limits per tenant. The entry "*",
	// when present, is the default for tenants not listed (else
	// DefaultTenant applies).
	Tenants map[string]Tenant `json:"tenants,omitempty"`
	// Models is the model registry (providers, aliases, prices).
	Models llm.Config `json:"models,omitempty"`
	// MCPServers are the external MCP servers mcp steps call, by name.
	MCPServers map[string]MCPServer `json:"mcp_servers,omitempty"`
	// Schedules, Triggers (Kafka topics) and Webhooks start orchestrations
	// or send events; Callbacks configures the callback URLs of http steps
	// (events.go).
	Schedules map[string]Schedule     `json:"schedules,omitempty"`
	Triggers  map[string]TopicTrigger `json:"triggers,omitempty"`
	Webhooks  map[string]Webhook      `json:"webhooks,omitempty"`
	Callbacks Callbacks               `json:"callbacks,omitempty"`
}

// Service is a registered microservice.
type Service struct {
	// Name is the key under services (filled in by Load).
	Name string `json:"-"`
	// Owner is the tenant that owns the service: it may call it, and only
	// it may publish it in the catalogue. Other tenants need it in their
	// uses.services (or a grant). Empty: owned by no tenant (operator-run).
	Owner string `json:"owner,omitempty"`
	// Description is shown in catalogues.
	Description string `json:"description,omitempty"`
	// BaseURL is an absolute http(s) URL; a step's path is appended.
	BaseURL string `json:"base_url"`
	// Headers are sent with every call. Values may hold secret references,
	// ${env:NAME} or ${file:/path}, resolved at call time and never logged.
	Headers map[string]string `json:"headers,omitempty"`
	// Timeout is the default timeout of one attempt (a step's timeout wins).
	Timeout definition.Duration `json:"timeout,omitempty"`
	// Retry is the default retry policy (a step's retry wins).
	Retry *definition.RetryPolicy `json:"retry,omitempty"`
	// MaxResponseBytes caps a response body; 0 means the activity's default.
	MaxResponseBytes int64 `json:"max_response_bytes,omitempty"`

	// The gateway data plane (ANY /gw/{service}/{path...}): how plain HTTP
	// calls are forwarded to the service. Every field is optional; see
	// gateway.go and docs/PROXY.md.

	// Instances are the upstream endpoints calls are balanced over; empty
	// means one instance at BaseURL (and BaseURL, when empty, is the first
	// instance's, which http steps call).
	Instances []Instance `json:"instances,omitempty"`
	// LoadBalancing picks an instance per call (default round_robin).
	LoadBalancing LoadBalancing `json:"load_balancing,omitempty"`
	// HealthCheck probes every instance actively; nil: none.
	HealthCheck *HealthCheck `json:"health_check,omitempty"`
	// OutlierDetection ejects failing instances passively.
	OutlierDetection OutlierDetection `json:"outlier_detection,omitempty"`
	// RetryBudget bounds retries of idempotent calls on another instance.
	RetryBudget RetryBudget `json:"retry_budget,omitempty"`
	// Timeouts of forwarded calls.
	Timeouts Timeouts `json:"timeouts,omitempty"`
	// Cache stores GET/HEAD answers by RFC 9111 (off unless enabled).
	Cache Cache `json:"cache,omitempty"`
	// GatewayRateLimit bounds all gateway calls to the service together
	// (every consumer, per replica); 0: unlimited.
	GatewayRateLimit RateLimit `json:"rate_limit,omitempty"`
	// MaxRequestBodyBytes bounds a forwarded request body (413 beyond);
	// 0 means DefaultGatewayBodyBytes.
	MaxRequestBodyBytes int64 `json:"max_request_body_bytes,omitempty"`
}

// RateLimit is a token bucket: RPS requests per second, at most Burst at
// once (default: RPS rounded up). A limit without rps is not set: it
// inherits the "*" entry's, then DefaultTenant's (see limits.go); zero
// never means unlimited. Unlimited: true is the only way to lift a limit.
type RateLimit struct {
	RPS       float64 `json:"rps,omitempty"`
	Burst     int     `json:"burst,omitempty"`
	Unlimited bool    `json:"unlimited,omitempty"`
}

// TokenBudget bounds the model tokens (prompt + completion) a tenant may
// use per UTC day and month; 0 means unlimited.
type TokenBudget struct {
	Daily   int64 `json:"daily,omitempty"`
	Monthly int64 `json:"monthly,omitempty"`
}

// Tenant is the configuration of one tenant.
type Tenant struct {
	// Name is the key under tenants (filled in by Load).
	Name string `json:"-"`
	// AllowInlineDefinitions lets the tenant submit definitions inline
	// with a start request instead of by name.
	AllowInlineDefinitions bool `json:"allow_inline_definitions,omitempty"`
	// AllowURLs lets http steps call a url instead of a registered service,
	// when the URL's host matches AllowedHosts.
	AllowURLs bool `json:"allow_urls,omitempty"`
	// AllowedHosts are "host", "host:port" or "*.domain" patterns.
	AllowedHosts []string `json:"allowed_hosts,omitempty"`
	// AllowLoopback additionally allows loopback hosts (localhost,
	// 127.0.0.0/8, ::1) on any port: for the dev tenant. Loopback,
	// link-local and unspecified addresses are refused otherwise, even
	// when listed.
	AllowLoopback bool `json:"allow_loopback,omitempty"`
	// RateLimit applies to all the tenant's requests together; KeyRateLimit
	// to each API key of the tenant.
	RateLimit    RateLimit `json:"rate_limit,omitempty"`
	KeyRateLimit RateLimit `json:"key_rate_limit,omitempty"`
	// TokenBudget bounds model usage.
	TokenBudget TokenBudget `json:"token_budget,omitempty"`
	// MaxPublishedDefinitions bounds the versions the tenant may publish
	// through the API; 0 means DefaultMaxPublished.
	MaxPublishedDefinitions int `json:"max_published_definitions,omitempty"`
	// Uses lists what the tenant may call besides what it owns: a tenant
	// with no list reaches no service, MCP server, model or config-dir
	// definition (see access.go).
	Uses Uses `json:"uses,omitempty"`
	// Limits bound the work of each of the tenant's orchestrations (items
	// per foreach, step executions, calls at once); unset ones take the
	// "*" entry's, then definition.DefaultRunLimits (see RunLimits).
	Limits definition.RunLimits `json:"limits,omitempty"`
}

// MCPServer is an external MCP server reachable over streamable HTTP.
type MCPServer struct {
	// Name is the key under mcp_servers (filled in by Load).
	Name string `json:"-"`
	// Owner is the tenant that owns the server (see Service.Owner).
	Owner string `json:"owner,omitempty"`
	// Description is shown in catalogues.
	Description string `json:"description,omitempty"`
	// URL is the server's streamable HTTP endpoint.
	URL string `json:"url"`
	// Headers are sent with every request; values may hold secret
	// references like service headers.
	Headers map[string]string `json:"headers,omitempty"`
	// Timeout is the default timeout of one tool call.
	Timeout definition.Duration `json:"timeout,omitempty"`
}

// DefaultMaxPublished is the default bound of API-published versions per
// tenant.
const DefaultMaxPublished = 500

// DefaultTenant returns the configuration a tenant missing from
// gateflow.yaml gets when there is no "*" entry: no inline definitions, no
// URLs, 50 requests/s (burst 100) per tenant and 20/s (burst 40) per key,
// unlimited tokens.
func DefaultTenant(name string) Tenant {
	return Tenant{
		Name:                    name,
		RateLimit:               RateLimit{RPS: 50, Burst: 100},
		KeyRateLimit:            RateLimit{RPS: 20, Burst: 40},
		MaxPublishedDefinitions: DefaultMaxPublished,
	}
}

// MaxPublished is the bound of API-published versions for the tenant.
func (t Tenant) MaxPublished() int {
	if t.MaxPublishedDefinitions <= 0 {
		return DefaultMaxPublished
	}
	return t.MaxPublishedDefinitions
}

// decodeConfig reads gateflow.yaml: unknown fields are reported with their
// paths, like in definitions.
func decodeConfig(data []byte) (Config, []definition.Problem) {
	var cfg Config
	tree, err := definition.DecodeDocument(data)
	if err != nil {
		return cfg, []definition.Problem{{Message: err.Error()}}
	}
	if tree == nil {
		return cfg, nil // an empty file is an empty config
	}
	return cfg, DecodeTree(tree, &cfg)
}

// DecodeTree decodes a document tree (from definition.DecodeDocument) into
// dst, a pointer to a struct with json tags, the way every file of the
// config directory is read: keys that are not fields and values of the
// wrong type are reported as problems located by their path ("tenants.acme.
// rate_limit.rps"), never as a Go decoding error.
func DecodeTree(tree any, dst any) []definition.Problem {
	var problems []definition.Problem
	checkFields(tree, reflect.TypeOf(dst), "", &problems)
	if len(problems) > 0 {
		return problems
	}
	raw, err := json.Marshal(tree)
	if err == nil {
		err = json.Unmarshal(raw, dst)
	}
	if err != nil {
		var te *json.UnmarshalTypeError
		if ok := asTypeError(err, &te); ok {
			return []definition.Problem{{Path: te.Field, Message: fmt.Sprintf("must be %s, not %s", kindName(te.Type), te.Value)}}
		}
		return []definition.Problem{{Message: err.Error()}}
	}
	return nil
}

func asTypeError(err error, te **json.UnmarshalTypeError) bool {
	t, ok := err.(*json.UnmarshalTypeError)
	if ok {
		*te = t
	}
	return ok
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Int16, reflect.Int8, reflect.Uint, reflect.Uint64, reflect.Uint32, reflect.Uint16, reflect.Uint8:
		return "an integer"
	case reflect.Float64, reflect.Float32:
		return "a number"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice:
		return "a list"
	}
	return t.String()
}

// checkFields reports keys of tree that are not JSON fields of t.
func checkFields(tree any, t reflect.Type, path string, problems *[]definition.Problem) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := tree.(map[string]any)
		if !ok {
			return // type errors are reported by the decoder
		}
		fields := map[string]reflect.Type{}
		structFields(t, fields)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ft, ok := fields[k]
			if !ok {
				*problems = append(*problems, definition.Problem{Path: joinPath(path, k), Message: "unknown field"})
				continue
			}
			checkFields(m[k], ft, joinPath(path, k), problems)
		}
	case reflect.Map:
		m, ok := tree.(map[string]any)
		if !ok {
			return
		}
		for k, v := range m {
			checkFields(v, t.Elem(), joinPath(path, k), problems)
		}
	case reflect.Slice:
		l, ok := tree.([]any)
		if !ok {
			return
		}
		for i, v := range l {
			checkFields(v, t.Elem(), fmt.Sprintf("%s[%d]", path, i), problems)
		}
	}
}

// structFields adds the JSON fields of struct t to fields, those of
// embedded structs included (encoding/json flattens them).
func structFields(t reflect.Type, fields map[string]reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			name, _, _ = strings.Cut(f.Tag.Get("yaml"), ",")
		}
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			structFields(f.Type, fields)
			continue
		}
		if !f.IsExported() || name == "-" || name == "" {
			continue
		}
		fields[name] = f.Type
	}
}

var identKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

func joinPath(path, key string) string {
	if !identKey.MatchString(key) {
		return path + "[" + strconv.Quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// validate checks the configuration and fills in names.
func (c *Config) validate() []definition.Problem {
	var ps []definition.Problem
	add := func(path, format string, args ...any) {
		ps = append(ps, definition.Problem{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	for _, name := range sortedKeys(c.Services) {
		s := c.Services[name]
		s.Name = name
		p := joinPath("services", name)
		if !definition.NamePattern.MatchString(name) {
			add(p, "service names are letters, digits, '.', '_' or '-'")
		}
		if s.BaseURL == "" && len(s.Instances) > 0 {
			// http steps call the first instance.
			s.BaseURL = s.Instances[0].BaseURL
		}
		if s.BaseURL == "" {
			add(p+".base_url", "required (or instances)")
		} else if err := definition.CheckHTTPURL(s.BaseURL); err != nil {
			add(p+".base_url", "%v", err)
		}
		ps = append(ps, s.gatewayProblems(p)...)
		ps = append(ps, headerProblems(p+".headers", s.Headers)...)
		ps = append(ps, definition.DurationProblems(p+".timeout", s.Timeout, 24*time.Hour)...)
		if s.Retry != nil {
			ps = append(ps, s.Retry.Problems(p+".retry")...)
		}
		if s.MaxResponseBytes < 0 || s.MaxResponseBytes > activities.MaxOutputBytes {
			add(p+".max_response_bytes", "must be between 0 (the worker's --max-response-bytes) and %d (a call's output must fit Temporal's 2 MiB payload limit)", activities.MaxOutputBytes)
		}
		if s.Owner != "" && !definition.TenantPattern.MatchString(s.Owner) {
			add(p+".owner", "must be a tenant name (%s)", definition.TenantPattern)
		}
		c.Services[name] = s
	}
	for _, name := range sortedKeys(c.Tenants) {
		t := c.Tenants[name]
		t.Name = name
		p := joinPath("tenants", name)
		if name != "*" && !definition.TenantPattern.MatchString(name) {
			add(p, "tenant names are lower-case letters, digits, '_' or '-' (%s), as in API keys", definition.TenantPattern)
		}
		for i, h := range t.AllowedHosts {
			if err := checkHostPattern(h); err != nil {
				add(fmt.Sprintf("%s.allowed_hosts[%d]", p, i), "%v", err)
			}
		}
		for _, field := range []string{"key_rate_limit", "rate_limit"} {
			rl := t.RateLimit
			if field == "key_rate_limit" {
				rl = t.KeyRateLimit
			}
			ps = append(ps, rl.problems(p+"."+field)...)
		}
		if t.TokenBudget.Daily < 0 {
			add(p+".token_budget.daily", "must not be negative")
		}
		if t.TokenBudget.Monthly < 0 {
			add(p+".token_budget.monthly", "must not be negative")
		}
		if t.MaxPublishedDefinitions < 0 {
			add(p+".max_published_definitions", "must not be negative")
		}
		ps = append(ps, c.usesProblems(p+".uses", t.Uses)...)
		ps = append(ps, t.Limits.Problems(p+".limits")...)
		c.Tenants[name] = t
	}
	if err := c.Models.Validate(); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			add("models", "%s", line)
		}
	}
	for _, name := range sortedKeys(c.MCPServers) {
		m := c.MCPServers[name]
		m.Name = name
		p := joinPath("mcp_servers", name)
		if !definition.NamePattern.MatchString(name) {
			add(p, "MCP server names are letters, digits, '.', '_' or '-'")
		}
		if m.URL == "" {
			add(p+".url", "required")
		} else if err := definition.CheckHTTPURL(m.URL); err != nil {
			add(p+".url", "%v", err)
		}
		ps = append(ps, headerProblems(p+".headers", m.Headers)...)
		ps = append(ps, definition.DurationProblems(p+".timeout", m.Timeout, 24*time.Hour)...)
		if m.Owner != "" && !definition.TenantPattern.MatchString(m.Owner) {
			add(p+".owner", "must be a tenant name (%s)", definition.TenantPattern)
		}
		c.MCPServers[name] = m
	}
	ps = append(ps, c.validateEvents()...)
	if len(ps) == 0 {
		c.inheritLimits()
	}
	return ps
}

func headerProblems(path string, h map[string]string) []definition.Problem {
	var ps []definition.Problem
	for _, k := range sortedKeys(h) {
		p := joinPath(path, k)
		if !definition.ValidHeaderName(k) {
			ps = append(ps, definition.Problem{Path: p, Message: "not a valid header name"})
		}
		if err := checkSecretRefs(h[k]); err != nil {
			ps = append(ps, definition.Problem{Path: p, Message: err.Error()})
		}
	}
	return ps
}

// checkSecretRefs checks the syntax of ${env:NAME} and ${file:/path}
// references (their values are only read at call time).
func checkSecretRefs(v string) error {
	rest := v
	for {
		i := strings.Index(rest, "${")
		if i < 0 {
			return nil
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return fmt.Errorf("unterminated secret reference (want ${env:NAME} or ${file:/path})")
		}
		ref := rest[i+2 : i+j]
		kind, arg, ok := strings.Cut(ref, ":")
		switch {
		case ok && kind == "env" && arg != "":
		case ok && kind == "file" && strings.HasPrefix(arg, "/"):
		default:
			return fmt.Errorf("bad secret reference ${%s} (want ${env:NAME} or ${file:/absolute/path})", ref)
		}
		rest = rest[i+j+1:]
	}
}

var hostLabel = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// checkHostPattern accepts "host", "host:port", "*.domain" and IP
// literals (IPv6 in brackets when a port is given).
func checkHostPattern(p string) error {
	host, port := p, ""
	if h, pt, err := net.SplitHostPort(p); err == nil {
		host, port = h, pt
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("bad port in %q", p)
		}
	}
	if net.ParseIP(strings.Trim(host, "[]")) != nil {
		return nil
	}
	host = strings.TrimPrefix(host, "*.")
	if host == "" {
		return fmt.Errorf("empty host")
	}
	for _, label := range strings.Split(host, ".") {
		if !hostLabel.MatchString(label) {
			return fmt.Errorf("%q is not a host name, host:port or *.domain", p)
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
