package activities

import (
	"testing"

	"github.com/ferry-faas/ferry"
	"github.com/google/uuid"
)

func TestCompletionsNotifySubscribersOnce(t *testing.T) {
	var c Completions
	id := uuid.New()
	a, cancelA := c.Subscribe(id)
	defer cancelA()
	b, cancelB := c.Subscribe(id)
	cancelB() // b stops waiting and must not be notified
	other, cancelOther := c.Subscribe(uuid.New())
	defer cancelOther()

	c.ObserveInvocation(ferry.Invocation{ID: id, Status: ferry.StatusCompleted})
	c.ObserveInvocation(ferry.Invocation{ID: id, Status: ferry.StatusCompleted}) // nobody waits any more

	if got := <-a; got.ID != id || got.Status != ferry.StatusCompleted {
		t.Fatalf("got %+v", got)
	}
	select {
	case inv := <-b:
		t.Fatalf("cancelled subscriber notified: %+v", inv)
	case inv := <-other:
		t.Fatalf("other invocation's subscriber notified: %+v", inv)
	default:
	}
	if len(c.waiters) != 1 {
		t.Fatalf("waiters left: %d, want only the other invocation's", len(c.waiters))
	}
}
