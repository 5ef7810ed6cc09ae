package console

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/storage/postgres"
)

const goodKey = "fy_good0000000000000000000000000000"

// fakeAPI accepts goodKey and answers every route with an empty listing.
func fakeAPI() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+goodKey {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error": {"code": "unauthorized", "message": "invalid or revoked API key"}}`))
			return
		}
		_, _ = w.Write([]byte(`{"functions": [], "next_cursor": ""}`))
	})
}

type noStats struct{}

func (noStats) FunctionStats(context.Context, []ferry.Function, time.Time) (map[uuid.UUID]postgres.Stats, error) {
	return nil, nil
}
func (noStats) InvocationSeries(context.Context, ferry.Function, time.Time, time.Duration) ([]postgres.StatsBucket, error) {
	return nil, nil
}

// browser keeps cookies like a browser on one origin.
type browser struct {
	t       *testing.T
	h       http.Handler
	cookies map[string]*http.Cookie
}

func (b *browser) do(method, path string, form url.Values, header ...string) *httptest.ResponseRecorder {
	b.t.Helper()
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	req := httptest.NewRequest(method, "http://ferry.test"+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	for _, c := range b.cookies {
		req.AddCookie(c)
	}
	w := httptest.NewRecorder()
	b.h.ServeHTTP(w, req)
	for _, c := range w.Result().Cookies() {
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c
		}
	}
	return w
}

func TestSignInSessionAndCSRF(t *testing.T) {
	b := &browser{t: t, h: New(Deps{API: fakeAPI(), Stats: noStats{}}), cookies: map[string]*http.Cookie{}}

	if w := b.do("GET", "/console/functions", nil); w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/console/login") {
		t.Fatalf("signed out page: %d %s", w.Code, w.Header().Get("Location"))
	}
	if w := b.do("GET", "/console/data/functions/x", nil); w.Code != http.StatusUnauthorized {
		t.Fatalf("signed out data request: %d", w.Code)
	}
	w := b.do("GET", "/console/login", nil)
	token := b.cookies[loginCookie].Value
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `value="`+token+`"`) {
		t.Fatalf("login page: %d, token %q not in the form", w.Code, token)
	}
	if w := b.do("POST", "/console/login", url.Values{"key": {goodKey}}); w.Code != http.StatusForbidden {
		t.Fatalf("sign-in without the CSRF token: %d", w.Code)
	}
	if w := b.do("POST", "/console/login", url.Values{"key": {"fy_bad"}, "csrf": {token}}); w.Code != http.StatusUnauthorized ||
		!strings.Contains(w.Body.String(), "invalid or revoked") {
		t.Fatalf("sign-in with a bad key: %d", w.Code)
	}
	token = b.cookies[loginCookie].Value // a new one with the new form
	w = b.do("POST", "/console/login", url.Values{"key": {goodKey}, "csrf": {token}, "next": {"//evil.example/"}},
		"X-Forwarded-Proto", "https")
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/console/functions" {
		t.Fatalf("sign-in: %d to %q (an outside next must not be followed)", w.Code, w.Header().Get("Location"))
	}
	sc := b.cookies[sessionCookie]
	if sc == nil || !sc.HttpOnly || !sc.Secure || sc.SameSite != http.SameSiteLaxMode || sc.Path != "/console" || strings.Contains(sc.Value, goodKey) {
		t.Fatalf("session cookie: %+v", sc)
	}
	if w := b.do("GET", "/console/functions", nil); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "No functions") {
		t.Fatalf("functions page: %d", w.Code)
	}
	if w := b.do("POST", "/console/logout", url.Values{}); w.Code != http.StatusForbidden {
		t.Fatalf("sign-out without the CSRF token: %d", w.Code)
	}
	// A cross-origin post is refused before any handler.
	if w := b.do("POST", "/console/logout", url.Values{}, "Sec-Fetch-Site", "cross-site"); w.Code != http.StatusForbidden {
		t.Fatalf("cross-site post: %d", w.Code)
	}
	page := b.do("GET", "/console/functions", nil).Body.String()
	i := strings.Index(page, `name="csrf" value="`)
	csrf := page[i+len(`name="csrf" value="`):]
	csrf = csrf[:strings.IndexByte(csrf, '"')]
	if w := b.do("POST", "/console/logout", url.Values{"csrf": {csrf}}); w.Code != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", w.Code)
	}
	if w := b.do("GET", "/console/functions", nil); w.Code != http.StatusSeeOther {
		t.Fatalf("after sign-out: %d", w.Code)
	}
}

func TestSessionExpires(t *testing.T) {
	s := newSessions(time.Hour)
	now := time.Now()
	s.now = func() time.Time { return now }
	sess := s.create(goodKey)
	if s.get(sess.token) == nil {
		t.Fatal("new session not found")
	}
	now = now.Add(time.Hour + time.Second)
	if s.get(sess.token) != nil {
		t.Fatal("expired session still valid")
	}
}

func TestSafeNext(t *testing.T) {
	for next, want := range map[string]string{
		"/console/invocations?status=failed": "/console/invocations?status=failed",
		"https://evil.example/":              "/console/functions",
		"//evil.example/console/":            "/console/functions",
		"/v1/keys":                           "/console/functions",
		"/console/\\evil":                    "/console/functions",
	} {
		if got := safeNext(next); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", next, got, want)
		}
	}
}

func TestMapProgressAndStepStatus(t *testing.T) {
	steps := []ferry.Step{{Function: "split"}, {Map: &ferry.Step{Function: "work"}, MaxConcurrency: 2},
		{Parallel: []ferry.Step{{Function: "a"}, {Function: "b"}}}}
	id := uuid.New()
	run := &chainRunView{Run: ferry.ChainRun{Steps: []ferry.StepStatus{
		{Path: "0", Status: ferry.StatusCompleted, InvocationID: id},
		{Path: "1.map[0]", Status: ferry.StatusCompleted},
		{Path: "1.map[1]", Status: ferry.StatusCompleted},
		{Path: "1.map[2]", Status: ferry.StatusRunning},
		{Path: "2.parallel[1]", Status: ferry.StatusFailed},
		{Path: "0.compensate", Status: ferry.StatusCompleted, Compensation: true},
	}}, invocations: map[uuid.UUID]ferry.Invocation{}}
	g := graph(steps, run)
	if g[0].Status != ferry.StatusCompleted || g[0].Invocation != id.String() {
		t.Errorf("function step: %+v", g[0])
	}
	if m := g[1].Map; m == nil || m.Started != 3 || m.Completed != 2 || m.Running != 1 || m.Percent != 66 || g[1].Status != ferry.StatusRunning {
		t.Errorf("map step: %+v %+v", g[1], g[1].Map)
	}
	if g[1].Detail != "for each element, 2 at once" {
		t.Errorf("map detail: %q", g[1].Detail)
	}
	if b := g[2].Children; len(b) != 2 || b[0].Status != "" || b[1].Status != ferry.StatusFailed {
		t.Errorf("parallel branches: %+v", b)
	}
}

func TestChartsEscapeNothingUserWritten(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	bs := []postgres.StatsBucket{{Start: start, Stats: postgres.Stats{Invocations: 4, Errors: 1, Finished: 4, P50MS: 12, P99MS: 80}},
		{Start: start.Add(time.Hour)}}
	c := drawCharts(bs, time.Hour)
	if c.Empty || !strings.Contains(string(c.Invocations), `class="err"`) || !strings.Contains(string(c.Duration), "p99") {
		t.Fatalf("charts: %+v", c)
	}
	if niceMax(3) != 5 || niceMax(0) != 1 || niceMax(120) != 200 {
		t.Fatalf("niceMax: %v %v %v", niceMax(3), niceMax(0), niceMax(120))
	}
}

func TestDataErrorsAreJSON(t *testing.T) {
	c := &console{Deps: Deps{API: fakeAPI()}, sessions: newSessions(time.Hour), pages: parseTemplates()}
	w := httptest.NewRecorder()
	c.Deps.Logger = discard()
	c.errorPage(w, httptest.NewRequest("GET", "/console/data/functions/x", nil), nil,
		&apiError{Status: http.StatusForbidden, Code: ferry.EFORBIDDEN, Message: "no read permission"})
	var body struct {
		Error struct{ Code, Message string }
	}
	if w.Code != http.StatusForbidden || json.Unmarshal(w.Body.Bytes(), &body) != nil || body.Error.Code != ferry.EFORBIDDEN {
		t.Fatalf("data error: %d %s", w.Code, w.Body)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// Without scripts, the page of a running invocation reloads itself to show
// new logs; a final one does not.
func TestInvocationPageRefreshesWithoutScript(t *testing.T) {
	c := &console{Deps: Deps{Logger: slog.New(slog.DiscardHandler)}, pages: parseTemplates()}
	for _, tc := range []struct {
		status ferry.InvocationStatus
		want   bool
	}{{ferry.StatusRunning, true}, {ferry.StatusWaiting, true}, {ferry.StatusCompleted, false}} {
		w := httptest.NewRecorder()
		v := invocationView{Invocation: ferry.Invocation{ID: uuid.New(), Function: "f", Status: tc.status}}
		c.render(w, httptest.NewRequest(http.MethodGet, "/", nil), http.StatusOK, "invocation", page{Title: "t", Data: v})
		if got := strings.Contains(w.Body.String(), `<noscript><meta http-equiv="refresh" content="3"></noscript>`); got != tc.want {
			t.Errorf("%s invocation: refresh without script %v, want %v", tc.status, got, tc.want)
		}
	}
}
