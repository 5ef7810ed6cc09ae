package console

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/ferry-faas/ferry"
)

// node is one step of a chain definition as the graph draws it (nested
// boxes), with its status in a run when there is one.
type node struct {
	Path     string
	Kind     string // function, parallel, map
	Function string
	Version  int
	Detail   string // retries, timeout, on_error, compensation
	Children []node // parallel branches, or the map's body
	// In a run:
	Status     ferry.InvocationStatus
	Invocation string // the step's invocation id
	Duration   string
	Map        *mapProgress
}

// mapProgress counts a map step's elements by status.
type mapProgress struct {
	Started, Completed, Failed, Running int
	Percent                             int // completed of started
}

// graph builds the nodes of steps; run (may be nil) gives their statuses.
func graph(steps []ferry.Step, run *chainRunView) []node {
	out := make([]node, len(steps))
	for i, s := range steps {
		out[i] = stepNode(s, strconv.Itoa(i), run)
	}
	return out
}

func stepNode(s ferry.Step, path string, run *chainRunView) node {
	n := node{Path: path, Kind: s.Kind(), Function: s.Function, Version: s.Version}
	var detail []string
	if s.Retries > 0 {
		detail = append(detail, "retries "+strconv.Itoa(s.Retries))
	}
	if s.TimeoutSeconds > 0 {
		detail = append(detail, "timeout "+strconv.Itoa(s.TimeoutSeconds)+"s")
	}
	if s.OnError == ferry.OnErrorContinue {
		detail = append(detail, "on error: continue")
	}
	if s.Compensate != "" {
		detail = append(detail, "compensate: "+s.Compensate)
	}
	if s.Kind() == ferry.StepWait {
		detail = append(detail, "wait "+strconv.FormatInt(s.WaitSeconds, 10)+"s")
	}
	if s.Kind() == ferry.StepMap {
		mc := s.MaxConcurrency
		if mc == 0 {
			mc = ferry.DefaultMapParallel
		}
		detail = append(detail, "for each element, "+strconv.Itoa(mc)+" at once")
	}
	n.Detail = strings.Join(detail, " · ")
	switch s.Kind() {
	case ferry.StepParallel:
		for i, b := range s.Parallel {
			n.Children = append(n.Children, stepNode(b, fmt.Sprintf("%s.parallel[%d]", path, i), nil))
		}
	case ferry.StepMap:
		// The body's statuses are per element: the map node shows them summed.
		n.Children = []node{stepNode(*s.Map, path+".map[*]", nil)}
	}
	if run != nil {
		run.annotate(&n)
		if s.Kind() == ferry.StepParallel {
			for i, b := range s.Parallel {
				n.Children[i] = stepNode(b, fmt.Sprintf("%s.parallel[%d]", path, i), run)
			}
		}
	}
	return n
}

// annotate sets a node's status from the run's steps.
func (v *chainRunView) annotate(n *node) {
	if n.Kind == ferry.StepMap {
		items := map[string]ferry.InvocationStatus{}
		prefix := n.Path + ".map["
		for _, st := range v.Run.Steps {
			if st.Compensation || !strings.HasPrefix(st.Path, prefix) {
				continue
			}
			idx, _, _ := strings.Cut(st.Path[len(prefix):], "]")
			items[idx] = worse(items[idx], st.Status)
		}
		p := &mapProgress{Started: len(items)}
		for _, s := range items {
			switch {
			case s == ferry.StatusCompleted:
				p.Completed++
			case s.Final():
				p.Failed++
			default:
				p.Running++
			}
		}
		if p.Started > 0 {
			p.Percent = 100 * p.Completed / p.Started
			switch {
			case p.Failed > 0:
				n.Status = ferry.StatusFailed
			case p.Running > 0:
				n.Status = ferry.StatusRunning
			default:
				n.Status = ferry.StatusCompleted
			}
		}
		n.Map = p
		return
	}
	if n.Kind == ferry.StepParallel {
		return // its branches carry the statuses
	}
	for _, st := range v.Run.Steps {
		if st.Path == n.Path && !st.Compensation {
			n.Status, n.Invocation = st.Status, st.InvocationID.String()
			if inv, ok := v.invocations[st.InvocationID]; ok {
				n.Duration = fmtDuration(inv.StartedAt, inv.FinishedAt)
			}
		}
	}
}

// worse keeps the status that says more about a map element: a failure over
// a success, anything over none.
func worse(a, b ferry.InvocationStatus) ferry.InvocationStatus {
	rank := func(s ferry.InvocationStatus) int {
		switch s {
		case "":
			return 0
		case ferry.StatusCompleted:
			return 1
		case ferry.StatusPending, ferry.StatusRunning:
			return 2
		}
		return 3
	}
	if rank(b) > rank(a) {
		return b
	}
	return a
}

func (c *console) chainsPage(w http.ResponseWriter, r *http.Request, s *session) {
	var l listPage[ferry.Chain]
	if err := c.api(r, s).get("/v1/chains?limit=100&cursor="+urlQueryEscape(r.URL.Query().Get("cursor")), &l); err != nil {
		c.errorPage(w, r, s, err)
		return
	}
	c.render(w, r, http.StatusOK, "chains", view(s, "Chains", "chains", l))
}

type chainView struct {
	Version ferry.ChainVersion
	Graph   []node
	Runs    []ferry.ChainRun
}

func (c *console) chainPage(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("name")
	a := c.api(r, s)
	var v chainView
	if err := a.get("/v1/chains/"+pathEscape(name), &v.Version); err != nil {
		c.errorPage(w, r, s, err)
		return
	}
	v.Graph = graph(v.Version.Steps, nil)
	var runs listPage[ferry.ChainRun]
	if err := a.get("/v1/chains/"+pathEscape(name)+"/runs?limit=20", &runs); err != nil {
		c.errorPage(w, r, s, err)
		return
	}
	v.Runs = runs.Items
	c.render(w, r, http.StatusOK, "chain", view(s, "Chain "+name, "chains", v))
}

type chainRunView struct {
	Run         ferry.ChainRun
	Graph       []node
	TemporalURL string
	Steps       []stepRow
	// invocations are the run's step invocations by id, for durations (only
	// when the key may list them).
	invocations map[uuid.UUID]ferry.Invocation
}

type stepRow struct {
	ferry.StepStatus
	Duration string
}

func (c *console) chainRunPage(w http.ResponseWriter, r *http.Request, s *session) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		c.errorPage(w, r, s, &apiError{Status: http.StatusBadRequest, Code: ferry.EINVALID, Message: "not a valid chain run id"})
		return
	}
	a := c.api(r, s)
	v := chainRunView{invocations: map[uuid.UUID]ferry.Invocation{}}
	if err := a.get("/v1/chain-runs/"+id.String(), &v.Run); err != nil {
		c.errorPage(w, r, s, err)
		return
	}
	var def ferry.ChainVersion
	if err := a.get(fmt.Sprintf("/v1/chains/%s?version=%d", pathEscape(v.Run.Chain), v.Run.Version), &def); err != nil &&
		asAPIError(err).Status != http.StatusNotFound {
		c.errorPage(w, r, s, err)
		return
	}
	// Durations come from the step invocations; listing them by run needs
	// read on every function, so other keys see the run without them.
	var invs listPage[ferry.Invocation]
	if err := a.get("/v1/invocations?limit=200&chain_run_id="+id.String(), &invs); err == nil {
		for _, inv := range invs.Items {
			v.invocations[inv.ID] = inv
		}
	}
	for _, st := range v.Run.Steps {
		row := stepRow{StepStatus: st, Duration: "–"}
		if inv, ok := v.invocations[st.InvocationID]; ok {
			row.Duration = fmtDuration(inv.StartedAt, inv.FinishedAt)
		}
		v.Steps = append(v.Steps, row)
	}
	if def.ChainID == v.Run.ChainID {
		v.Graph = graph(def.Steps, &v)
	}
	v.TemporalURL = c.workflowURL(v.Run.WorkflowID)
	c.render(w, r, http.StatusOK, "chainrun", view(s, "Chain run "+id.String()[:8], "chains", v))
}
