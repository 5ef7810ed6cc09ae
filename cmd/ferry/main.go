// Command ferry is Ferry's single binary: the server (API and worker), each half
// alone for scaling out, and the client commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{
		Use:           "ferry",
		Short:         "Ferry: functions as a service on Temporal",
		Long:          "Ferry: functions as a service on Temporal.\n\n" + exitCodesHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		serveCommand("server", "Run the API and a worker in one process (the single-machine default)", roles{api: true, worker: true}),
		serveCommand("api", "Run the REST API only", roles{api: true}),
		serveCommand("worker", "Run a worker only (many workers on many hosts may poll one task queue)", roles{worker: true}),
	)
	root.AddCommand(benchCommand())
	root.AddCommand(clientCommands()...)
	os.Exit(execute(root))
}

func serveCommand(name, short string, r roles) *cobra.Command {
	return &cobra.Command{
		Use:   name,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := serve(cmd.Context(), r); err != nil {
				return &cliError{code: 1, msg: err.Error()} // not a usage error
			}
			return nil
		},
	}
}

// serve runs a server process until SIGINT or SIGTERM.
func serve(ctx context.Context, r roles) error {
	cfg, err := LoadConfig(os.Getenv)
	if err != nil {
		return err
	}
	log := newLogger()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := start(ctx, cfg, r, log)
	if err != nil {
		return err
	}
	defer a.close(context.WithoutCancel(ctx))
	if a.AdminKey != "" {
		fmt.Fprintf(os.Stderr, "\nFirst start: created an admin API key (shown once, keep it):\n\n    export FERRY_API_KEY=%s\n\n", a.AdminKey)
	}
	if a.http != nil {
		log.Info("ferry listening", "url", a.URL(), "config", cfg.String())
	} else {
		log.Info("ferry worker running", "config", cfg.String())
	}
	return a.serve(ctx)
}

// execute runs the command tree and maps errors to exit codes (see docs/API.md).
func execute(root *cobra.Command) int {
	err := root.Execute()
	if err == nil {
		return 0
	}
	var ec exitCoder
	if errors.As(err, &ec) {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(os.Stderr, "ferry:", msg)
		}
		return ec.ExitCode()
	}
	// Errors without a code come from cobra itself: unknown commands and flags.
	fmt.Fprintln(os.Stderr, "ferry:", err)
	return 2
}

// exitCoder is an error that chooses the process exit code.
type exitCoder interface{ ExitCode() int }
