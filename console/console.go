// Package console is Ferry's web console: server-rendered pages (html/template,
// a little progressive JavaScript, assets embedded) for functions,
// invocations, chains, schedules and health.
//
// The console owns no rule of its own about who may see or do what: every page
// reads and changes Ferry through the REST API's routes, called in-process
// with the signed-in API key (see apiClient), so it has exactly the API's
// permissions, validation and error messages. What the API does not serve,
// statistics over the invocation records, is read from the store for functions
// the API has just shown the key. The console is mounted beside the API and is
// not on the path of an invocation.
package console

import (
	"context"
	"embed"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/storage/postgres"
)

// Prefix is where the console is mounted.
const Prefix = "/console"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Stats is the part of the store the console reads directly (*postgres.DB):
// statistics of functions the caller was allowed to read through the API.
type Stats interface {
	FunctionStats(ctx context.Context, fns []ferry.Function, since time.Time) (map[uuid.UUID]postgres.Stats, error)
	InvocationSeries(ctx context.Context, fn ferry.Function, since time.Time, step time.Duration) ([]postgres.StatsBucket, error)
}

var _ Stats = (*postgres.DB)(nil)

// Deps are the console's dependencies, filled in by main.
type Deps struct {
	// API is the REST API's handler (api.New); the console calls it in-process.
	API   http.Handler
	Stats Stats
	// TemporalUI is the base URL of the Temporal Web UI for links to
	// workflows ("" for no links); TemporalNamespace its namespace.
	TemporalUI        string
	TemporalNamespace string
	// Pool reports the warm containers of the worker in this process (total,
	// busy); nil when the process runs no worker.
	Pool func() (total, busy int)
	// Queue describes the workers' Temporal task queue (nil: not shown).
	Queue  func(ctx context.Context) (TaskQueue, error)
	Logger *slog.Logger
	// SessionTTL is how long a sign-in lasts (default 12 h).
	SessionTTL time.Duration
}

// TaskQueue is what the health page shows of the workers' task queue, per
// kind of task (workflow, activity).
type TaskQueue struct {
	Name  string
	Kinds []TaskQueueKind
}

// TaskQueueKind is the backlog and the polling workers of one kind of task.
type TaskQueueKind struct {
	Kind       string
	Backlog    int64         // tasks waiting for a worker (approximate)
	BacklogAge time.Duration // age of the oldest waiting task
	Workers    []Worker
}

// Worker is a worker process that polled the task queue recently.
type Worker struct {
	Identity string
	LastSeen time.Time
}

// DefaultSessionTTL is the default of Deps.SessionTTL.
const DefaultSessionTTL = 12 * time.Hour

// console serves the pages.
type console struct {
	Deps
	sessions *sessions
	pages    map[string]*templateSet
}

// New returns the console's handler, to be mounted at Prefix.
func New(d Deps) http.Handler {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.SessionTTL <= 0 {
		d.SessionTTL = DefaultSessionTTL
	}
	c := &console{Deps: d, sessions: newSessions(d.SessionTTL), pages: parseTemplates()}
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET "+Prefix+"/static/", http.StripPrefix(Prefix+"/static/", cacheStatic(http.FileServerFS(static))))
	mux.HandleFunc("GET "+Prefix+"/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix+"/functions", http.StatusSeeOther)
	})
	mux.HandleFunc("GET "+Prefix, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix+"/functions", http.StatusSeeOther)
	})
	mux.HandleFunc("GET "+Prefix+"/login", c.loginPage)
	mux.HandleFunc("POST "+Prefix+"/login", c.login)
	mux.Handle("POST "+Prefix+"/logout", c.signedIn(c.logout))

	mux.Handle("GET "+Prefix+"/functions", c.signedIn(c.functionsPage))
	mux.Handle("GET "+Prefix+"/functions/{name}", c.signedIn(c.functionPage))
	mux.Handle("POST "+Prefix+"/functions/{name}/invoke", c.signedIn(c.invoke))
	mux.Handle("GET "+Prefix+"/data/functions/{name}", c.signedIn(c.functionData))
	mux.Handle("GET "+Prefix+"/invocations", c.signedIn(c.invocationsPage))
	mux.Handle("GET "+Prefix+"/invocations/{id}", c.signedIn(c.invocationPage))
	mux.Handle("POST "+Prefix+"/invocations/{id}/{action}", c.signedIn(c.invocationAction))
	mux.Handle("GET "+Prefix+"/data/invocations/{id}", c.signedIn(c.invocationData))
	mux.Handle("GET "+Prefix+"/data/invocations/{id}/logs", c.signedIn(c.invocationLogs))
	mux.Handle("GET "+Prefix+"/chains", c.signedIn(c.chainsPage))
	mux.Handle("GET "+Prefix+"/chains/{name}", c.signedIn(c.chainPage))
	mux.Handle("GET "+Prefix+"/chain-runs/{id}", c.signedIn(c.chainRunPage))
	mux.Handle("GET "+Prefix+"/schedules", c.signedIn(c.schedulesPage))
	mux.Handle("POST "+Prefix+"/schedules/{name}/{action}", c.signedIn(c.scheduleAction))
	mux.Handle("GET "+Prefix+"/health", c.signedIn(c.healthPage))
	mux.HandleFunc(Prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		c.errorPage(w, r, nil, &apiError{Status: http.StatusNotFound, Code: ferry.ENOTFOUND, Message: "no console page " + r.URL.Path})
	})
	// Cross-origin unsafe requests are refused before any handler (Fetch
	// metadata / Origin); the per-session token on every form covers browsers
	// that send neither.
	cop := http.NewCrossOriginProtection()
	return securityHeaders(cop.Handler(mux))
}

// securityHeaders keeps the pages out of frames and scripts to their own origin.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

func cacheStatic(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		next.ServeHTTP(w, r)
	})
}
