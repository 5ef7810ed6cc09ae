package workflows

import (
	"github.com/ferry-faas/ferry/activities"
	"go.temporal.io/sdk/temporal"
)

// Search attributes registered on the Temporal namespace (scripts/stack.sh does it
// for the local stack) so that every invocation is easy to find in the UI.
var (
	AttrFunction = temporal.NewSearchAttributeKeyKeyword("FerryFunction")
	AttrRuntime  = temporal.NewSearchAttributeKeyKeyword("FerryRuntime")
	AttrStatus   = temporal.NewSearchAttributeKeyKeyword("FerryStatus")
)

// InvokeInput starts one invocation. The version is pinned by the caller, which
// has already created the pending invocation record. It is the Run activity's input.
type InvokeInput = activities.RunInput

// InvokeOutput is the final invocation record as stored in PostgreSQL.
type InvokeOutput = activities.RunOutput
