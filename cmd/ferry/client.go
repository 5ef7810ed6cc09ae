package main

import "github.com/spf13/cobra"

// clientCommands are the client sub-commands (deploy, invoke, ...).
// PLACEHOLDER by the lead so that cmd/ferry builds: the API engineer replaces this
// file (or deletes it when defining clientCommands elsewhere).
func clientCommands() []*cobra.Command { return nil }
