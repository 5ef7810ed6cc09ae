package temporalsetup_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/ferry-faas/ferry/internal/temporalsetup"
	"github.com/ferry-faas/ferry/internal/testenv"
	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// A namespace that does not exist is registered with its search attributes;
// a second run (another node starting) finds everything and changes nothing.
func TestEnsureRegistersNamespaceAndAttributes(t *testing.T) {
	ctx := context.Background()
	c, err := client.DialContext(ctx, client.Options{HostPort: testenv.TemporalAddress})
	if err != nil {
		testenv.Unavailable(t, "Temporal", err)
	}
	defer c.Close()
	ns := "ferry-setup-" + uuid.NewString()[:8]
	attr := temporal.NewSearchAttributeKeyKeyword("FerrySetupTest")
	log := slog.New(slog.DiscardHandler)
	for range 2 {
		if err := temporalsetup.Ensure(ctx, c, ns, time.Minute, log, attr); err != nil {
			t.Fatal(err)
		}
	}
	d, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration(); got != temporalsetup.Retention {
		t.Errorf("retention %s, want %s", got, temporalsetup.Retention)
	}
	sa, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	if got := sa.GetCustomAttributes()["FerrySetupTest"]; got != enumspb.INDEXED_VALUE_TYPE_KEYWORD {
		t.Errorf("search attribute FerrySetupTest: %v", got)
	}
}
