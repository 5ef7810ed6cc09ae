package console

import (
	"net/http"
	"net/url"
	"time"

	"github.com/google/uuid"

	"github.com/ferry-faas/ferry"
)

// timeInput is the layout of <input type="datetime-local">, read as UTC.
const timeInput = "2006-01-02T15:04"

type invocationsView struct {
	Function, Status, ChainRun, Since, Until string
	Statuses                                 []ferry.InvocationStatus
	Functions                                []ferry.Function
	Invocations                              []ferry.Invocation
	Next                                     string // query of the next page
	Error                                    string // why the API refused the listing
}

var statuses = []ferry.InvocationStatus{ferry.StatusPending, ferry.StatusRunning, ferry.StatusCompleted,
	ferry.StatusFailed, ferry.StatusTimeout, ferry.StatusCancelled}

// invocationsPage lists invocations through GET /v1/invocations with the
// form's filters; times are given in UTC.
func (c *console) invocationsPage(w http.ResponseWriter, r *http.Request, s *session) {
	v := invocationsView{Function: trimmed(r, "function"), Status: trimmed(r, "status"),
		ChainRun: trimmed(r, "chain_run_id"), Since: trimmed(r, "since"), Until: trimmed(r, "until"), Statuses: statuses}
	a := c.api(r, s)
	var fns listPage[ferry.Function]
	if err := a.get("/v1/functions?limit=200", &fns); err != nil {
		c.errorPage(w, r, s, err)
		return
	}
	v.Functions = fns.Items
	q := url.Values{}
	q.Set("limit", "50")
	for k, val := range map[string]string{"function": v.Function, "status": v.Status, "chain_run_id": v.ChainRun,
		"cursor": r.URL.Query().Get("cursor")} {
		if val != "" {
			q.Set(k, val)
		}
	}
	for k, val := range map[string]string{"since": v.Since, "until": v.Until} {
		if val == "" {
			continue
		}
		t, err := time.Parse(timeInput, val)
		if err != nil {
			t, err = time.Parse(time.RFC3339, val)
		}
		if err != nil {
			v.Error = k + ": not a time such as 2026-01-02T15:04 (UTC)"
			continue
		}
		q.Set(k, t.UTC().Format(time.RFC3339))
	}
	if v.Error == "" {
		var l listPage[ferry.Invocation]
		if err := a.get("/v1/invocations?"+q.Encode(), &l); err != nil {
			ae := asAPIError(err)
			if ae.Status >= 500 || ae.Status == http.StatusUnauthorized {
				c.errorPage(w, r, s, err)
				return
			}
			v.Error = ae.Message // shown above the filters, which stay as given
		}
		v.Invocations = l.Items
		if l.NextCursor != "" {
			next := r.URL.Query()
			next.Set("cursor", l.NextCursor)
			v.Next = next.Encode()
		}
	}
	status := http.StatusOK
	if v.Error != "" {
		status = http.StatusBadRequest
	}
	c.render(w, r, status, "invocations", view(s, "Invocations", "invocations", v))
}

type invocationView struct {
	Invocation  ferry.Invocation
	Logs        string
	Steps       []ferry.Operation // a durable invocation's steps, waits and callbacks
	TemporalURL string
}

func (c *console) loadInvocation(r *http.Request, s *session) (invocationView, error) {
	var v invocationView
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return v, &apiError{Status: http.StatusBadRequest, Code: ferry.EINVALID, Message: "not a valid invocation id"}
	}
	a := c.api(r, s)
	if err := a.get("/v1/invocations/"+id.String(), &v.Invocation); err != nil {
		return v, err
	}
	var logs struct {
		Logs string `json:"logs"`
	}
	if err := a.get("/v1/invocations/"+id.String()+"/logs", &logs); err != nil {
		return v, err
	}
	v.Logs = logs.Logs
	var steps struct {
		Steps []ferry.Operation `json:"steps"`
	}
	if err := a.get("/v1/invocations/"+id.String()+"/steps", &steps); err != nil {
		// A server without durable functions answers 503: no steps to show.
		if ae := asAPIError(err); ae.Status != http.StatusServiceUnavailable {
			return v, err
		}
	}
	v.Steps = steps.Steps
	v.TemporalURL = c.workflowURL(v.Invocation.WorkflowID)
	return v, nil
}

func (c *console) invocationPage(w http.ResponseWriter, r *http.Request, s *session) {
	v, err := c.loadInvocation(r, s)
	if err != nil {
		c.errorPage(w, r, s, err)
		return
	}
	c.render(w, r, http.StatusOK, "invocation", view(s, "Invocation "+v.Invocation.ID.String()[:8], "invocations", v))
}

// invocationData is the invocation's status and logs as JSON: the page's
// script polls it while the invocation runs.
func (c *console) invocationData(w http.ResponseWriter, r *http.Request, s *session) {
	v, err := c.loadInvocation(r, s)
	if err != nil {
		c.errorPage(w, r, s, err)
		return
	}
	writeJSON(w, map[string]any{"id": v.Invocation.ID, "status": v.Invocation.Status,
		"final": v.Invocation.Status.Final(), "logs": v.Logs})
}

// invocationLogs is the API's stream of a running invocation's logs
// (GET /v1/invocations/{id}/logs?follow=true, server-sent events), followed by
// the page's script with the session's key.
func (c *console) invocationLogs(w http.ResponseWriter, r *http.Request, s *session) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		c.errorPage(w, r, s, &apiError{Status: http.StatusBadRequest, Code: ferry.EINVALID, Message: "not a valid invocation id"})
		return
	}
	c.api(r, s).stream(w, "/v1/invocations/"+id.String()+"/logs?follow=true", "text/event-stream")
}

// invocationAction cancels or retries an invocation.
func (c *console) invocationAction(w http.ResponseWriter, r *http.Request, s *session) {
	id, err := uuid.Parse(r.PathValue("id"))
	action := r.PathValue("action")
	if err != nil || (action != "cancel" && action != "retry") {
		c.errorPage(w, r, s, &apiError{Status: http.StatusNotFound, Code: ferry.ENOTFOUND, Message: "no such action"})
		return
	}
	var inv ferry.Invocation
	if err := c.api(r, s).post("/v1/invocations/"+id.String()+"/"+action, nil, &inv); err != nil {
		c.errorPage(w, r, s, err)
		return
	}
	http.Redirect(w, r, Prefix+"/invocations/"+inv.ID.String(), http.StatusSeeOther)
}

// workflowURL links a workflow in the Temporal UI ("" without one).
func (c *console) workflowURL(workflowID string) string {
	if c.TemporalUI == "" || workflowID == "" {
		return ""
	}
	ns := c.TemporalNamespace
	if ns == "" {
		ns = "default"
	}
	return c.TemporalUI + "/namespaces/" + url.PathEscape(ns) + "/workflows/" + url.PathEscape(workflowID)
}
