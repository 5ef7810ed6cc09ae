// Command temporal is the Temporal CLI v1.5.1 (see go.mod), built with a newer
// SQLite driver than the CLI pins: v1.34.1 leaves a connection interrupted
// after a cancelled query ("interrupted (9)" on every later call), which
// wedged the dev server within minutes under Ferry's tests. See
// docs/ARCHITECTURE.md, "Local stack".
package main

import (
	"context"

	"github.com/temporalio/cli/temporalcli"
	_ "modernc.org/sqlite"
	_ "time/tzdata"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	temporalcli.Execute(ctx, temporalcli.CommandOptions{})
}
