package activities

import (
	"sync"

	"github.com/ferry-faas/ferry"
	"github.com/google/uuid"
)

// Completions tells waiters in this process that an invocation has been
// recorded as final. When the API and the worker share a process (`ferry
// server`), a sync invoke answers as soon as the record is written instead of
// waiting for Temporal to close the workflow and report it: that saves the
// workflow-completion round trip and the history long poll. The Temporal wait
// stays as the fallback for invocations run by other workers.
type Completions struct {
	mu      sync.Mutex
	waiters map[uuid.UUID][]chan ferry.Invocation
}

var _ Observer = (*Completions)(nil)

// Subscribe returns a channel that receives the invocation's final record
// once; call cancel when no longer waiting. Subscribe before the invocation can
// finish (before starting its workflow), or the notification is missed.
func (c *Completions) Subscribe(id uuid.UUID) (<-chan ferry.Invocation, func()) {
	ch := make(chan ferry.Invocation, 1)
	c.mu.Lock()
	if c.waiters == nil {
		c.waiters = make(map[uuid.UUID][]chan ferry.Invocation)
	}
	c.waiters[id] = append(c.waiters[id], ch)
	c.mu.Unlock()
	return ch, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		list := c.waiters[id]
		for i, w := range list {
			if w == ch {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(c.waiters, id)
		} else {
			c.waiters[id] = list
		}
	}
}

// ObserveInvocation hands a final record to its waiters.
func (c *Completions) ObserveInvocation(inv ferry.Invocation) {
	c.mu.Lock()
	list := c.waiters[inv.ID]
	delete(c.waiters, inv.ID)
	c.mu.Unlock()
	for _, ch := range list {
		ch <- inv // buffered, and each channel is notified once
	}
}

// Observers fans one notification out to several observers.
type Observers []Observer

// ObserveInvocation calls every observer.
func (o Observers) ObserveInvocation(inv ferry.Invocation) {
	for _, x := range o {
		x.ObserveInvocation(inv)
	}
}
