package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gateflow/gateflow/ingress/client"
	"github.com/gateflow/gateflow/workflows/definition/yamlread"
	"github.com/gateflow/gateflow/workflows/wire"
)

// The CLI of the API catalogue (docs/CATALOG.md): `gateflow catalog ...`
// for APIs and calls, `gateflow subscriptions ...` for grants, and
// `gateflow api-keys ...` for keys created through the API.

// readSpec reads a YAML or JSON file into dst strictly (unknown fields are
// refused), through the one bounded YAML reader.
func readSpec(path string, dst any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	tree, err := yamlread.ReadTree(b, yamlread.DefaultLimits())
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	raw, err := json.Marshal(tree)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func versionStates(vs []wire.VersionState) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = v.Version + ":" + v.State
	}
	return strings.Join(parts, " ")
}

func newCatalogCmd() *cobra.Command {
	f := &apiFlags{}
	var filter client.CatalogFilter
	cmd := apiCmd(f, "catalog [TEXT]", "Search the API catalogue: your APIs and the shared ones of other tenants", cobra.MaximumNArgs(1),
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				filter.Text = args[0]
			}
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			list, err := c.CatalogSearch(tctx, filter)
			if err != nil {
				return err
			}
			if f.json() {
				return printJSON(cmd.OutOrStdout(), list)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "API\tOWNER\tKIND\tVERSIONS\tYOUR SUBSCRIPTION\tTITLE")
			for _, a := range list.Items {
				sub := ""
				if a.Subscription != nil {
					sub = a.Subscription.State + " (" + a.Subscription.Plan + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.Name, a.Owner, a.Kind, versionStates(a.Versions), sub, a.Title)
			}
			return tw.Flush()
		})
	cmd.Flags().StringSliceVar(&filter.Tags, "tag", nil, "tags the APIs must have")
	cmd.Flags().StringVar(&filter.Kind, "kind", "", "service, orchestration, prompt or model")
	cmd.Flags().StringVar(&filter.Owner, "owner", "", "owner tenant")
	cmd.Flags().StringVar(&filter.State, "state", "", "APIs with a version in this state")

	show := apiSubCmd(f, "show API", "Show an API: versions, states, docs, plans, history, your subscriptions", cobra.ExactArgs(1),
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			d, err := c.CatalogGet(tctx, args[0])
			if err != nil {
				return err
			}
			if f.json() {
				return printJSON(cmd.OutOrStdout(), d)
			}
			return printAPI(cmd, d)
		})
	create := apiSubCmd(f, "create FILE", "Publish a new API from a YAML or JSON file (its first version is a draft; admin)", cobra.ExactArgs(1),
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
			var req client.CreateAPIRequest
			if err := readSpec(args[0], &req); err != nil {
				return err
			}
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			a, err := c.CatalogCreate(tctx, req)
			return printAPIChange(cmd, f, a, err, "created API %s (version %s is a draft)", a.Name, req.Version.Version)
		})
	update := apiSubCmd(f, "update API FILE", "Change an API's title, description, tags, docs, visibility, plans or approvers from a file (admin)", cobra.ExactArgs(2),
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
			var req client.UpdateAPIRequest
			if err := readSpec(args[1], &req); err != nil {
				return err
			}
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			a, err := c.CatalogUpdate(tctx, args[0], req)
			return printAPIChange(cmd, f, a, err, "updated API %s", args[0])
		})
	version := apiSubCmd(f, "version API FILE", "Add a version (a draft) to an API from a file (admin)", cobra.ExactArgs(2),
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
			var spec client.APIVersionSpec
			if err := readSpec(args[1], &spec); err != nil {
				return err
			}
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			a, err := c.CatalogAddVersion(tctx, args[0], spec)
			return printAPIChange(cmd, f, a, err, "added version %s to API %s (a draft)", spec.Version, args[0])
		})
	cmd.AddCommand(show, create, update, version)
	for _, state := range []string{wire.StatePublished, wire.StateDeprecated, wire.StateRetired} {
		cmd.AddCommand(newMoveCmd(f, state))
	}
	cmd.AddCommand(newCallCmd(f), newCallStatusCmd(f))
	return cmd
}

// newMoveCmd moves a version to state: `catalog publish|deprecate|retire`.
func newMoveCmd(f *apiFlags, state string) *cobra.Command {
	verb := map[string]string{wire.StatePublished: "publish", wire.StateDeprecated: "deprecate", wire.StateRetired: "retire"}[state]
	var req client.TransitionRequest
	var sunset string
	short := map[string]string{
		wire.StatePublished:  "Publish a version (from draft, or take back a deprecation; admin)",
		wire.StateDeprecated: "Deprecate a published version: its answers carry Deprecation, Sunset and Link headers (admin)",
		wire.StateRetired:    "Retire a deprecated version (or drop a draft): its calls answer 410 Gone (admin)",
	}[state]
	cmd := apiSubCmd(f, verb+" API VERSION", short, cobra.ExactArgs(2),
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
			req.State = state
			if sunset != "" {
				t, err := time.Parse(time.RFC3339, sunset)
				if err != nil {
					return fmt.Errorf("--sunset %q: want an RFC 3339 time", sunset)
				}
				req.Sunset = &t
			}
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			a, err := c.CatalogTransition(tctx, args[0], args[1], req)
			return printAPIChange(cmd, f, a, err, "version %s of API %s is %s", args[1], args[0], state)
		})
	cmd.Flags().StringVar(&req.Reason, "reason", "", "why, kept in the API's history")
	if state != wire.StatePublished {
		cmd.Flags().StringVar(&req.Successor, "successor", "", "the version consumers should move to (published)")
	}
	if state == wire.StateDeprecated {
		cmd.Flags().StringVar(&sunset, "sunset", "", "planned retirement, RFC 3339 (default: in 90 days)")
	}
	return cmd
}

func newCallCmd(f *apiFlags) *cobra.Command {
	var version, input string
	cmd := apiSubCmd(f, "call API", "Call an orchestration, prompt or model API (yours, or one you hold an active grant for)", cobra.ExactArgs(1),
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
			var body any = map[string]any{}
			if input != "" {
				body = json.RawMessage(input)
				if !json.Valid(body.(json.RawMessage)) {
					return fmt.Errorf("--input: not valid JSON")
				}
			}
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			res, err := c.CatalogCall(tctx, args[0], version, body)
			if err != nil {
				return err
			}
			if res.Deprecation != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: this version is deprecated (sunset %s; %s)\n", res.Sunset, strings.Join(res.Link, ", "))
			}
			var v any
			if err := json.Unmarshal(res.Body, &v); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), v)
		})
	cmd.Flags().StringVar(&version, "version", "", "version to call (default: the newest published)")
	cmd.Flags().StringVar(&input, "input", "", "the input, variables or chat request, as JSON")
	return cmd
}

func newCallStatusCmd(f *apiFlags) *cobra.Command {
	return apiSubCmd(f, "call-status API ID", "Status of an orchestration you started through an API", cobra.ExactArgs(2),
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			st, err := c.CatalogCallStatus(tctx, args[0], args[1])
			if err != nil {
				return err
			}
			if f.json() {
				return printJSON(cmd.OutOrStdout(), st)
			}
			return printStatus(cmd.OutOrStdout(), st)
		})
}

func printAPIChange(cmd *cobra.Command, f *apiFlags, a client.API, err error, format string, args ...any) error {
	if err != nil {
		return err
	}
	if f.json() {
		return printJSON(cmd.OutOrStdout(), a)
	}
	fmt.Fprintf(cmd.OutOrStdout(), format+"\n", args...)
	return nil
}

func printAPI(cmd *cobra.Command, d client.APIDetail) error {
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "%s — %s\nowner %s, %s API, %s\n", d.Name, d.Title, d.Owner, d.Kind, d.Visibility)
	if d.Description != "" {
		fmt.Fprintf(w, "%s\n", d.Description)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nVERSION\tSTATE\tTARGET\tSUCCESSOR\tSUNSET")
	for _, v := range d.Versions {
		sunset := ""
		if v.Sunset != nil {
			sunset = v.Sunset.Format(time.RFC3339)
		}
		t := v.Target
		target := strings.TrimSpace(strings.Join([]string{t.Service, joinAt(t.Definition, t.DefinitionVersion), joinAt(t.Prompt, t.PromptVersion), t.Model}, " "))
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.Version, v.State, target, v.Successor, sunset)
	}
	fmt.Fprintln(tw, "\nPLAN\tRATE LIMIT\tDAILY\tMONTHLY")
	for _, p := range d.Plans {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Name, orUnlimited(p.RateLimit.RPS, "/s"), orUnlimited(float64(p.Quota.Daily), ""), orUnlimited(float64(p.Quota.Monthly), ""))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	approval := "none (granted at once)"
	if !d.Approval.None {
		approval = approversText(d.Approval.Approvers.Roles, d.Approval.Approvers.Users)
	}
	fmt.Fprintf(w, "\napproval: %s\n", approval)
	for _, s := range d.Subscriptions {
		fmt.Fprintf(w, "your subscription %s: %s (plan %s)\n", s.ID, s.State, s.Plan)
	}
	if len(d.History) > 0 {
		fmt.Fprintln(w, "\nhistory:")
		for _, e := range d.History {
			fmt.Fprintf(w, "  %s %s %s %s %s→%s %s\n", e.At.Format(time.RFC3339), e.By, e.Action, e.Version, e.From, e.To, e.Reason)
		}
	}
	return nil
}

func joinAt(name, version string) string {
	if name == "" {
		return ""
	}
	return name + "@" + version
}

func orUnlimited(v float64, unit string) string {
	if v <= 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%g%s", v, unit)
}

func newSubscribeCmd() *cobra.Command {
	f := &apiFlags{}
	var req client.SubscribeRequest
	cmd := apiCmd(f, "subscribe API --plan PLAN", "Request a subscription to a shared API for your tenant (or --app) (admin)", cobra.ExactArgs(1),
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			s, err := c.Subscribe(tctx, args[0], req)
			if err != nil {
				return err
			}
			if f.json() {
				return printJSON(cmd.OutOrStdout(), s)
			}
			if s.State == wire.SubscriptionPending {
				fmt.Fprintf(cmd.OutOrStdout(), "subscription %s requested: waiting for %s's approvers\n", s.ID, s.Owner)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "subscription %s is %s\n", s.ID, s.State)
			}
			return nil
		})
	cmd.Flags().StringVar(&req.Plan, "plan", "", "one of the API's plans")
	cmd.Flags().StringVar(&req.App, "app", "", "subscribe for this app of your tenant (a group of its keys) instead of the whole tenant")
	cmd.Flags().StringVar(&req.Reason, "reason", "", "why, shown to the approvers")
	return cmd
}

func newSubscriptionsCmd() *cobra.Command {
	f := &apiFlags{}
	var as, api, state string
	cmd := apiCmd(f, "subscriptions", "List your subscriptions (or, with --as owner, those to your APIs)", cobra.NoArgs,
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, _ []string) error {
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			list, err := c.ListSubscriptions(tctx, as, api, state)
			if err != nil {
				return err
			}
			if f.json() {
				return printJSON(cmd.OutOrStdout(), list)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tAPI\tOWNER\tCONSUMER\tPLAN\tSTATE\tAPPROVAL RUN\tREQUESTED")
			for _, s := range list.Items {
				consumer := s.Consumer
				if s.App != "" {
					consumer += "/" + s.App
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.API, s.Owner, consumer, s.Plan, s.State, s.WorkflowID, s.RequestedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		})
	cmd.Flags().StringVar(&as, "as", "consumer", "consumer (yours) or owner (to your APIs)")
	cmd.Flags().StringVar(&api, "api", "", "only this API")
	cmd.Flags().StringVar(&state, "state", "", "only this state: pending, active, rejected, revoked, cancelled")
	show := apiSubCmd(f, "show ID", "Show a subscription with its history", cobra.ExactArgs(1),
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			s, err := c.GetSubscription(tctx, args[0])
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), s)
		})
	cmd.AddCommand(show, newEndSubscriptionCmd(f, "revoke"), newEndSubscriptionCmd(f, "cancel"))
	return cmd
}

func newEndSubscriptionCmd(f *apiFlags, verb string) *cobra.Command {
	var reason string
	short := "Revoke a subscription to one of your APIs (admin)"
	if verb == "cancel" {
		short = "Cancel one of your subscriptions, pending or active (admin)"
	}
	cmd := apiSubCmd(f, verb+" ID", short, cobra.ExactArgs(1),
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			end := c.RevokeSubscription
			if verb == "cancel" {
				end = c.CancelSubscription
			}
			s, err := end(tctx, args[0], reason)
			if err != nil {
				return err
			}
			if f.json() {
				return printJSON(cmd.OutOrStdout(), s)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "subscription %s is %s\n", s.ID, s.State)
			return nil
		})
	cmd.Flags().StringVar(&reason, "reason", "", "why, kept in the subscription's history")
	return cmd
}

func newAPIKeysCmd() *cobra.Command {
	f := &apiFlags{}
	cmd := apiCmd(f, "api-keys", "List your tenant's API keys through the API (admin): the keys file's and those created with `api-keys create`", cobra.NoArgs,
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, _ []string) error {
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			keys, err := c.Keys(tctx)
			if err != nil {
				return err
			}
			if f.json() {
				return printJSON(cmd.OutOrStdout(), keys)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tROLES\tUSER\tAPP\tSOURCE\tCREATED\tDISABLED")
			for _, k := range keys {
				created := ""
				if k.CreatedAt != nil {
					created = k.CreatedAt.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%v\n", k.ID, strings.Join(k.Roles, ","), k.User, k.App, k.Source, created, k.Disabled)
			}
			return tw.Flush()
		})
	var req client.CreateKeyRequest
	create := apiSubCmd(f, "create --roles R[,R...]", "Create a key for your tenant through the API: printed once, stored as a hash, valid on every replica (admin)", cobra.NoArgs,
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, _ []string) error {
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			k, err := c.CreateKey(tctx, req)
			if err != nil {
				return err
			}
			if f.json() {
				return printJSON(cmd.OutOrStdout(), k)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "key %s created (roles %s); it is shown only now:\n", k.ID, strings.Join(k.Roles, ","))
			fmt.Fprintln(cmd.OutOrStdout(), k.Key)
			return nil
		})
	create.Flags().StringSliceVar(&req.Roles, "roles", nil, "roles: submitter, approver, analyst, model, admin (or custom ones)")
	create.Flags().StringVar(&req.User, "user", "", "user name, used by approval steps that name users")
	create.Flags().StringVar(&req.App, "app", "", "app (a group of keys) the key belongs to, for catalogue subscriptions")
	create.Flags().StringVar(&req.Note, "note", "", "free text")
	create.Flags().Float64Var(&req.RPS, "rps", 0, "per-key rate limit (requests/s); 0 keeps the tenant's")
	create.Flags().IntVar(&req.Burst, "burst", 0, "per-key burst with --rps")
	var reason string
	disable := apiSubCmd(f, "disable ID", "Disable a key created through the API; every replica refuses it within the replication bound (admin)", cobra.ExactArgs(1),
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			k, err := c.DisableKey(tctx, args[0], reason)
			if err != nil {
				return err
			}
			if f.json() {
				return printJSON(cmd.OutOrStdout(), k)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "key %s disabled\n", k.ID)
			return nil
		})
	disable.Flags().StringVar(&reason, "reason", "", "why")
	cmd.AddCommand(create, disable)
	return cmd
}
