// Package temporalsetup makes a Temporal namespace ready for Ferry: the namespace
// exists and has Ferry's search attributes. Every Ferry process runs it at start,
// so a fresh Temporal server (docker compose, the cluster test) needs no setup job,
// and a second node that starts at the same moment finds what the first created.
package temporalsetup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Retention is how long Temporal keeps the history of a closed workflow in a
// namespace that Ensure registers. Ferry's own records live in PostgreSQL.
const Retention = 72 * time.Hour

// Ensure registers namespace when it does not exist and adds each of attrs
// that the namespace lacks. A new namespace takes
// a few seconds to reach every frontend's cache; Ensure waits for it, up to
// wait. It answers an error that says what to do when Temporal refuses.
func Ensure(ctx context.Context, c client.Client, namespace string, wait time.Duration, log *slog.Logger, attrs ...temporal.SearchAttributeKey) error {
	want := map[string]enumspb.IndexedValueType{}
	for _, a := range attrs {
		want[a.GetName()] = a.GetValueType()
	}
	ws := c.WorkflowService()
	_, err := ws.DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: namespace})
	var notFound *serviceerror.NamespaceNotFound
	switch {
	case errors.As(err, &notFound):
		log.Info("registering Temporal namespace", "namespace", namespace, "retention", Retention)
		_, err = ws.RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
			Namespace:                        namespace,
			Description:                      "Ferry",
			WorkflowExecutionRetentionPeriod: durationpb.New(Retention),
		})
		var exists *serviceerror.NamespaceAlreadyExists
		if err != nil && !errors.As(err, &exists) {
			return fmt.Errorf("register Temporal namespace %q: %w", namespace, err)
		}
	case err != nil:
		return fmt.Errorf("describe Temporal namespace %q: %w", namespace, err)
	}

	deadline := time.Now().Add(wait)
	for {
		err := addMissing(ctx, c, namespace, want, log)
		if err == nil {
			return nil
		}
		// A namespace registered a moment ago is "not found" until the frontend's
		// cache refreshes; another process adding the same attribute races us.
		var exists *serviceerror.AlreadyExists
		retry := errors.As(err, &notFound) || errors.As(err, &exists)
		if !retry || time.Now().After(deadline) {
			return fmt.Errorf("search attributes of Temporal namespace %q: %w", namespace, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func addMissing(ctx context.Context, c client.Client, namespace string, attrs map[string]enumspb.IndexedValueType, log *slog.Logger) error {
	ops := c.OperatorService()
	have, err := ops.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return err
	}
	missing := map[string]enumspb.IndexedValueType{}
	for name, typ := range attrs {
		got, ok := have.GetCustomAttributes()[name]
		if !ok {
			missing[name] = typ
		} else if got != typ {
			return fmt.Errorf("search attribute %s is %s, Ferry needs %s", name, got, typ)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	log.Info("adding Temporal search attributes", "namespace", namespace, "attributes", len(missing))
	_, err = ops.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: missing})
	return err
}
