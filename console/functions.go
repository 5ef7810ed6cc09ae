package console

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/storage/postgres"
)

// listPage is the API's shape of one page of a listing.
type listPage[T any] struct {
	Items      []T
	NextCursor string `json:"next_cursor"`
}

func (l *listPage[T]) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	for k, v := range m {
		switch k {
		case "next_cursor":
			if err := json.Unmarshal(v, &l.NextCursor); err != nil {
				return err
			}
		default:
			if err := json.Unmarshal(v, &l.Items); err != nil {
				return err
			}
		}
	}
	return nil
}

// functionRow is one line of the functions list.
type functionRow struct {
	ferry.Function
	Runtime ferry.Runtime
	Aliases []ferry.Alias
	Stats   postgres.Stats
}

type functionsView struct {
	Rows []functionRow
	Next string
}

// statsWindow is the window of the functions list's numbers.
const statsWindow = time.Hour

func (c *console) functionsPage(w http.ResponseWriter, r *http.Request, s *session) {
	a := c.api(r, s)
	var l listPage[ferry.Function]
	if err := a.get("/v1/functions?limit=100&cursor="+urlQueryEscape(r.URL.Query().Get("cursor")), &l); err != nil {
		c.errorPage(w, r, s, err)
		return
	}
	rows := make([]functionRow, len(l.Items))
	g, _ := errgroup.WithContext(r.Context())
	g.SetLimit(8)
	for i, f := range l.Items {
		rows[i].Function = f
		g.Go(func() error {
			var v ferry.Version
			if err := a.get("/v1/functions/"+pathEscape(f.Name), &v); err != nil {
				return err
			}
			rows[i].Runtime = v.Runtime
			var as listPage[ferry.Alias]
			if err := a.get("/v1/functions/"+pathEscape(f.Name)+"/aliases", &as); err != nil {
				return err
			}
			rows[i].Aliases = as.Items
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		c.errorPage(w, r, s, err)
		return
	}
	stats, err := c.Stats.FunctionStats(r.Context(), l.Items, time.Now().Add(-statsWindow))
	if err != nil {
		c.errorPage(w, r, s, err)
		return
	}
	for i := range rows {
		rows[i].Stats = stats[rows[i].ID]
	}
	c.render(w, r, http.StatusOK, "functions", view(s, "Functions", "functions", functionsView{Rows: rows, Next: l.NextCursor}))
}

// chartRanges are the function page's chart windows and their bucket sizes.
var chartRanges = []struct {
	Name   string
	Window time.Duration
	Step   time.Duration
}{
	{"1h", time.Hour, 2 * time.Minute},
	{"24h", 24 * time.Hour, time.Hour},
	{"7d", 7 * 24 * time.Hour, 6 * time.Hour},
}

type functionView struct {
	Version     ferry.Version
	EnvNames    []string
	Versions    []ferry.Version
	Aliases     []ferry.Alias
	Stats       postgres.Stats
	Range       string
	Ranges      []string
	Charts      charts
	Recent      []ferry.Invocation
	Event       string
	Invoked     *invokeResult
	InvokeError string
}

// invokeResult is the outcome of the invoke form.
type invokeResult struct {
	Invocation ferry.Invocation
	Logs       string
	Accepted   bool // not final yet (202)
}

// loadFunction reads everything the function page shows.
func (c *console) loadFunction(r *http.Request, s *session) (functionView, error) {
	name := r.PathValue("name")
	a := c.api(r, s)
	var v functionView
	if err := a.get("/v1/functions/"+pathEscape(name), &v.Version); err != nil {
		return v, err
	}
	for k := range v.Version.Env {
		v.EnvNames = append(v.EnvNames, k) // values are never shown
	}
	slices.Sort(v.EnvNames)
	var vs listPage[ferry.Version]
	if err := a.get("/v1/functions/"+pathEscape(name)+"/versions?limit=20", &vs); err != nil {
		return v, err
	}
	v.Versions = vs.Items
	var as listPage[ferry.Alias]
	if err := a.get("/v1/functions/"+pathEscape(name)+"/aliases", &as); err != nil {
		return v, err
	}
	v.Aliases = as.Items
	var invs listPage[ferry.Invocation]
	if err := a.get("/v1/invocations?limit=15&function="+urlQueryEscape(name), &invs); err != nil {
		return v, err
	}
	v.Recent = invs.Items
	fn := ferry.Function{ID: v.Version.FunctionID, Name: name}
	stats, err := c.Stats.FunctionStats(r.Context(), []ferry.Function{fn}, time.Now().Add(-statsWindow))
	if err != nil {
		return v, err
	}
	v.Stats = stats[fn.ID]
	v.Range = "24h"
	for _, cr := range chartRanges {
		v.Ranges = append(v.Ranges, cr.Name)
		if cr.Name == r.URL.Query().Get("range") {
			v.Range = cr.Name
		}
	}
	for _, cr := range chartRanges {
		if cr.Name == v.Range {
			buckets, err := c.Stats.InvocationSeries(r.Context(), fn, time.Now().Add(-cr.Window), cr.Step)
			if err != nil {
				return v, err
			}
			v.Charts = drawCharts(buckets, cr.Step)
		}
	}
	v.Event = "{}"
	return v, nil
}

func (c *console) functionPage(w http.ResponseWriter, r *http.Request, s *session) {
	v, err := c.loadFunction(r, s)
	if err != nil {
		c.errorPage(w, r, s, err)
		return
	}
	c.render(w, r, http.StatusOK, "function", view(s, v.Version.Function, "functions", v))
}

// invoke runs the function with the form's event (synchronously, as
// POST /v1/functions/{name}/invoke does) and shows the function page with
// the result and the logs; an event the API refuses comes back in the form
// with the API's message.
func (c *console) invoke(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("name")
	event := r.PostFormValue("event")
	a := c.api(r, s)
	var inv ferry.Invocation
	res, ierr := a.do(http.MethodPost, "/v1/functions/"+pathEscape(name)+"/invoke", []byte(event), nil, &inv)
	if ae := asAPIError(ierr); ierr != nil && ae.Status != http.StatusBadRequest && ae.Status != http.StatusRequestEntityTooLarge {
		c.errorPage(w, r, s, ierr)
		return
	}
	v, err := c.loadFunction(r, s)
	if err != nil {
		c.errorPage(w, r, s, err)
		return
	}
	v.Event = event
	status := http.StatusOK
	if ierr != nil {
		ae := asAPIError(ierr)
		v.InvokeError, status = ae.Message, ae.Status
	} else {
		v.Invoked = &invokeResult{Invocation: inv, Accepted: res.status == http.StatusAccepted}
		var logs struct {
			Logs string `json:"logs"`
		}
		if err := a.get("/v1/invocations/"+inv.ID.String()+"/logs", &logs); err != nil {
			c.errorPage(w, r, s, err)
			return
		}
		v.Invoked.Logs = logs.Logs
	}
	c.render(w, r, status, "function", view(s, v.Version.Function, "functions", v))
}

// functionData is the function page's numbers as JSON, which its script
// refreshes while the page is open.
func (c *console) functionData(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("name")
	var v ferry.Version
	if err := c.api(r, s).get("/v1/functions/"+pathEscape(name), &v); err != nil {
		c.errorPage(w, r, s, err)
		return
	}
	fn := ferry.Function{ID: v.FunctionID, Name: name}
	stats, err := c.Stats.FunctionStats(r.Context(), []ferry.Function{fn}, time.Now().Add(-statsWindow))
	if err != nil {
		c.errorPage(w, r, s, err)
		return
	}
	st := stats[fn.ID]
	writeJSON(w, map[string]any{"function": name, "latest_version": v.Version, "window": statsWindow.String(),
		"invocations": st.Invocations, "errors": st.Errors, "error_rate": st.ErrorRate(),
		"p50_ms": st.P50MS, "p99_ms": st.P99MS, "cold_starts": st.Cold})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// trimmed is a form field without surrounding space.
func trimmed(r *http.Request, name string) string { return strings.TrimSpace(r.URL.Query().Get(name)) }
