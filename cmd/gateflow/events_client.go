package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/spf13/cobra"

	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/ingress/client"
	"github.com/gateflow/gateflow/workflows/definition"
)

// Client commands of schedules, events and triggers.

// readSpecFile decodes a YAML or JSON file ("-": stdin) into dst, with
// every unknown field or wrong type located by its path.
func readSpecFile(cmd *cobra.Command, path string, dst any) error {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(cmd.InOrStdin())
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return err
	}
	tree, err := definition.DecodeDocument(data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if ps := sysconfig.DecodeTree(tree, dst); len(ps) > 0 {
		return &definition.ValidationError{Subject: path, Problems: ps}
	}
	return nil
}

func newSchedulesCmd() *cobra.Command {
	f := &apiFlags{}
	cmd := apiCmd(f, "schedules", "List your tenant's schedules with their next runs", cobra.NoArgs,
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, _ []string) error {
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			list, err := c.Schedules(tctx)
			if err != nil {
				return err
			}
			if f.json() {
				return printJSON(cmd.OutOrStdout(), list)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tDEFINITION\tWHEN\tSTATE\tRUNS\tNEXT RUN\tSOURCE")
			for _, s := range list.Items {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", s.ID, s.Definition, scheduleWhen(s), scheduleState(s), s.Actions, nextRun(s), s.Source)
			}
			return tw.Flush()
		})
	show := func(cmd *cobra.Command, s client.Schedule) error {
		if f.json() {
			return printJSON(cmd.OutOrStdout(), s)
		}
		w := cmd.OutOrStdout()
		fmt.Fprintf(w, "%s: %s (%s) %s, %s, %d runs; next %s\n", s.ID, s.Definition, scheduleWhen(s), scheduleState(s), s.Source, s.Actions, nextRun(s))
		for _, r := range s.RecentRuns {
			fmt.Fprintf(w, "  ran %s  %s\n", r.ScheduledAt.Format(time.RFC3339), r.WorkflowID)
		}
		return nil
	}
	get := apiSubCmd(f, "get ID", "Show a schedule", cobra.ExactArgs(1),
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			s, err := c.Schedule(tctx, args[0])
			if err != nil {
				return err
			}
			return show(cmd, s)
		})
	var file string
	create := apiSubCmd(f, "create -f FILE", "Create a schedule from a YAML or JSON file (id, definition, cron or interval, input, ...; admin)", cobra.NoArgs,
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, _ []string) error {
			var req client.ScheduleRequest
			if err := readSpecFile(cmd, file, &req); err != nil {
				return err
			}
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			s, err := c.CreateSchedule(tctx, req)
			if err != nil {
				return err
			}
			return show(cmd, s)
		})
	create.Flags().StringVarP(&file, "file", "f", "-", "spec file (- for stdin)")
	update := apiSubCmd(f, "update ID -f FILE", "Replace a schedule's spec (admin)", cobra.ExactArgs(1),
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
			var spec client.ScheduleSpec
			if err := readSpecFile(cmd, file, &spec); err != nil {
				return err
			}
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			s, err := c.UpdateSchedule(tctx, args[0], spec)
			if err != nil {
				return err
			}
			return show(cmd, s)
		})
	update.Flags().StringVarP(&file, "file", "f", "-", "spec file (- for stdin)")
	del := apiSubCmd(f, "delete ID", "Delete a schedule (admin)", cobra.ExactArgs(1),
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			if err := c.DeleteSchedule(tctx, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", args[0])
			return nil
		})
	var note string
	pause := apiSubCmd(f, "pause ID", "Pause a schedule (admin)", cobra.ExactArgs(1),
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			s, err := c.PauseSchedule(tctx, args[0], note)
			if err != nil {
				return err
			}
			return show(cmd, s)
		})
	pause.Flags().StringVar(&note, "note", "", "why")
	resume := apiSubCmd(f, "resume ID", "Resume a paused schedule (admin)", cobra.ExactArgs(1),
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			s, err := c.ResumeSchedule(tctx, args[0], note)
			if err != nil {
				return err
			}
			return show(cmd, s)
		})
	resume.Flags().StringVar(&note, "note", "", "why")
	var overlap string
	trigger := apiSubCmd(f, "trigger ID", "Start a run now", cobra.ExactArgs(1),
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			if err := c.TriggerSchedule(tctx, args[0], overlap); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "triggered %s\n", args[0])
			return nil
		})
	trigger.Flags().StringVar(&overlap, "overlap", "", "overlap policy for this run (default allow_all)")
	var from, to string
	backfill := apiSubCmd(f, "backfill ID --from TIME --to TIME", "Start at once the runs of [from, to) (admin)", cobra.ExactArgs(1),
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
			req := client.BackfillRequest{Overlap: overlap}
			var err error
			if req.From, err = time.Parse(time.RFC3339, from); err != nil {
				return fmt.Errorf("--from %q: want an RFC 3339 time", from)
			}
			if req.To, err = time.Parse(time.RFC3339, to); err != nil {
				return fmt.Errorf("--to %q: want an RFC 3339 time", to)
			}
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			n, err := c.BackfillSchedule(tctx, args[0], req)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "backfilling %s: %d runs\n", args[0], n)
			return nil
		})
	backfill.Flags().StringVar(&from, "from", "", "start of the range (RFC 3339, inclusive)")
	backfill.Flags().StringVar(&to, "to", "", "end of the range (RFC 3339, exclusive)")
	backfill.Flags().StringVar(&overlap, "overlap", "", "overlap policy (default allow_all)")
	cmd.AddCommand(get, create, update, del, pause, resume, trigger, backfill)
	return cmd
}

func scheduleWhen(s client.Schedule) string {
	if s.Cron != "" {
		if s.Timezone != "" {
			return s.Cron + " " + s.Timezone
		}
		return s.Cron
	}
	return "every " + string(s.Interval)
}

func scheduleState(s client.Schedule) string {
	if s.Paused {
		return "paused"
	}
	return "active"
}

func nextRun(s client.Schedule) string {
	if s.Paused || len(s.NextRuns) == 0 {
		return "-"
	}
	return s.NextRuns[0].Format(time.RFC3339)
}

func newEventsCmd() *cobra.Command {
	root := &cobra.Command{Use: "events", Short: "Send events to the event steps waiting for them"}
	f := &apiFlags{}
	var payload, id, ttl string
	var strict bool
	send := apiCmd(f, "send NAME KEY [--payload JSON]", "Send an event: the oldest step waiting for NAME with correlation key KEY resumes with the payload", cobra.ExactArgs(2),
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
			req := client.EventRequest{Name: args[0], Key: args[1], ID: id, TTL: definition.Duration(ttl), Strict: strict}
			if payload != "" {
				if !json.Valid([]byte(payload)) {
					return errors.New("--payload is not valid JSON")
				}
				req.Payload = json.RawMessage(payload)
			}
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			res, err := c.SendEvent(tctx, req)
			if err != nil {
				return err
			}
			if f.json() {
				return printJSON(cmd.OutOrStdout(), res)
			}
			switch {
			case res.Duplicate:
				fmt.Fprintf(cmd.OutOrStdout(), "event %s was sent before (duplicate id)\n", res.ID)
			case res.Delivered:
				fmt.Fprintf(cmd.OutOrStdout(), "event %s resumed %s step %s\n", res.ID, res.WorkflowID, res.StepID)
			default:
				fmt.Fprintf(cmd.OutOrStdout(), "event %s accepted: it resumes a waiting step now, or the first to wait within its TTL\n", res.ID)
			}
			return nil
		})
	send.Flags().StringVar(&payload, "payload", "", "JSON payload (the output of the step it resumes)")
	send.Flags().StringVar(&id, "id", "", "event id (a second event with the same id is dropped)")
	send.Flags().StringVar(&ttl, "ttl", "", "how long it waits for a step when none waits (default 24h, at most 168h)")
	send.Flags().BoolVar(&strict, "strict", false, "deliver only to a step waiting now (else fail, keeping nothing)")
	root.AddCommand(send)
	return root
}

func newTriggersListCmd() *cobra.Command {
	f := &apiFlags{}
	return apiCmd(f, "list", "List your tenant's topic triggers and webhooks", cobra.NoArgs,
		func(ctx context.Context, c *client.Client, cmd *cobra.Command, _ []string) error {
			tctx, cancel := withTimeout(ctx)
			defer cancel()
			list, err := c.Triggers(tctx)
			if err != nil {
				return err
			}
			if f.json() {
				return printJSON(cmd.OutOrStdout(), list)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tKIND\tSOURCE\tACTION\tFILTER")
			for _, t := range list.Items {
				src := t.Topic
				if t.Kind == "webhook" {
					src = "POST " + t.Path + " (" + t.Scheme + ")"
				}
				act := "start " + t.Starts
				if t.Event != "" {
					act = "event " + t.Event
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Name, t.Kind, src, act, strings.ReplaceAll(t.Filter, "\n", " "))
			}
			return tw.Flush()
		})
}

// newProduceCmd writes one message to a Kafka topic: a way to try topic
// triggers without another tool.
func newProduceCmd() *cobra.Command {
	var brokers []string
	var key string
	var headers []string
	cmd := &cobra.Command{
		Use:   "produce TOPIC VALUE [--key K] [--header k=v]",
		Short: "Write one message to a Kafka topic (to try topic triggers)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			msg := kafka.Message{Key: []byte(key), Value: []byte(args[1])}
			for _, h := range headers {
				k, v, ok := strings.Cut(h, "=")
				if !ok {
					return fmt.Errorf("--header %q: want key=value", h)
				}
				msg.Headers = append(msg.Headers, kafka.Header{Key: k, Value: []byte(v)})
			}
			w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: args[0], Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
				BatchTimeout: 5 * time.Millisecond}
			defer w.Close()
			tctx, cancel := withTimeout(cmd.Context())
			defer cancel()
			if err := w.WriteMessages(tctx, msg); err != nil {
				return fmt.Errorf("produce to %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote 1 message to %s\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&brokers, "kafka-brokers", []string{"127.0.0.1:9092"}, "Kafka bootstrap brokers")
	cmd.Flags().StringVar(&key, "key", "", "message key")
	cmd.Flags().StringArrayVar(&headers, "header", nil, "message header key=value (repeatable)")
	return cmd
}
