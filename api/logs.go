package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/ferry-faas/ferry"
)

// Following logs (docs/API.md, "Following logs").
const (
	// followPoll is how often a follower looks for new output; the worker
	// stores it every activities.LiveLogsEvery.
	followPoll = 250 * time.Millisecond
	// followKeepAlive is the longest silence of an event stream: a comment
	// keeps proxies from closing it while a function prints nothing.
	followKeepAlive = 15 * time.Second
)

func (s *server) invocationLogs(c echo.Context) error {
	follow := false
	if q := c.QueryParam("follow"); q != "" {
		b, err := strconv.ParseBool(q)
		if err != nil {
			return ferry.Errorf(ferry.EINVALID, "follow: must be true or false")
		}
		follow = b
	}
	inv, err := s.invocationFor(c, ferry.PermRead)
	if err != nil {
		return err
	}
	text := strings.Contains(c.Request().Header.Get(echo.HeaderAccept), "text/plain")
	if follow {
		return s.followLogs(c, inv, text)
	}
	logs, err := s.Store.InvocationLogs(c.Request().Context(), inv.ID)
	if err != nil {
		return err
	}
	if text {
		return c.String(http.StatusOK, logs)
	}
	return c.JSON(http.StatusOK, map[string]any{"id": inv.ID, "status": inv.Status, "logs": logs})
}

// logStream writes a followed invocation's output as server-sent events, or
// as plain text when the client asked for it.
type logStream struct {
	c      echo.Context
	text   bool
	wrote  time.Time
	failed error
}

func (w *logStream) event(name string, data any) {
	if w.failed != nil {
		return
	}
	var err error
	if w.text {
		if name == "logs" {
			_, err = w.c.Response().Write([]byte(data.(string)))
		}
	} else {
		var b []byte
		switch name {
		case "logs":
			b, _ = json.Marshal(map[string]string{"text": data.(string)})
		default:
			b, _ = json.Marshal(data)
		}
		_, err = fmt.Fprintf(w.c.Response(), "event: %s\ndata: %s\n\n", name, b)
	}
	w.flush(err)
}

func (w *logStream) keepAlive() {
	if w.failed == nil && !w.text && time.Since(w.wrote) >= followKeepAlive {
		_, err := w.c.Response().Write([]byte(": keep-alive\n\n"))
		w.flush(err)
	}
}

func (w *logStream) flush(err error) {
	if err != nil {
		w.failed = err
		return
	}
	w.c.Response().Flush()
	w.wrote = time.Now()
}

// followLogs streams the output of inv as the worker stores it, until the
// invocation is final; then the rest of its final logs and, as an event
// stream, an end event with its status.
func (s *server) followLogs(c echo.Context, inv ferry.Invocation, text bool) error {
	ctx := c.Request().Context()
	h := c.Response().Header()
	if text {
		h.Set(echo.HeaderContentType, echo.MIMETextPlainCharsetUTF8)
	} else {
		h.Set(echo.HeaderContentType, "text/event-stream")
	}
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx would hold the stream back
	c.Response().WriteHeader(http.StatusOK)
	w := &logStream{c: c, text: text}
	w.flush(nil)

	var (
		after   int64     // last chunk seen
		stream  uuid.UUID // the run being followed
		sent    strings.Builder
		sentAny bool // something was sent
	)
	tick := time.NewTicker(followPoll)
	defer tick.Stop()
	for {
		status, logs, chunks, err := s.Store.FollowLogs(ctx, inv.ID, after)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// The status line is sent: abort, so that the client sees an
			// error rather than a stream that ended.
			s.Logger.Warn("following logs", "invocation", inv.ID, "err", err)
			panic(http.ErrAbortHandler)
		}
		for _, ch := range chunks {
			after = ch.Seq
			if ch.Stream != stream {
				if ch.Offset != 0 {
					continue // the end of a run that was replaced
				}
				if stream != uuid.Nil {
					// A retry, or a durable invocation resumed.
					w.event("logs", "\n[ferry: the function runs again]\n")
				}
				stream = ch.Stream
				sent.Reset()
			}
			if ch.Offset != sent.Len() {
				continue
			}
			sent.WriteString(ch.Text)
			sentAny = true
			w.event("logs", ch.Text)
		}
		if status.Final() {
			// The record ends with the last run's logs, which begin with what
			// was sent of that run (earlier runs of a durable invocation come
			// before it).
			rest := logs
			if sentAny {
				if i := strings.LastIndex(logs, sent.String()); i >= 0 {
					rest = logs[i+sent.Len():]
				} else if logs != "" {
					rest = "\n[ferry: the logs as recorded]\n" + logs
				}
			}
			if rest != "" {
				w.event("logs", rest)
			}
			w.event("end", map[string]any{"id": inv.ID, "status": status})
			return nil
		}
		if w.failed != nil {
			return nil // the client went away
		}
		w.keepAlive()
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
