package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gateflow/gateflow/ingress/auth"
	"github.com/gateflow/gateflow/ingress/client"
	"github.com/gateflow/gateflow/workflows/definition"
)

// apiFlags are the flags of every API client subcommand; each also reads
// GATEFLOW_API_URL, GATEFLOW_API_KEY and GATEFLOW_OUTPUT.
type apiFlags struct {
	URL    string
	Key    string
	Output string
}

// defaultDevKeyFile is where `gateflow dev` leaves its key, relative to the
// directory it runs in.
var defaultDevKeyFile = filepath.Join(".gateflow", auth.DevKeyFile)

func (f *apiFlags) bind(cmd *cobra.Command) {
	fs := cmd.PersistentFlags()
	fs.StringVar(&f.URL, "api-url", "http://127.0.0.1:8080", "Gateflow API URL")
	fs.StringVar(&f.Key, "api-key", "", "API key (default: the key in "+defaultDevKeyFile+" when present)")
	fs.StringVarP(&f.Output, "output", "o", "table", "output: table or json")
}

func (f *apiFlags) client() (*client.Client, error) {
	if f.Output != "table" && f.Output != "json" {
		return nil, fmt.Errorf("--output %q: want table or json", f.Output)
	}
	key := f.Key
	if key == "" {
		if k, err := auth.ReadKeyFile(defaultDevKeyFile); err == nil {
			key = k
		}
	}
	if key == "" {
		return nil, errors.New("no API key: pass --api-key or set GATEFLOW_API_KEY (gateflow dev writes one to " + defaultDevKeyFile + ")")
	}
	return client.New(f.URL, key)
}

func (f *apiFlags) json() bool { return f.Output == "json" }

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// apiCmd builds a client subcommand; run gets a client and a context
// bounded by --timeout (none for streams).
func apiCmd(f *apiFlags, use, short string, args cobra.PositionalArgs, run func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error) *cobra.Command {
	cmd := apiSubCmd(f, use, short, args, run)
	f.bind(cmd)
	return cmd
}

// apiSubCmd is apiCmd for a subcommand that inherits its parent's flags.
func apiSubCmd(f *apiFlags, use, short string, args cobra.PositionalArgs, run func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			return run(cmd.Context(), c, cmd, args)
		},
	}
}

func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 60*time.Second)
}

func newAPICmds() []*cobra.Command {
	return []*cobra.Command{
		newSubmitCmd(), newStatusCmd(), newWatchCmd(), newListCmd(), newCancelCmd(),
		newApprovalsCmd(), newDecideCmd("approve"), newDecideCmd("reject"), newDefinitionsCmd(),
	}
}

func newSubmitCmd() *cobra.Command {
	f := &apiFlags{}
	var version, input, inputFile, key string
	var labels []string
	var watch bool
	cmd := apiCmd(f, "submit DEFINITION [--input JSON | --input-file FILE]", "Start an orchestration", cobra.ExactArgs(1),
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
			req := client.SubmitRequest{Definition: args[0], Version: version, IdempotencyKey: key}
			var raw []byte
			switch {
			case input != "" && inputFile != "":
				return errors.New("give --input or --input-file, not both")
			case input != "":
				raw = []byte(input)
			case inputFile == "-":
				b, err := io.ReadAll(cmd.InOrStdin())
				if err != nil {
					return err
				}
				raw = b
			case inputFile != "":
				b, err := os.ReadFile(inputFile)
				if err != nil {
					return err
				}
				raw = b
			}
			if len(raw) > 0 {
				if !json.Valid(raw) {
					return errors.New("the input is not valid JSON")
				}
				req.Input = json.RawMessage(raw)
			}
			if len(labels) > 0 {
				req.Labels = map[string]string{}
				for _, l := range labels {
					k, v, ok := strings.Cut(l, "=")
					if !ok {
						return fmt.Errorf("--label %q: want key=value", l)
					}
					req.Labels[k] = v
				}
			}
			tctx, cancel := withTimeout(ctx)
			s, err := c.Submit(tctx, req)
			cancel()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if f.json() {
				if err := printJSON(out, s); err != nil {
					return err
				}
			} else {
				note := ""
				if s.Replayed {
					note = " (already started with this idempotency key)"
				}
				fmt.Fprintf(out, "started %s (%s@%s)%s\n", s.ID, s.Definition, s.Version, note)
			}
			if watch {
				return watchStatus(ctx, c, f, out, s.ID)
			}
			return nil
		})
	fl := cmd.Flags()
	fl.StringVar(&version, "version", "", "definition version (default: latest)")
	fl.StringVar(&input, "input", "", "input as JSON")
	fl.StringVar(&inputFile, "input-file", "", "input JSON file (- for stdin)")
	fl.StringVar(&key, "idempotency-key", "", "makes retries of this submission safe")
	fl.StringArrayVar(&labels, "label", nil, "label key=value copied into call records (repeatable)")
	fl.BoolVar(&watch, "watch", false, "watch the orchestration until it closes")
	return cmd
}

func newStatusCmd() *cobra.Command {
	f := &apiFlags{}
	return apiCmd(f, "status ID", "Show an orchestration's status", cobra.ExactArgs(1),
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			st, err := c.Status(tctx, args[0])
			if err != nil {
				return err
			}
			if f.json() {
				return printJSON(cmd.OutOrStdout(), st)
			}
			return printStatus(cmd.OutOrStdout(), st)
		})
}

func printStatus(w io.Writer, st client.Status) error {
	fmt.Fprintf(w, "%s  %s@%s  %s  started %s", st.ID, st.Definition, st.Version, st.State, st.StartedAt.Format(time.RFC3339))
	if st.ClosedAt != nil {
		fmt.Fprintf(w, "  closed %s", st.ClosedAt.Format(time.RFC3339))
	}
	fmt.Fprintln(w)
	if st.Error != "" {
		fmt.Fprintf(w, "error: %s\n", st.Error)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tKIND\tSTATE\tATTEMPTS\tERROR")
	for _, s := range st.Steps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", s.ID, s.Kind, s.State, s.Attempts, s.Error)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range st.Pending {
		fmt.Fprintf(w, "waiting for approval: step %s (%s, %d of %d votes)\n", p.StepID,
			approversText(p.Approvers.Roles, p.Approvers.Users), len(p.Votes), p.Quorum)
	}
	for _, e := range st.Events {
		fmt.Fprintf(w, "waiting for event: step %s waits for %s with key %q (gateflow events send %s %s)\n", e.StepID, e.Event, e.Key, e.Event, e.Key)
	}
	if len(st.Output) > 0 {
		fmt.Fprintf(w, "output: %s\n", st.Output)
	}
	return nil
}

// approversText names who may decide an approval step: "roles manager",
// "users alice,bob", both joined by "; ", or "anyone" when it names nobody.
func approversText(roles, users []string) string {
	var parts []string
	if len(roles) > 0 {
		parts = append(parts, "roles "+strings.Join(roles, ","))
	}
	if len(users) > 0 {
		parts = append(parts, "users "+strings.Join(users, ","))
	}
	if len(parts) == 0 {
		return "anyone"
	}
	return strings.Join(parts, "; ")
}

func newWatchCmd() *cobra.Command {
	f := &apiFlags{}
	return apiCmd(f, "watch ID", "Follow an orchestration's status until it closes", cobra.ExactArgs(1),
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
			return watchStatus(ctx, c, f, cmd.OutOrStdout(), args[0])
		})
}

// watchStatus prints one line per change (table) or one JSON status per
// line (json) until the workflow closes.
func watchStatus(ctx context.Context, c *client.Client, f *apiFlags, w io.Writer, id string) error {
	final, err := c.Watch(ctx, id, func(st client.Status) error {
		if f.json() {
			b, err := json.Marshal(st)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(w, "%s\n", b)
			return err
		}
		var parts []string
		for _, s := range st.Steps {
			parts = append(parts, s.ID+"="+string(s.State))
		}
		_, err := fmt.Fprintf(w, "%s  %-10s  %s\n", time.Now().Format("15:04:05"), st.State, strings.Join(parts, " "))
		return err
	})
	if err != nil {
		return err
	}
	if !f.json() {
		if final.Error != "" {
			fmt.Fprintf(w, "closed: %s: %s\n", final.State, final.Error)
		} else {
			fmt.Fprintf(w, "closed: %s\n", final.State)
		}
	}
	return nil
}

func newListCmd() *cobra.Command {
	f := &apiFlags{}
	var o client.ListOptions
	var since time.Duration
	var all bool
	cmd := apiCmd(f, "list", "List orchestrations (running first, then the most recently closed)", cobra.NoArgs,
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, _ []string) error {
			if since > 0 {
				o.StartedAfter = time.Now().Add(-since)
			}
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			var items []client.Summary
			next := ""
			for {
				p, err := c.List(tctx, o)
				if err != nil {
					return err
				}
				items = append(items, p.Items...)
				next = p.NextCursor
				if !all || next == "" {
					break
				}
				o.Cursor = next
			}
			if f.json() {
				return printJSON(cmd.OutOrStdout(), client.Page{Items: items, NextCursor: next})
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tDEFINITION\tSTATE\tSTARTED\tCLOSED")
			for _, s := range items {
				closed := ""
				if s.ClosedAt != nil {
					closed = s.ClosedAt.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s@%s\t%s\t%s\t%s\n", s.ID, s.Definition, s.Version, s.State, s.StartedAt.Format(time.RFC3339), closed)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if next != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "more: --cursor %s (or --all)\n", next)
			}
			return nil
		})
	fl := cmd.Flags()
	fl.StringVar(&o.Status, "status", "", "running, succeeded, failed, cancelled, terminated or timed-out")
	fl.StringVar(&o.Definition, "definition", "", "definition name")
	fl.DurationVar(&since, "since", 0, "started within this duration (e.g. 1h)")
	fl.IntVar(&o.Limit, "limit", 20, "page size (1-100)")
	fl.StringVar(&o.Cursor, "cursor", "", "cursor of the next page")
	fl.BoolVar(&all, "all", false, "follow every page")
	return cmd
}

func newCancelCmd() *cobra.Command {
	f := &apiFlags{}
	return apiCmd(f, "cancel ID", "Cancel an orchestration (its compensations run)", cobra.ExactArgs(1),
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			if err := c.Cancel(tctx, args[0]); err != nil {
				return err
			}
			if f.json() {
				return printJSON(cmd.OutOrStdout(), map[string]string{"id": args[0], "state": "cancel_requested"})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cancellation of %s requested\n", args[0])
			return nil
		})
}

func newApprovalsCmd() *cobra.Command {
	f := &apiFlags{}
	return apiCmd(f, "approvals", "List the approvals waiting for you", cobra.NoArgs,
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, _ []string) error {
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			a, err := c.Approvals(tctx)
			if err != nil {
				return err
			}
			if f.json() {
				return printJSON(cmd.OutOrStdout(), a)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "WORKFLOW\tSTEP\tDEFINITION\tVOTES\tWAITING SINCE\tDEADLINE")
			for _, p := range a.Items {
				deadline := ""
				if p.Deadline != nil {
					deadline = p.Deadline.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s@%s\t%d/%d\t%s\t%s\n", p.WorkflowID, p.StepID, p.Definition, p.Version,
					len(p.Votes), p.Quorum, p.Since.Format(time.RFC3339), deadline)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if a.Truncated {
				fmt.Fprintf(cmd.OutOrStdout(), "(only the first %d running workflows were inspected)\n", a.Scanned)
			}
			return nil
		})
}

func newDecideCmd(decision string) *cobra.Command {
	f := &apiFlags{}
	var comment string
	short := "Approve a waiting approval step"
	if decision == "reject" {
		short = "Reject a waiting approval step"
	}
	cmd := apiCmd(f, decision+" ID STEP", short, cobra.ExactArgs(2),
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			res, err := c.Decide(tctx, args[0], args[1], decision, comment)
			if err != nil {
				return err
			}
			if f.json() {
				return printJSON(cmd.OutOrStdout(), res)
			}
			if res.Resolved {
				fmt.Fprintf(cmd.OutOrStdout(), "step %s %s (%d of %d votes)\n", res.StepID, res.Outcome, res.Votes, res.Quorum)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "vote recorded on step %s (%d of %d votes)\n", res.StepID, res.Votes, res.Quorum)
			}
			return nil
		})
	cmd.Flags().StringVar(&comment, "comment", "", "comment kept with the decision")
	return cmd
}

func newDefinitionsCmd() *cobra.Command {
	f := &apiFlags{}
	cmd := apiCmd(f, "definitions", "List orchestration definitions", cobra.NoArgs,
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, _ []string) error {
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			defs, err := c.Definitions(tctx)
			if err != nil {
				return err
			}
			if f.json() {
				return printJSON(cmd.OutOrStdout(), defs)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tVERSION\tSOURCE\tDESCRIPTION")
			for _, d := range defs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.Name, d.Version, d.Source, d.Description)
			}
			return tw.Flush()
		})
	get := apiSubCmd(f, "get NAME [VERSION]", "Show a definition (default: latest version)", cobra.RangeArgs(1, 2),
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
			version := "latest"
			if len(args) == 2 {
				version = args[1]
			}
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			d, err := c.Definition(tctx, args[0], version)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), d)
		})
	publish := apiSubCmd(f, "publish FILE", "Publish a definition version from a YAML or JSON file (admin)", cobra.ExactArgs(1),
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			d, err := definition.Parse(b)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			info, err := c.PublishDefinition(tctx, *d)
			if err != nil {
				return err
			}
			if f.json() {
				return printJSON(cmd.OutOrStdout(), info)
			}
			if info.Existing {
				fmt.Fprintf(cmd.OutOrStdout(), "%s@%s was already published with this content\n", info.Name, info.Version)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "published %s@%s\n", info.Name, info.Version)
			}
			return nil
		})
	cmd.AddCommand(get, publish)
	return cmd
}
