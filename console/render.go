package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ferry-faas/ferry"
)

// page is what every template gets: the layout's fields and the page's Data.
type page struct {
	Title string
	Nav   string // the active navigation entry
	Key   string // the signed-in key's prefix
	CSRF  string
	Data  any
}

type templateSet = template.Template

var funcs = template.FuncMap{
	"ms":       fmtMS,
	"pct":      func(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) },
	"when":     fmtTime,
	"ago":      fmtAgo,
	"pretty":   prettyJSON,
	"bytes":    fmtBytes,
	"prefix":   func() string { return Prefix },
	"path":     pathEscape,
	"query":    urlQueryEscape,
	"final":    func(s ferry.InvocationStatus) bool { return s.Final() },
	"duration": fmtDuration,
	"short":    shortID,
}

// shortID is the last 8 characters of an id: the first ones of a UUIDv7 are
// its time, the same for ids made close together.
func shortID(id string) string {
	if len(id) <= 8 {
		return id
	}
	return id[len(id)-8:]
}

// parseTemplates parses each page with the layout.
func parseTemplates() map[string]*templateSet {
	names, err := templateFS.ReadDir("templates")
	if err != nil {
		panic(err)
	}
	out := map[string]*templateSet{}
	for _, n := range names {
		name := strings.TrimSuffix(n.Name(), ".html")
		if name == "layout" || strings.HasPrefix(name, "_") {
			continue
		}
		out[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(templateFS,
			"templates/layout.html", "templates/_*.html", "templates/"+n.Name()))
	}
	return out
}

// render writes a whole page; a template error is a 500 (and a bug).
func (c *console) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	var buf bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		c.Logger.Error("console template", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// view starts the page of a signed-in request.
func view(s *session, title, nav string, data any) page {
	return page{Title: title, Nav: nav, Key: s.prefix, CSRF: s.csrf, Data: data}
}

// errorPage shows err with its status: an error page, or JSON for a data
// request. A key the API no longer accepts ends the session.
func (c *console) errorPage(w http.ResponseWriter, r *http.Request, s *session, err error) {
	ae := asAPIError(err)
	if ae.Status >= 500 && ae.Code == ferry.EINTERNAL {
		c.Logger.Error("console request failed", "path", r.URL.Path, "err", err)
	}
	if s != nil && ae.Status == http.StatusUnauthorized {
		c.sessions.delete(s.token)
		setCookie(w, r, sessionCookie, "", -1)
		s = nil
	}
	if isData(r) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(ae.Status)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": ae.Code, "message": ae.Message}})
		return
	}
	p := page{Title: http.StatusText(ae.Status), Data: ae}
	if s != nil {
		p = view(s, http.StatusText(ae.Status), "", ae)
	}
	c.render(w, r, ae.Status, "error", p)
}

func fmtMS(ms float64) string {
	switch {
	case ms <= 0:
		return "–"
	case ms < 10:
		return fmt.Sprintf("%.1f ms", ms)
	case ms < 1000:
		return fmt.Sprintf("%.0f ms", ms)
	case ms < 60000:
		return fmt.Sprintf("%.2f s", ms/1000)
	}
	return fmt.Sprintf("%.1f min", ms/60000)
}

func fmtDuration(from, to *time.Time) string {
	if from == nil || to == nil {
		return "–"
	}
	return fmtMS(float64(to.Sub(*from).Microseconds()) / 1000)
}

func fmtTime(t any) string {
	switch v := t.(type) {
	case time.Time:
		if v.IsZero() {
			return "–"
		}
		return v.UTC().Format("2006-01-02 15:04:05 UTC")
	case *time.Time:
		if v == nil {
			return "–"
		}
		return fmtTime(*v)
	}
	return ""
}

func fmtAgo(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(math.Max(0, d.Seconds())))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// prettyJSON indents a JSON payload for reading; anything else is shown as is.
func prettyJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return string(raw)
	}
	return buf.String()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
