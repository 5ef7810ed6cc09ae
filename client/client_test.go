package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/client"
)

// TestErrorsCarryTheServersCode: an error answer becomes an *client.Error
// whose code is the one in the body, or, without one, the status's.
func TestErrorsCarryTheServersCode(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/functions/missing", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(404)
		io.WriteString(w, `{"error":{"code":"not_found","message":"function missing not found"}}`)
	})
	mux.HandleFunc("GET /v1/functions/proxy", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(502)
		io.WriteString(w, "bad gateway\n")
	})
	mux.HandleFunc("GET /v1/functions/ok", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer k" {
			w.WriteHeader(401)
			return
		}
		io.WriteString(w, `{"name":"ok","version":3,"runtime":"python","limits":{"timeout_seconds":5}}`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := client.New(srv.URL, "k")
	ctx := context.Background()

	v, err := c.Function(ctx, "ok", 0)
	if err != nil || v.Function != "ok" || v.Version != 3 || v.Runtime != ferry.RuntimePython || v.Limits.TimeoutSeconds != 5 {
		t.Fatalf("Function(ok) = %+v, %v", v, err)
	}
	for _, tc := range []struct {
		name, code, msg string
		status          int
	}{
		{"missing", ferry.ENOTFOUND, "function missing not found (HTTP 404)", 404},
		{"proxy", ferry.EUNAVAILABLE, "bad gateway (HTTP 502)", 502},
	} {
		_, err := c.Function(ctx, tc.name, 0)
		var ce *client.Error
		if !errors.As(err, &ce) || ce.StatusCode != tc.status || err.Error() != tc.msg || ferry.ErrorCode(err) != tc.code {
			t.Errorf("Function(%s) = %v (code %q), want %q with code %s", tc.name, err, ferry.ErrorCode(err), tc.msg, tc.code)
		}
	}
	if _, err := client.New(srv.URL, "").Function(ctx, "ok", 0); ferry.ErrorCode(err) != ferry.EUNAUTHORIZED {
		t.Errorf("without a key: %v, want code %s", err, ferry.EUNAUTHORIZED)
	}
	srv.Close()
	_, err = c.Function(ctx, "ok", 0)
	if ferry.ErrorCode(err) != ferry.EUNAVAILABLE || !strings.Contains(err.Error(), "cannot reach the Ferry API") {
		t.Errorf("server gone: %v (code %q)", err, ferry.ErrorCode(err))
	}
}

// TestListFollowsCursors: a listing is fetched page by page up to max.
func TestListFollowsCursors(t *testing.T) {
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.RawQuery)
		switch r.URL.Query().Get("cursor") {
		case "":
			io.WriteString(w, `{"functions":[{"name":"a"},{"name":"b"}],"next_cursor":"c2"}`)
		case "c2":
			io.WriteString(w, `{"functions":[{"name":"c"}],"next_cursor":""}`)
		}
	}))
	defer srv.Close()
	fns, err := client.New(srv.URL, "k").Functions(context.Background(), 0)
	if err != nil || len(fns) != 3 || fns[2].Name != "c" {
		t.Fatalf("Functions = %+v, %v", fns, err)
	}
	if len(queries) != 2 || queries[0] != "limit=200" || queries[1] != "cursor=c2&limit=200" {
		t.Errorf("queries %q", queries)
	}
	queries = nil
	fns, err = client.New(srv.URL, "k").Functions(context.Background(), 2)
	if err != nil || len(fns) != 2 || len(queries) != 1 || queries[0] != "limit=2" {
		t.Errorf("Functions(max 2) = %+v, %v after %q", fns, err, queries)
	}
}
