package api_test

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ferry-faas/ferry"
)

// pages reads a listing page by page with limit=1 and returns the items' values
// of field and every cursor, decoded (cursors are base64 JSON of a row's keyset).
func (e *env) pages(path, key, items, field string) ([]string, []string) {
	e.t.Helper()
	var got, cursors []string
	cursor := ""
	for range 20 {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		r := e.do("GET", path+sep+"limit=1&cursor="+cursor, key, nil)
		e.want(r, 200, "list "+path)
		list := r.list(items)
		for _, it := range list {
			got = append(got, fmt.Sprint(it.(map[string]any)[field]))
		}
		cursor = r.str("next_cursor")
		if cursor == "" {
			return got, cursors
		}
		if len(list) != 1 {
			e.t.Fatalf("%s: a page of %d items with a next cursor: %s", path, len(list), r.raw)
		}
		raw, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil {
			e.t.Fatalf("cursor %q: %v", cursor, err)
		}
		cursors = append(cursors, string(raw))
	}
	e.t.Fatalf("%s: more than 20 pages", path)
	return nil, nil
}

// TestListingsShowOnlyWhatTheKeyMayRead: an invoker pages through functions,
// chains, chain versions and chain runs and meets only what its grants let it
// read: full pages, and no cursor that names anything else.
func TestListingsShowOnlyWhatTheKeyMayRead(t *testing.T) {
	e := newEnv(t)
	for _, name := range []string{"a-hidden", "b-granted", "c-hidden", "d-granted", "e-hidden"} {
		e.want(e.do("POST", "/v1/functions", e.admin, map[string]any{"name": name, "runtime": "python",
			"handler": "app.handler", "code": b64([]byte(pySource))}), 201, "deploy "+name)
	}
	inv, invID := e.newKey(ferry.RoleInvoker, "invoker")
	for _, fn := range []string{"b-granted", "d-granted"} {
		e.want(e.do("POST", "/v1/functions/"+fn+"/permissions", e.admin,
			map[string]any{"key_id": invID, "permission": "execute"}), 200, "grant "+fn)
	}

	fns, cursors := e.pages("/v1/functions", inv, "functions", "name")
	if !slices.Equal(fns, []string{"b-granted", "d-granted"}) || strings.Contains(strings.Join(cursors, " "), "hidden") {
		t.Errorf("invoker's function pages: %v, cursors %v", fns, cursors)
	}
	if fns, _ := e.pages("/v1/functions", e.admin, "functions", "name"); len(fns) != 5 {
		t.Errorf("admin's function pages: %v", fns)
	}

	chain := func(name string, steps ...any) {
		e.want(e.do("POST", "/v1/chains", e.admin, map[string]any{"name": name, "steps": steps}), 201, "deploy chain "+name)
	}
	fn := func(name string) map[string]any { return map[string]any{"function": name} }
	// c1: v1 runs a hidden function, v2 and v3 only granted ones.
	chain("c1", fn("a-hidden"))
	chain("c1", fn("b-granted"))
	chain("c1", fn("b-granted"), fn("d-granted"))
	// c2: hidden functions as a compensation and nested in parallel and map.
	chain("c2", map[string]any{"function": "d-granted", "compensate": "c-hidden"})
	chain("c2", map[string]any{"parallel": []any{fn("b-granted"), map[string]any{"map": fn("e-hidden")}}})
	chain("c2", map[string]any{"parallel": []any{fn("b-granted"), map[string]any{"map": fn("d-granted")}}})
	// c0 and c3: their latest version runs a hidden function.
	chain("c0", fn("e-hidden"))
	chain("c3", fn("b-granted"))
	chain("c3", map[string]any{"function": "b-granted", "compensate": "a-hidden"})

	chains, cursors := e.pages("/v1/chains", inv, "chains", "name")
	if !slices.Equal(chains, []string{"c1", "c2"}) || strings.Contains(strings.Join(cursors, " "), "c0") ||
		strings.Contains(strings.Join(cursors, " "), "c3") {
		t.Errorf("invoker's chain pages: %v, cursors %v", chains, cursors)
	}
	if chains, _ := e.pages("/v1/chains", e.admin, "chains", "name"); len(chains) != 4 {
		t.Errorf("admin's chain pages: %v", chains)
	}
	for name, want := range map[string][]string{"c1": {"3", "2"}, "c2": {"3"}} {
		if vs, _ := e.pages("/v1/chains/"+name+"/versions", inv, "versions", "version"); !slices.Equal(vs, want) {
			t.Errorf("invoker's versions of %s: %v, want %v", name, vs, want)
		}
		if vs, _ := e.pages("/v1/chains/"+name+"/versions", e.admin, "versions", "version"); len(vs) != 3 {
			t.Errorf("admin's versions of %s: %v", name, vs)
		}
	}
	e.want(e.do("GET", "/v1/chains/c3/versions", inv, nil), 403, "versions of a chain whose latest version is hidden")

	// Runs of c1: two of each version.
	c1, err := e.db.GetChain(ctxT(t), "c1")
	if err != nil {
		t.Fatal(err)
	}
	runs := map[int][]string{}
	for _, v := range []int{1, 2, 3, 1, 2, 3} {
		r, _, err := e.db.CreateChainRun(ctxT(t), ferry.ChainRun{Chain: "c1", ChainID: c1.ID, Version: v})
		if err != nil {
			t.Fatal(err)
		}
		runs[v] = append(runs[v], r.ID.String())
	}
	ids, cursors := e.pages("/v1/chains/c1/runs", inv, "runs", "id")
	want := []string{runs[3][1], runs[2][1], runs[3][0], runs[2][0]}
	if !slices.Equal(ids, want) {
		t.Errorf("invoker's runs of c1: %v, want %v (versions 3, 2 newest first)", ids, want)
	}
	for _, id := range runs[1] {
		if strings.Contains(strings.Join(cursors, " "), id) {
			t.Errorf("a cursor names run %s of version 1: %v", id, cursors)
		}
	}
	if ids, _ := e.pages("/v1/chains/c1/runs", e.admin, "runs", "id"); len(ids) != 6 {
		t.Errorf("admin's runs of c1: %v", ids)
	}

	// c1 deleted and created again, running only granted functions, is another
	// chain: the deleted one's runs are not shown through its versions.
	e.want(e.do("DELETE", "/v1/chains/c1", e.admin, nil), 204, "delete c1")
	for range 3 {
		chain("c1", fn("b-granted"))
	}
	if ids, _ := e.pages("/v1/chains/c1/runs", inv, "runs", "id"); len(ids) != 0 {
		t.Errorf("invoker's runs of the new c1: %v, want none (all are the deleted c1's)", ids)
	}
	r := e.do("GET", "/v1/chain-runs/"+runs[3][0], inv, nil)
	e.want(r, 403, "invoker reads a run of the deleted c1")
	e.want(e.do("GET", "/v1/chain-runs/"+runs[3][0], e.admin, nil), 200, "admin reads a run of the deleted c1")
}
