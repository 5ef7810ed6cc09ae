package console

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/ferry-faas/ferry"
)

// schedule is api.Schedule as the console reads it.
type schedule struct {
	Name   string `json:"name"`
	Cron   string `json:"cron"`
	Every  string `json:"every"`
	Target struct {
		Function string `json:"function"`
		Chain    string `json:"chain"`
		Version  int    `json:"version"`
	} `json:"target"`
	Payload    json.RawMessage `json:"payload"`
	Overlap    string          `json:"overlap"`
	Paused     bool            `json:"paused"`
	Note       string          `json:"note"`
	NumRuns    int             `json:"num_runs"`
	NextRuns   []time.Time     `json:"next_runs"`
	RecentRuns []struct {
		ScheduledAt time.Time `json:"scheduled_at"`
		ID          string    `json:"id"`
	} `json:"recent_runs"`
}

func (c *console) schedulesPage(w http.ResponseWriter, r *http.Request, s *session) {
	var l struct {
		Schedules []schedule `json:"schedules"`
	}
	if err := c.api(r, s).get("/v1/schedules", &l); err != nil {
		c.errorPage(w, r, s, err)
		return
	}
	c.render(w, r, http.StatusOK, "schedules", view(s, "Schedules", "schedules", l.Schedules))
}

// scheduleAction pauses, resumes or triggers a schedule.
func (c *console) scheduleAction(w http.ResponseWriter, r *http.Request, s *session) {
	action := r.PathValue("action")
	if action != "pause" && action != "resume" && action != "trigger" {
		c.errorPage(w, r, s, &apiError{Status: http.StatusNotFound, Code: ferry.ENOTFOUND, Message: "no such action"})
		return
	}
	if err := c.api(r, s).post("/v1/schedules/"+pathEscape(r.PathValue("name"))+"/"+action, []byte("{}"), nil); err != nil {
		c.errorPage(w, r, s, err)
		return
	}
	http.Redirect(w, r, Prefix+"/schedules", http.StatusSeeOther)
}

type healthView struct {
	Ready      bool
	Checks     []check
	Pool       bool // the worker runs in this process
	Warm, Busy int
	Queue      *TaskQueue // for admin keys
	QueueError string
}

type check struct{ Name, Result string }

// healthPage shows /readyz's checks and the warm pool of an in-process worker.
func (c *console) healthPage(w http.ResponseWriter, r *http.Request, s *session) {
	var ready struct {
		Checks map[string]string `json:"checks"`
	}
	res, err := c.api(r, s).do(http.MethodGet, "/readyz", nil, nil, &ready)
	if err != nil && asAPIError(err).Status != http.StatusServiceUnavailable {
		c.errorPage(w, r, s, err)
		return
	}
	if err != nil { // 503: the body still lists the checks
		_ = json.Unmarshal(res.body.Bytes(), &ready)
	}
	v := healthView{Ready: err == nil}
	for _, name := range sortedKeys(ready.Checks) {
		v.Checks = append(v.Checks, check{name, ready.Checks[name]})
	}
	if c.Pool != nil {
		v.Pool = true
		v.Warm, v.Busy = c.Pool()
	}
	// Workers' identities name hosts: shown to keys that may manage keys,
	// as the API decides for GET /v1/keys.
	if c.Queue != nil && c.api(r, s).get("/v1/keys", nil) == nil {
		q, err := c.Queue(r.Context())
		if err != nil {
			c.Logger.Warn("describing the task queue", "err", err)
			v.QueueError = "Temporal did not describe the task queue: " + err.Error()
		} else {
			v.Queue = &q
		}
	}
	c.render(w, r, http.StatusOK, "health", view(s, "Health", "health", v))
}
