package activities

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
)

// LogStore keeps the output of running invocations, for followers
// (*postgres.DB; GET /v1/invocations/{id}/logs?follow=true).
type LogStore interface {
	AppendLogs(ctx context.Context, id, stream uuid.UUID, offset int, text string) error
}

// LiveLogsEvery is how often a running invocation's new output is stored: a
// follower sees a line at most this much (plus its own poll) after it was
// written. An invocation that ends sooner stores nothing on the way: its
// final record carries its logs.
const LiveLogsEvery = 250 * time.Millisecond

// liveLogs batches one run's output into the store while it runs.
type liveLogs struct {
	store  LogStore
	ctx    context.Context
	log    *slog.Logger
	id     uuid.UUID
	stream uuid.UUID

	send sync.Mutex // held while a batch is stored: batches go in order

	mu      sync.Mutex
	pending []byte
	offset  int // bytes of the stream stored or being stored
	timer   *time.Timer
	closed  bool
}

func newLiveLogs(ctx context.Context, store LogStore, id uuid.UUID, log *slog.Logger) *liveLogs {
	return &liveLogs{store: store, ctx: ctx, log: log, id: id, stream: uuid.New()}
}

// add takes output as the executor reads it (runtimes.Spec.OnLogs): it never
// waits for the store.
func (l *liveLogs) add(text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.pending = append(l.pending, text...)
	if l.timer == nil {
		l.timer = time.AfterFunc(LiveLogsEvery, l.flush)
	}
}

func (l *liveLogs) flush() {
	l.send.Lock()
	defer l.send.Unlock()
	l.mu.Lock()
	text, off := string(l.pending), l.offset
	l.pending, l.timer = l.pending[:0], nil
	l.offset += len(text)
	closed := l.closed
	l.mu.Unlock()
	if text == "" || closed {
		return
	}
	if err := l.store.AppendLogs(l.ctx, l.id, l.stream, off, text); err != nil {
		if l.ctx.Err() != nil {
			return
		}
		// Kept for the next batch: a follower never sees a gap.
		l.log.Warn("storing live logs", "err", err)
		l.mu.Lock()
		l.pending = append([]byte(text), l.pending...)
		l.offset = off
		if l.timer == nil && !l.closed {
			l.timer = time.AfterFunc(LiveLogsEvery, l.flush)
		}
		l.mu.Unlock()
	}
}

// stop ends the batching once the run ended (the final record has the logs)
// and waits for a batch being stored.
func (l *liveLogs) stop() {
	l.mu.Lock()
	l.closed = true
	if l.timer != nil {
		l.timer.Stop()
	}
	l.mu.Unlock()
	l.send.Lock()
	defer l.send.Unlock()
}
