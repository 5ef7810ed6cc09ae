package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"

	"github.com/spf13/cobra"

	apiclient "github.com/ferry-faas/ferry/client"
	yaml3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"
)

// chainRunRecord is the part of a chain run the CLI shows.
type chainRunRecord struct {
	ID      string          `json:"id"`
	Chain   string          `json:"chain"`
	Version int             `json:"version"`
	Status  string          `json:"status"`
	Output  json.RawMessage `json:"output"`
	Error   *struct {
		Type          string `json:"type"`
		Message       string `json:"message"`
		Step          string `json:"step"`
		Compensations []struct {
			Step     string `json:"step"`
			Function string `json:"function"`
			Status   string `json:"status"`
		} `json:"compensations"`
	} `json:"error"`
	Steps []struct {
		Path         string `json:"path"`
		Function     string `json:"function"`
		Version      int    `json:"version"`
		Status       string `json:"status"`
		InvocationID string `json:"invocation_id"`
		Compensation bool   `json:"compensation"`
	} `json:"steps"`
	CreatedAt string `json:"created_at"`
}

// chainsCommand is `ferry chain ...`.
func chainsCommand(cfg *clientConfig) *cobra.Command {
	root := &cobra.Command{Use: "chain", Short: "Deploy and run chains of functions"}
	root.AddCommand(chainDeployCommand(cfg), chainInvokeCommand(cfg), chainRunsCommand(cfg), chainGetCommand(cfg),
		chainLsCommand(cfg), chainRmCommand(cfg), chainCancelCommand(cfg))
	return root
}

func chainDeployCommand(cfg *clientConfig) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:     "deploy FILE.yaml|FILE.json",
		Short:   "Deploy a new version of a chain from a YAML or JSON file {name, description, steps}",
		Example: `  ferry chain deploy examples/chain/chain.yaml`,
		Args:    exactArgs(1, "a chain FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			raw, err := os.ReadFile(args[0])
			if err != nil {
				return usageError("%v", err)
			}
			// The conversion below keeps the last of a key given twice; the
			// API refuses duplicate keys, so the file is checked for them.
			var probe any
			if err := yaml3.Unmarshal(raw, &probe); err != nil {
				return usageError("%s: %v", args[0], err)
			}
			js, err := yaml.YAMLToJSON(raw) // JSON is YAML too
			if err != nil {
				return usageError("%s: %v", args[0], err)
			}
			var def map[string]any
			if err := json.Unmarshal(js, &def); err != nil {
				return usageError("%s: a chain file is an object {name, steps}: %v", args[0], err)
			}
			if name != "" {
				def["name"] = name
			}
			body, ctype := jsonBody(def)
			_, _, out, err := c.do(cmd.Context(), request{method: "POST", path: "/v1/chains", body: body, ctype: ctype})
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(out)
			}
			var v struct {
				Name    string `json:"name"`
				Version int    `json:"version"`
			}
			if err := jsonUnmarshal(out, &v); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "deployed chain %s version %d\n", v.Name, v.Version)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "chain name (default: the file's name field)")
	return cmd
}

func chainInvokeCommand(cfg *clientConfig) *cobra.Command {
	var opts invokeOptions
	cmd := &cobra.Command{
		Use:   "invoke NAME",
		Short: "Run a chain and print its output (or, with --async, the run id)",
		Long: `Run a chain. Its input is --data (JSON, @file or @- for stdin). Without --async,
waits for the end; the exit code is 1 when the chain failed or was cancelled.

` + exitCodesHelp,
		Example: `  ferry chain invoke words --data '{"text": "hello chains"}'`,
		Args:    exactArgs(1, "a chain NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			status, body, err := c.postInvoke(cmd, "/v1/chains/"+url.PathEscape(args[0])+"/invoke", "running chain "+args[0], opts)
			if err != nil {
				return err
			}
			var run chainRunRecord
			if err := jsonUnmarshal(body, &run); err != nil {
				return err
			}
			if opts.async || status == 202 {
				if c.json {
					return c.printJSON(body)
				}
				fmt.Fprintln(c.stdout, run.ID)
				return nil
			}
			return c.printRunResult(body, run)
		},
	}
	cmd.Flags().StringVarP(&opts.data, "data", "d", "", "input: JSON, @file or @- (stdin)")
	cmd.Flags().BoolVar(&opts.async, "async", false, "do not wait; print the run id")
	cmd.Flags().StringVar(&opts.idempotencyKey, "idempotency-key", "", "same key, same run (no second run)")
	cmd.Flags().IntVar(&opts.version, "version", 0, "a specific chain version")
	return cmd
}

func (c *client) printRunResult(body []byte, run chainRunRecord) error {
	if c.json {
		if err := c.printJSON(body); err != nil {
			return err
		}
	} else if run.Status == "completed" {
		fmt.Fprintf(c.stdout, "%s\n", run.Output)
	}
	fmt.Fprintf(c.stderr, "chain run %s %s (%d steps)\n", run.ID, run.Status, len(run.Steps))
	if run.Status == "completed" {
		return nil
	}
	msg := "chain run " + run.ID + " " + run.Status
	if e := run.Error; e != nil {
		msg = fmt.Sprintf("%s at step %s: %s: %s", msg, orDash(e.Step), e.Type, e.Message)
		for _, comp := range e.Compensations {
			msg += fmt.Sprintf("\n  compensated step %s with %s: %s", comp.Step, comp.Function, comp.Status)
		}
	}
	return &cliError{code: exitFunctionFailed, msg: msg}
}

func chainRunsCommand(cfg *clientConfig) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "runs NAME",
		Short: "List a chain's runs, newest first",
		Args:  exactArgs(1, "a chain NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			var runs []chainRunRecord
			if err := c.waiting("", func() (err error) {
				runs, err = apiclient.List[chainRunRecord](cmd.Context(), c.api, "/v1/chains/"+url.PathEscape(args[0])+"/runs", nil, "runs", limit)
				return err
			}); err != nil {
				return err
			}
			if c.json {
				return c.printValue(map[string]any{"runs": nonNil(runs)})
			}
			tw := c.table("ID", "VERSION", "STATUS", "CREATED")
			for _, r := range runs {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", r.ID, r.Version, r.Status, shortTimeOf(r.CreatedAt))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 20, "at most this many runs")
	return cmd
}

func chainGetCommand(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use:   "get RUN_ID",
		Short: "Show a chain run with the status of every step and its invocation",
		Args:  exactArgs(1, "a RUN_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			var run chainRunRecord
			body, err := c.getJSON(cmd.Context(), "/v1/chain-runs/"+url.PathEscape(args[0]), &run)
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(body)
			}
			fmt.Fprintf(c.stdout, "chain run %s: %s version %d, %s\n", run.ID, run.Chain, run.Version, run.Status)
			if run.Error != nil {
				fmt.Fprintf(c.stdout, "error at step %s: %s: %s\n", orDash(run.Error.Step), run.Error.Type, run.Error.Message)
			}
			tw := c.table("STEP", "FUNCTION", "VERSION", "STATUS", "INVOCATION")
			for _, st := range run.Steps {
				path := st.Path
				if st.Compensation {
					path += " (undo)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", path, st.Function, st.Version, st.Status, st.InvocationID)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if run.Status == "completed" {
				fmt.Fprintf(c.stdout, "output: %s\n", run.Output)
			}
			return nil
		},
	}
}

func chainLsCommand(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List chains",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			type chainJSON struct {
				Name          string `json:"name"`
				LatestVersion int    `json:"latest_version"`
				UpdatedAt     string `json:"updated_at"`
			}
			var chains []chainJSON
			if err := c.waiting("", func() (err error) {
				chains, err = apiclient.List[chainJSON](cmd.Context(), c.api, "/v1/chains", nil, "chains", 0)
				return err
			}); err != nil {
				return err
			}
			if c.json {
				return c.printValue(map[string]any{"chains": nonNil(chains)})
			}
			tw := c.table("NAME", "VERSION", "UPDATED")
			for _, ch := range chains {
				fmt.Fprintf(tw, "%s\t%d\t%s\n", ch.Name, ch.LatestVersion, shortTimeOf(ch.UpdatedAt))
			}
			return tw.Flush()
		},
	}
}

func chainRmCommand(cfg *clientConfig) *cobra.Command {
	return deleteCommand(cfg, "rm NAME", "Delete a chain and its versions (its runs stay)", "a chain NAME", "deleted",
		(*apiclient.Client).DeleteChain)
}

func chainCancelCommand(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel RUN_ID",
		Short: "Cancel a running chain run (compensations of completed steps run)",
		Args:  exactArgs(1, "a RUN_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			_, _, body, err := c.do(cmd.Context(), request{method: "POST", path: "/v1/chain-runs/" + url.PathEscape(args[0]) + "/cancel"})
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(body)
			}
			var run chainRunRecord
			if err := jsonUnmarshal(body, &run); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "chain run %s %s\n", run.ID, run.Status)
			return nil
		},
	}
}
