package api_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/api"
	"github.com/ferry-faas/ferry/storage/postgres/pgtest"
)

func TestDeployEachRuntimeListGetDelete(t *testing.T) {
	e := newEnv(t)
	unique := "# " + uuid.NewString() + "\n"
	cases := []struct {
		name    string
		runtime ferry.Runtime
		handler string
		body    func() any
	}{
		{"py-file", ferry.RuntimePython, "app.handler", func() any {
			return map[string]any{"name": "py-file", "runtime": "python", "handler": "app.handler",
				"code": b64([]byte(pySource + unique)), "timeout_seconds": 5, "memory_mb": 64,
				"env": map[string]string{"GREETING": "hi"}, "description": "python single file"}
		}},
		{"py-zip", ferry.RuntimePython, "app.handler", func() any {
			return map[string]any{"name": "py-zip", "runtime": "python", "handler": "app.handler",
				"code": b64(zipOf(t, map[string]string{"app.py": pySource, "lib/util.py": "X = 1\n"}))}
		}},
		{"node-tgz", ferry.RuntimeNode, "index.handler", func() any {
			return multipartOf(t, "bundle.tar.gz", tarGzOf(t, map[string]string{"index.js": nodeSource}),
				"name", "node-tgz", "runtime", "nodejs", "handler", "index.handler", "env", "A=1", "env", "B=2",
				"network", "true", "cpus", "1.5")
		}},
		{"go-file", ferry.RuntimeGo, "Handle", func() any {
			return multipartOf(t, "main.go", []byte(goSource), "name", "go-file", "runtime", "go", "handler", "Handle")
		}},
	}
	for _, c := range cases {
		r := e.do("POST", "/v1/functions", e.admin, c.body())
		e.want(r, 201, "deploy "+c.name)
		if r.str("name") != c.name || r.body["version"] != 1.0 || r.str("runtime") != string(c.runtime) ||
			r.str("handler") != c.handler || len(r.str("checksum")) != 64 || r.body["code_size"].(float64) <= 0 {
			t.Fatalf("deploy %s: unexpected body %s", c.name, r.raw)
		}
		if r.header.Get("Location") != "/v1/functions/"+c.name {
			t.Errorf("deploy %s: Location %q", c.name, r.header.Get("Location"))
		}
	}
	// Fields and defaults came through.
	r := e.do("GET", "/v1/functions/node-tgz", e.admin, nil)
	e.want(r, 200, "get node-tgz")
	limits := r.body["limits"].(map[string]any)
	env := r.body["env"].(map[string]any)
	if limits["network"] != true || limits["cpus"] != 1.5 || limits["timeout_seconds"] != 30.0 || env["A"] != "1" || env["B"] != "2" {
		t.Errorf("node-tgz: limits %v env %v", limits, env)
	}

	// A second version, then versions newest first.
	r = e.do("POST", "/v1/functions", e.admin, map[string]any{"name": "py-file", "runtime": "python",
		"handler": "app.handler", "code": b64([]byte(pySource + "# v2\n" + unique))})
	e.want(r, 201, "deploy py-file v2")
	if r.body["version"] != 2.0 {
		t.Fatalf("second deploy: version %v", r.body["version"])
	}
	r = e.do("GET", "/v1/functions/py-file/versions", e.admin, nil)
	e.want(r, 200, "versions")
	vs := r.list("versions")
	if len(vs) != 2 || vs[0].(map[string]any)["version"] != 2.0 || vs[1].(map[string]any)["version"] != 1.0 {
		t.Fatalf("versions: %s", r.raw)
	}
	r = e.do("GET", "/v1/functions/py-file?version=1", e.admin, nil)
	e.want(r, 200, "get v1")
	if r.body["version"] != 1.0 || r.str("description") != "python single file" {
		t.Errorf("get v1: %s", r.raw)
	}

	// List with pagination.
	r = e.do("GET", "/v1/functions?limit=3", e.admin, nil)
	e.want(r, 200, "list")
	if len(r.list("functions")) != 3 || r.str("next_cursor") == "" {
		t.Fatalf("list page 1: %s", r.raw)
	}
	r = e.do("GET", "/v1/functions?limit=3&cursor="+r.str("next_cursor"), e.admin, nil)
	e.want(r, 200, "list page 2")
	if fns := r.list("functions"); len(fns) != 1 || fns[0].(map[string]any)["name"] != "py-zip" || r.str("next_cursor") != "" {
		t.Fatalf("list page 2: %s", r.raw)
	}
	e.want(e.do("GET", "/v1/functions?limit=0", e.admin, nil), 400, "limit 0")
	e.want(e.do("GET", "/v1/functions?cursor=zzz", e.admin, nil), 400, "bad cursor")

	// Delete removes the rows and the code that no other version uses.
	if !e.codeExists([]byte(pySource + unique)) {
		t.Fatal("code of py-file v1 not in S3")
	}
	e.want(e.do("DELETE", "/v1/functions/py-file", e.admin, nil), 204, "delete")
	e.want(e.do("GET", "/v1/functions/py-file", e.admin, nil), 404, "get deleted")
	e.want(e.do("GET", "/v1/functions/py-file/versions", e.admin, nil), 404, "versions of deleted")
	e.want(e.do("DELETE", "/v1/functions/py-file", e.admin, nil), 404, "delete twice")
	if e.codeExists([]byte(pySource+unique)) || e.codeExists([]byte(pySource+"# v2\n"+unique)) {
		t.Error("code of the deleted function is still in S3")
	}
	if n := e.countFunctions(); n != 3 {
		t.Errorf("functions left: %d, want 3", n)
	}
}

func TestDeployBadInputCreatesNothing(t *testing.T) {
	e := newEnv(t)
	unique := "# " + uuid.NewString() + "\n"
	good := func(edit func(m map[string]any)) map[string]any {
		m := map[string]any{"name": "fn", "runtime": "python", "handler": "app.handler", "code": b64([]byte(pySource + unique))}
		edit(m)
		return m
	}
	cases := []struct {
		what   string
		body   any
		status int
		msg    string // substring of the message
	}{
		{"malformed JSON", `{"name": "fn", `, 400, "body: malformed JSON"},
		{"not an object", `[1, 2]`, 400, "body: must be a JSON object"},
		{"trailing data", `{"name": "fn"} {}`, 400, "body: unexpected data"},
		{"empty body", ``, 400, "body: empty"},
		{"bad base64", good(func(m map[string]any) { m["code"] = "not base64!!" }), 400, "code: not valid base64"},
		{"no code", good(func(m map[string]any) { delete(m, "code") }), 400, "code: is required"},
		{"unknown runtime", good(func(m map[string]any) { m["runtime"] = "cobol" }), 400, "runtime: must be one of python, nodejs, go"},
		{"empty name", good(func(m map[string]any) { m["name"] = "" }), 400, "name: is required"},
		{"bad name", good(func(m map[string]any) { m["name"] = "Bad_Name" }), 400, "name: must match ^[a-z][a-z0-9-]{0,62}$"},
		{"unknown field", good(func(m map[string]any) { m["colour"] = "red" }), 400, "colour: unknown field"},
		{"wrong type", good(func(m map[string]any) { m["timeout_seconds"] = "ten" }), 400, "timeout_seconds: must be an integer"},
		{"timeout too long", good(func(m map[string]any) { m["timeout_seconds"] = 901 }), 400, "timeout_seconds: must be between 1 and 900"},
		{"memory too big", good(func(m map[string]any) { m["memory_mb"] = 8192 }), 400, "memory_mb: must be between"},
		{"negative cpus", good(func(m map[string]any) { m["cpus"] = -1 }), 400, "cpus:"},
		{"retries", good(func(m map[string]any) { m["retries"] = 11 }), 400, "retries: must be between 0 and 10"},
		{"concurrency", good(func(m map[string]any) { m["max_concurrency"] = 101 }), 400, "max_concurrency:"},
		{"reserved env", good(func(m map[string]any) { m["env"] = map[string]string{"HOME": "/x"} }), 400, "env: HOME is reserved"},
		// FERRY_SOCKET was accepted and broke every cold start of the version.
		{"reserved FERRY_ prefix", good(func(m map[string]any) { m["env"] = map[string]string{"FERRY_SOCKET": "/x"} }), 400,
			"env: FERRY_SOCKET is reserved: Ferry sets the FERRY_* and AWS_LAMBDA_* names, LAMBDA_TASK_ROOT, _HANDLER and HOME"},
		{"reserved AWS_LAMBDA_ prefix", good(func(m map[string]any) { m["env"] = map[string]string{"AWS_LAMBDA_RUNTIME_API": "x"} }), 400, "env: AWS_LAMBDA_RUNTIME_API is reserved"},
		{"multipart reserved env", multipartOf(t, "app.py", []byte(pySource+unique), "name", "fn", "runtime", "python", "handler", "app.handler", "env", "FERRY_SPARE=1"), 400, "env: FERRY_SPARE is reserved"},
		{"bad env name", good(func(m map[string]any) { m["env"] = map[string]string{"1X": "y"} }), 400, "env: \"1X\" is not a valid variable name"},
		{"no handler", good(func(m map[string]any) { m["handler"] = "" }), 400, "handler: is required"},
		{"bad handler", good(func(m map[string]any) { m["handler"] = "nodot" }), 400, "handler:"},
		{"broken zip", good(func(m map[string]any) {
			m["code"] = b64([]byte("PK\x03\x04 this is not a zip" + unique))
			m["filename"] = "bundle.zip"
		}), 422, "code:"},
		{"broken tar.gz", good(func(m map[string]any) { m["code"] = b64([]byte("\x1f\x8b\x08garbage" + unique)) }), 422, "code:"},
		{"handler file missing", good(func(m map[string]any) {
			m["code"] = b64(zipOf(t, map[string]string{"other.py": pySource + unique}))
		}), 422, "app.py"},
		{"code over the limit", good(func(m map[string]any) {
			m["code"] = b64([]byte(strings.Repeat("#", 1<<20+1)))
		}), 413, "code:"},
		{"body over the limit", good(func(m map[string]any) {
			m["code"] = b64([]byte(strings.Repeat("#", 2<<20)))
		}), 413, "request body is larger than the limit"},
		{"multipart empty code", multipartOf(t, "app.py", nil, "name", "fn", "runtime", "python", "handler", "app.handler"), 400, "code: is empty"},
		{"multipart unknown field", multipartOf(t, "app.py", []byte(pySource), "name", "fn", "colour", "red"), 400, "colour: unknown field"},
		{"multipart bad int", multipartOf(t, "app.py", []byte(pySource), "name", "fn", "runtime", "python", "handler", "app.handler", "memory_mb", "lots"), 400, "memory_mb: must be an integer"},
		// Every limit, against the bounds of docs/API.md, in JSON and in multipart forms.
		{"cpus below the engine's quota", good(func(m map[string]any) { m["cpus"] = 1e-9 }), 400, "cpus: must be between 0.01 and 4 (0 for the default 0.5), not 1e-09"},
		{"cpus 0.0001", good(func(m map[string]any) { m["cpus"] = 0.0001 }), 400, "cpus: must be between 0.01 and 4"},
		{"cpus too many", good(func(m map[string]any) { m["cpus"] = 4.5 }), 400, "cpus: must be between 0.01 and 4"},
		{"memory too small", good(func(m map[string]any) { m["memory_mb"] = 16 }), 400, "memory_mb: must be between 32 and 4096 (0 for the default 128), not 16"},
		{"negative timeout", good(func(m map[string]any) { m["timeout_seconds"] = -5 }), 400, "timeout_seconds: must be between 1 and 900"},
		{"negative concurrency", good(func(m map[string]any) { m["max_concurrency"] = -1 }), 400, "max_concurrency: must be between 1 and 100"},
		{"negative retries", good(func(m map[string]any) { m["retries"] = -1 }), 400, "retries: must be between 0 and 10, not -1"},
		{"huge timeout", good(func(m map[string]any) { m["timeout_seconds"] = 1e12 }), 400, "timeout_seconds: must be between 1 and 900"},
		{"multipart cpus NaN", multipartOf(t, "app.py", []byte(pySource+unique), "name", "fn", "runtime", "python", "handler", "app.handler", "cpus", "NaN"), 400, `cpus: must be a number, not "NaN"`},
		{"multipart cpus Inf", multipartOf(t, "app.py", []byte(pySource+unique), "name", "fn", "runtime", "python", "handler", "app.handler", "cpus", "+Inf"), 400, `cpus: must be a number, not "+Inf"`},
		{"multipart cpus overflow", multipartOf(t, "app.py", []byte(pySource+unique), "name", "fn", "runtime", "python", "handler", "app.handler", "cpus", "1e400"), 400, "cpus: must be a number"},
		{"multipart cpus tiny", multipartOf(t, "app.py", []byte(pySource+unique), "name", "fn", "runtime", "python", "handler", "app.handler", "cpus", "0.0001"), 400, "cpus: must be between 0.01 and 4"},
		{"multipart memory", multipartOf(t, "app.py", []byte(pySource+unique), "name", "fn", "runtime", "python", "handler", "app.handler", "memory_mb", "8"), 400, "memory_mb: must be between 32 and 4096"},
		{"multipart timeout", multipartOf(t, "app.py", []byte(pySource+unique), "name", "fn", "runtime", "python", "handler", "app.handler", "timeout_seconds", "901"), 400, "timeout_seconds: must be between 1 and 900"},
		{"multipart concurrency", multipartOf(t, "app.py", []byte(pySource+unique), "name", "fn", "runtime", "python", "handler", "app.handler", "max_concurrency", "101"), 400, "max_concurrency: must be between 1 and 100"},
		{"multipart retries", multipartOf(t, "app.py", []byte(pySource+unique), "name", "fn", "runtime", "python", "handler", "app.handler", "retries", "11"), 400, "retries: must be between 0 and 10"},
		{"multipart wrong extension", multipartOf(t, "app.js", []byte(pySource+unique), "name", "fn", "runtime", "python", "handler", "app.handler"), 422, ".py"},
	}
	for _, c := range cases {
		t.Run(c.what, func(t *testing.T) {
			r := e.do("POST", "/v1/functions", e.admin, c.body)
			e.want(r, c.status, c.what)
			if !strings.Contains(r.errMessage(), c.msg) {
				t.Errorf("%s: message %q does not contain %q", c.what, r.errMessage(), c.msg)
			}
		})
	}
	if n := e.countFunctions(); n != 0 {
		t.Errorf("bad deploys created %d functions", n)
	}
	if e.codeExists([]byte(pySource + unique)) {
		t.Error("a rejected deploy stored its code in S3")
	}
	r := e.do("POST", "/v1/functions", e.admin, "not json", "Content-Type", "text/plain")
	e.want(r, 400, "text/plain")
	if !strings.Contains(r.errMessage(), "Content-Type") {
		t.Errorf("text/plain message: %q", r.errMessage())
	}
}

func TestAuthRolesAndPermissions(t *testing.T) {
	e := newEnv(t)
	deploy := func(key, name string) response {
		return e.do("POST", "/v1/functions", key, map[string]any{"name": name, "runtime": "python",
			"handler": "app.handler", "code": b64([]byte(pySource)), "env": map[string]string{"TOKEN": "s3cret"}})
	}
	// 401: no key, malformed header, unknown key.
	r := e.do("GET", "/v1/functions", "", nil)
	e.want(r, 401, "no key")
	if r.header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
	e.want(e.do("GET", "/v1/functions", "", nil, "Authorization", "Basic abc"), 401, "basic auth")
	e.want(e.do("GET", "/v1/functions", "fy_00000000000000000000000000000000", nil), 401, "unknown key")
	e.want(e.do("POST", "/v1/functions", "", map[string]any{"name": "x"}), 401, "deploy without key")
	e.want(e.do("GET", "/v1/nothing-here", "", nil), 404, "unknown route")
	e.want(e.do("GET", "/healthz", "", nil), 200, "healthz needs no key")

	dev1, dev1ID := e.newKey(ferry.RoleDeveloper, "dev one")
	dev2, dev2ID := e.newKey(ferry.RoleDeveloper, "dev two")
	inv, invID := e.newKey(ferry.RoleInvoker, "invoker")

	// Keys are admin only.
	e.want(e.do("GET", "/v1/keys", dev1, nil), 403, "developer lists keys")
	e.want(e.do("POST", "/v1/keys", inv, map[string]any{"name": "x", "role": "admin"}), 403, "invoker creates key")
	e.want(e.do("POST", "/v1/keys", e.admin, map[string]any{"name": "x", "role": "root"}), 400, "bad role")
	e.want(e.do("POST", "/v1/keys", e.admin, map[string]any{"role": "admin"}), 400, "no name")
	r = e.do("GET", "/v1/keys", e.admin, nil)
	e.want(r, 200, "list keys")
	if len(r.list("keys")) != 4 || strings.Contains(string(r.raw), dev1) || strings.Contains(string(r.raw), `"key"`) {
		t.Fatalf("list keys: %s", r.raw)
	}

	// A developer creates a function and administers it; the invoker cannot deploy.
	e.want(deploy(dev1, "dev1-fn"), 201, "developer deploys")
	e.want(deploy(inv, "inv-fn"), 403, "invoker deploys")
	e.want(deploy(dev2, "dev1-fn"), 403, "other developer deploys a new version")
	e.want(e.do("GET", "/v1/functions/dev1-fn", dev2, nil), 200, "developers read every function")
	e.want(e.do("DELETE", "/v1/functions/dev1-fn", dev2, nil), 403, "other developer deletes")
	e.want(e.do("GET", "/v1/functions/dev1-fn", inv, nil), 403, "invoker reads without grant")
	e.want(e.do("POST", "/v1/functions/dev1-fn/invoke", inv, `{}`), 403, "invoker invokes without grant")
	r = e.do("GET", "/v1/functions", inv, nil)
	e.want(r, 200, "invoker lists")
	if len(r.list("functions")) != 0 {
		t.Errorf("invoker sees functions it was not granted: %s", r.raw)
	}
	e.want(e.do("GET", "/v1/invocations", inv, nil), 403, "invoker lists every invocation")
	e.want(e.do("GET", "/v1/invocations?function=dev1-fn", inv, nil), 403, "invoker lists invocations without grant")

	// The function admin (dev1) grants; dev2 cannot grant on dev1's function.
	grant := func(key, fn, keyID, perm string) response {
		return e.do("POST", "/v1/functions/"+fn+"/permissions", key, map[string]any{"key_id": keyID, "permission": perm})
	}
	e.want(grant(dev2, "dev1-fn", dev2ID, "admin"), 403, "non-admin grants")
	e.want(grant(dev1, "dev1-fn", invID, "write"), 400, "write to an invoker")
	e.want(grant(dev1, "dev1-fn", invID, "fly"), 400, "unknown permission")
	e.want(grant(dev1, "dev1-fn", uuid.NewString(), "read"), 404, "unknown key")
	e.want(grant(dev1, "dev1-fn", invID, "execute"), 200, "grant execute")
	r = e.do("GET", "/v1/functions/dev1-fn", inv, nil)
	e.want(r, 200, "execute implies read")
	// The env's values (secrets, often) are only for who may change the function.
	if strings.Contains(string(r.raw), "s3cret") || !strings.Contains(string(r.raw), `"TOKEN"`) {
		t.Errorf("invoker sees the env's values, or not its names: %s", r.raw)
	}
	if r = e.do("GET", "/v1/functions/dev1-fn/versions", dev2, nil); strings.Contains(string(r.raw), "s3cret") {
		t.Errorf("a developer without write sees the env's values: %s", r.raw)
	}
	if r = e.do("GET", "/v1/functions/dev1-fn", dev1, nil); !strings.Contains(string(r.raw), "s3cret") {
		t.Errorf("the function's admin does not see its env: %s", r.raw)
	}
	r = e.do("GET", "/v1/functions", inv, nil)
	if len(r.list("functions")) != 1 {
		t.Errorf("invoker with a grant lists: %s", r.raw)
	}
	e.want(e.do("GET", "/v1/invocations?function=dev1-fn", inv, nil), 200, "invoker lists invocations with grant")
	e.want(grant(dev1, "dev1-fn", dev2ID, "write"), 200, "grant write")
	e.want(deploy(dev2, "dev1-fn"), 201, "developer with write deploys")
	e.want(e.do("DELETE", "/v1/functions/dev1-fn", dev2, nil), 403, "write does not allow delete")
	e.want(e.do("DELETE", "/v1/functions/dev1-fn/permissions?key_id="+invID+"&permission=execute", dev1, nil), 204, "revoke grant")
	e.want(e.do("GET", "/v1/functions/dev1-fn", inv, nil), 403, "after revoking the grant")
	e.want(e.do("DELETE", "/v1/functions/dev1-fn", dev1, nil), 204, "function admin deletes")

	// Revoked keys stop working at once on this instance; the last admin stays.
	e.want(e.do("DELETE", "/v1/keys/"+dev1ID, e.admin, nil), 204, "revoke dev1")
	e.want(e.do("GET", "/v1/functions", dev1, nil), 401, "revoked key")
	e.want(e.do("DELETE", "/v1/keys/"+uuid.NewString(), e.admin, nil), 404, "revoke unknown")
	e.want(e.do("DELETE", "/v1/keys/not-a-uuid", e.admin, nil), 400, "revoke bad id")
	keys, err := e.db.ListKeys(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	var adminID string
	for _, k := range keys {
		if k.Role == ferry.RoleAdmin {
			adminID = k.ID.String()
		}
	}
	r = e.do("DELETE", "/v1/keys/"+adminID, e.admin, nil)
	e.want(r, 409, "revoke the last admin")
	admin2, _ := e.newKey(ferry.RoleAdmin, "second admin")
	e.want(e.do("DELETE", "/v1/keys/"+adminID, admin2, nil), 204, "revoke the first admin")
	e.want(e.do("GET", "/v1/keys", e.admin, nil), 401, "revoked admin")
	_ = dev2
}

func TestEnsureAdminKey(t *testing.T) {
	e := newEnv(t) // has bootstrapped one key
	if k, err := apiEnsure(e, ""); err != nil || k != "" {
		t.Fatalf("second EnsureAdminKey = %q, %v; want \"\"", k, err)
	}
	if _, err := apiEnsure(e, "short"); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Fatalf("short FERRY_ADMIN_KEY: err %v", err)
	}
}

func TestEnsureAdminKeyFromEnv(t *testing.T) {
	// A database without an active key (the last admin key cannot be revoked:
	// only an operator's SQL gets there): the next start bootstraps again.
	e := newEnv(t)
	if _, err := e.db.RevokeKey(ctxT(t), e.adminID()); ferry.ErrorCode(err) != ferry.ECONFLICT {
		t.Fatalf("revoking the only admin key in the store: %v", err)
	}
	e.db = pgtest.Open(t, pgtest.Name(t, "api"))
	srv := httptest.NewServer(api.New(api.Deps{Store: e.db}))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	chosen := "my-own-admin-key-" + strings.ReplaceAll(uuid.NewString(), "-", "")
	k, err := apiEnsure(e, chosen)
	if err != nil || k != chosen {
		t.Fatalf("EnsureAdminKey(env) = %q, %v", k, err)
	}
	r := e.do("GET", "/v1/keys", chosen, nil)
	e.want(r, 200, "FERRY_ADMIN_KEY works")
	found := false
	for _, x := range r.list("keys") {
		m := x.(map[string]any)
		if m["prefix"] == chosen[:8] && m["role"] == "admin" && m["revoked_at"] == nil {
			found = true
		}
	}
	if !found {
		t.Errorf("chosen admin key not listed: %s", r.raw)
	}
}

// lateStore answers GetFunction as if the function did not exist yet: a deploy
// that read the name a moment before another developer created it.
type lateStore struct{ api.Store }

func (lateStore) GetFunction(_ context.Context, name string) (ferry.Function, error) {
	return ferry.Function{}, ferry.Errorf(ferry.ENOTFOUND, "function %q not found", name)
}

// A deploy authorised as a create never lands as a version of a function that
// someone else created meanwhile, gains no grant on it, and leaves no code.
func TestDeployCreateRaceIsAConflict(t *testing.T) {
	first := newEnv(t)
	dev1, _ := first.newKey(ferry.RoleDeveloper, "dev one")
	dev2, dev2ID := first.newKey(ferry.RoleDeveloper, "dev two")
	unique := "# " + uuid.NewString() + "\n"
	deploy := func(e *env, key, code string) response {
		return e.do("POST", "/v1/functions", key, map[string]any{"name": "fn", "runtime": "python",
			"handler": "app.handler", "code": b64([]byte(code))})
	}
	first.want(deploy(first, dev1, pySource), 201, "dev one creates fn")

	// The same database behind a server whose read of the name comes too early.
	late := newEnvOn(t, first, func(d *api.Deps) { d.Store = lateStore{d.Store} })
	r := deploy(late, dev2, pySource+unique)
	late.want(r, 409, "dev two's create of an existing name")
	if msg := r.errMessage(); !strings.Contains(msg, `function "fn" was created by another deploy`) {
		t.Errorf("conflict message %q", msg)
	}
	if perms, err := first.db.Permissions(ctxT(t), uuid.MustParse(dev2ID), "fn"); err != nil || len(perms) != 0 {
		t.Errorf("dev two got %v on dev one's function (%v)", perms, err)
	}
	r = first.do("GET", "/v1/functions/fn", first.admin, nil)
	first.want(r, 200, "get fn")
	if r.body["version"] != 1.0 {
		t.Errorf("fn after the refused create: %s", r.raw)
	}
	if first.codeExists([]byte(pySource + unique)) {
		t.Error("the refused deploy left its code in S3")
	}
}

// panicStore panics on every read of a function.
type panicStore struct{ api.Store }

func (panicStore) GetVersion(context.Context, string, int) (ferry.Version, error) {
	panic("boom")
}

func TestHandlerPanicAnswers500(t *testing.T) {
	e := newEnv(t, func(d *api.Deps) { d.Store = panicStore{d.Store} })
	r := e.do("GET", "/v1/functions/x", e.admin, nil)
	e.want(r, 500, "a handler that panics")
	if msg := r.errMessage(); !strings.HasPrefix(msg, "internal error (request id ") || strings.Contains(msg, "boom") {
		t.Errorf("panic answer %q", msg)
	}
	e.want(e.do("GET", "/v1/functions", e.admin, nil), 200, "the server after a panic")
}
