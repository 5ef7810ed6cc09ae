package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/ferry-faas/ferry/api"
	"github.com/ferry-faas/ferry/metrics"
)

// TestOpenAPIMatchesRoutes checks that openapi.json documents exactly the
// routes Echo serves, methods included.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := api.New(api.Deps{})
	served := map[string]bool{}
	param := regexp.MustCompile(`:([a-z_]+)`)
	for _, r := range e.Routes() {
		if strings.HasPrefix(r.Method, "echo_") {
			continue
		}
		served[strings.ToLower(r.Method)+" "+param.ReplaceAllString(r.Path, "{$1}")] = true
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/openapi.json", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /v1/openapi.json: %d", rec.Code)
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi version %q", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			if method == "parameters" {
				continue
			}
			documented[method+" "+path] = true
		}
	}
	var missing, extra []string
	for r := range served {
		if !documented[r] {
			missing = append(missing, r)
		}
	}
	for r := range documented {
		if !served[r] {
			extra = append(extra, r)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Errorf("routes not in openapi.json: %v; documented but not served: %v", missing, extra)
	}
	if len(served) < 20 {
		t.Errorf("only %d routes served", len(served))
	}
	// Every $ref points at a defined component.
	refs := regexp.MustCompile(`"\$ref":\s*"#/components/([a-zA-Z]+)/([a-zA-Z]+)"`).FindAllStringSubmatch(rec.Body.String(), -1)
	var all struct {
		Components map[string]map[string]json.RawMessage `json:"components"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &all)
	for _, m := range refs {
		if _, ok := all.Components[m[1]][m[2]]; !ok {
			t.Errorf("dangling $ref #/components/%s/%s", m[1], m[2])
		}
	}
}

func TestHealthReadyMetricsRequestID(t *testing.T) {
	e := newEnv(t)
	r := e.do("GET", "/healthz", "", nil)
	e.want(r, 200, "healthz")
	if id := r.header.Get("X-Request-Id"); len(id) != 24 {
		t.Errorf("generated request id %q", id)
	}
	r = e.do("GET", "/healthz", "", nil, "X-Request-Id", "trace-123")
	if r.header.Get("X-Request-Id") != "trace-123" {
		t.Errorf("request id not echoed: %q", r.header.Get("X-Request-Id"))
	}

	r = e.do("GET", "/readyz", "", nil)
	e.want(r, 200, "readyz")
	checks := r.body["checks"].(map[string]any)
	if checks["postgres"] != "ok" || checks["s3"] != "ok" {
		t.Errorf("readyz checks: %s", r.raw)
	}

	// A failing check makes it 503 and says which.
	down := newEnv(t, func(d *api.Deps) {
		d.Ready["temporal"] = func(context.Context) error { return errors.New("connection refused") }
	})
	r = down.do("GET", "/readyz", "", nil)
	if r.status != 503 || r.body["checks"].(map[string]any)["temporal"] != "error: connection refused" ||
		r.body["checks"].(map[string]any)["postgres"] != "ok" {
		t.Errorf("readyz with temporal down: %d %s", r.status, r.raw)
	}

	// Metrics include the API latency of the requests above, by route template.
	// They name every function, so the API does not serve them (cmd/ferry
	// serves metrics.Handler on a listener of its own).
	e.do("GET", "/v1/functions/some-name", e.admin, nil)
	e.want(e.do("GET", "/metrics", "", nil), 404, "metrics on the API's listener")
	rec := httptest.NewRecorder()
	metrics.Handler(e.reg).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if out := rec.Body.String(); rec.Code != 200 || !strings.Contains(out, `ferry_http_request_duration_seconds_count{method="GET",route="/v1/functions/:name",status="404"} 1`) ||
		!strings.Contains(out, "go_goroutines") {
		t.Errorf("metrics: status %d, lines for /v1/functions/:name: %q", rec.Code,
			regexp.MustCompile(`.*/v1/functions/:name.*_count.*`).FindAllString(out, -1))
	}

	// Method not allowed and unknown routes keep the JSON error shape.
	r = e.do("PUT", "/healthz", "", nil)
	if r.status != http.StatusMethodNotAllowed || r.errCode() == "" {
		t.Errorf("PUT /healthz: %d %s", r.status, r.raw)
	}
}
