package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

type scheduleJSON struct {
	Name   string `json:"name"`
	Cron   string `json:"cron"`
	Every  string `json:"every"`
	Target struct {
		Function string `json:"function"`
		Chain    string `json:"chain"`
		Version  int    `json:"version"`
	} `json:"target"`
	Overlap    string   `json:"overlap"`
	Paused     bool     `json:"paused"`
	Note       string   `json:"note"`
	NumRuns    int      `json:"num_runs"`
	NextRuns   []string `json:"next_runs"`
	RecentRuns []struct {
		ScheduledAt string `json:"scheduled_at"`
		Link        string `json:"link"`
	} `json:"recent_runs"`
}

func (s scheduleJSON) when() string {
	if s.Cron != "" {
		return "cron " + s.Cron
	}
	return "every " + s.Every
}

func (s scheduleJSON) target() string {
	if s.Target.Chain != "" {
		return "chain " + s.Target.Chain
	}
	return "function " + s.Target.Function
}

// schedulesCommand is `ferry schedule ...`.
func schedulesCommand(cfg *clientConfig) *cobra.Command {
	root := &cobra.Command{Use: "schedule", Short: "Run functions and chains on a cron or interval schedule"}
	root.AddCommand(scheduleCreateCommand(cfg), scheduleLsCommand(cfg), scheduleGetCommand(cfg),
		scheduleActionCommand(cfg, "rm", "DELETE", "", "Delete a schedule"),
		scheduleActionCommand(cfg, "pause", "POST", "/pause", "Pause a schedule"),
		scheduleActionCommand(cfg, "resume", "POST", "/resume", "Resume a paused schedule"),
		scheduleActionCommand(cfg, "trigger", "POST", "/trigger", "Run a schedule's target now"),
		scheduleBackfillCommand(cfg))
	return root
}

func scheduleCreateCommand(cfg *clientConfig) *cobra.Command {
	var cron, every, function, chain, data, overlap, alias string
	var version int
	var paused bool
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a schedule for a function or a chain",
		Example: `  ferry schedule create nightly --cron "0 3 * * *" --chain words --data '{"text": "good night"}'
  ferry schedule create tick --every 30s --function hello --overlap skip`,
		Args: exactArgs(1, "a schedule NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			if (function == "") == (chain == "") {
				return usageError("set exactly one of --function or --chain")
			}
			body := map[string]any{"name": args[0], "overlap": overlap, "paused": paused,
				"target": map[string]any{"function": function, "chain": chain, "version": version, "alias": alias}}
			if cron != "" {
				body["cron"] = cron
			}
			if every != "" {
				body["every"] = every
			}
			if data != "" {
				payload, err := readData(data, cmd.InOrStdin())
				if err != nil {
					return err
				}
				if !json.Valid(payload) {
					return usageError("--data is not valid JSON")
				}
				body["payload"] = json.RawMessage(payload)
			}
			r, ctype := jsonBody(body)
			_, _, out, err := c.do(cmd.Context(), request{method: "POST", path: "/v1/schedules", body: r, ctype: ctype})
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(out)
			}
			var s scheduleJSON
			if err := jsonUnmarshal(out, &s); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "created schedule %s: %s, %s\n", s.Name, s.target(), s.when())
			return nil
		},
	}
	cmd.Flags().StringVar(&cron, "cron", "", `cron expression, e.g. "*/5 * * * *"`)
	cmd.Flags().StringVar(&every, "every", "", "interval, e.g. 30s or 1h")
	cmd.Flags().StringVar(&function, "function", "", "function to invoke")
	cmd.Flags().StringVar(&chain, "chain", "", "chain to run")
	cmd.Flags().IntVar(&version, "version", 0, "pin the target's version (default: latest at each run)")
	cmd.Flags().StringVar(&alias, "alias", "", "run the function's alias instead of a version (picked at each run)")
	cmd.Flags().StringVarP(&data, "data", "d", "", "payload: JSON, @file or @- (stdin)")
	cmd.Flags().StringVar(&overlap, "overlap", "skip", "when a run is still going: skip, buffer or allow")
	cmd.Flags().BoolVar(&paused, "paused", false, "create it paused")
	return cmd
}

func scheduleLsCommand(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List schedules",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			var page struct {
				Schedules []scheduleJSON `json:"schedules"`
			}
			body, err := c.getJSON(cmd.Context(), "/v1/schedules", &page)
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(body)
			}
			tw := c.table("NAME", "TARGET", "WHEN", "OVERLAP", "PAUSED", "NEXT")
			for _, s := range page.Schedules {
				next := "-"
				if len(s.NextRuns) > 0 {
					next = shortTimeOf(s.NextRuns[0])
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\t%s\n", s.Name, s.target(), s.when(), orDash(s.Overlap), s.Paused, next)
			}
			return tw.Flush()
		},
	}
}

func scheduleGetCommand(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show a schedule with its recent and next runs",
		Args:  exactArgs(1, "a schedule NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			var s scheduleJSON
			body, err := c.getJSON(cmd.Context(), "/v1/schedules/"+url.PathEscape(args[0]), &s)
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(body)
			}
			fmt.Fprintf(c.stdout, "schedule %s: %s, %s, overlap %s, paused %t, %d runs\n", s.Name, s.target(), s.when(), s.Overlap, s.Paused, s.NumRuns)
			if s.Paused && s.Note != "" {
				fmt.Fprintf(c.stdout, "  paused: %s\n", s.Note)
			}
			for _, r := range s.RecentRuns {
				fmt.Fprintf(c.stdout, "  ran %s  %s\n", shortTimeOf(r.ScheduledAt), r.Link)
			}
			for _, n := range s.NextRuns {
				fmt.Fprintf(c.stdout, "  next %s\n", shortTimeOf(n))
			}
			return nil
		},
	}
}

func scheduleActionCommand(cfg *clientConfig, name, method, suffix, short string) *cobra.Command {
	return &cobra.Command{
		Use:   name + " NAME",
		Short: short,
		Args:  exactArgs(1, "a schedule NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			_, _, body, err := c.do(cmd.Context(), request{method: method, path: "/v1/schedules/" + url.PathEscape(args[0]) + suffix})
			if err != nil {
				return err
			}
			if c.json && len(body) > 0 {
				return c.printJSON(body)
			}
			fmt.Fprintf(c.stdout, "schedule %s: %s done\n", args[0], strings.TrimSpace(name))
			return nil
		},
	}
}

func scheduleBackfillCommand(cfg *clientConfig) *cobra.Command {
	var start, end string
	cmd := &cobra.Command{
		Use:     "backfill NAME --start TIME --end TIME",
		Short:   "Run the firings a schedule would have had between two RFC 3339 times",
		Example: `  ferry schedule backfill nightly --start 2026-01-01T00:00:00Z --end 2026-01-08T00:00:00Z`,
		Args:    exactArgs(1, "a schedule NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			s, err1 := time.Parse(time.RFC3339, start)
			e, err2 := time.Parse(time.RFC3339, end)
			if err1 != nil || err2 != nil {
				return usageError("--start and --end need RFC 3339 times like 2026-01-01T00:00:00Z")
			}
			r, ctype := jsonBody(map[string]any{"start": s, "end": e})
			if _, _, _, err := c.do(cmd.Context(), request{method: "POST", path: "/v1/schedules/" + url.PathEscape(args[0]) + "/backfill", body: r, ctype: ctype}); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "schedule %s: backfill %s .. %s requested\n", args[0], s.Format(time.RFC3339), e.Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().StringVar(&start, "start", "", "start time (RFC 3339)")
	cmd.Flags().StringVar(&end, "end", "", "end time (RFC 3339)")
	return cmd
}
