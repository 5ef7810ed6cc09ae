package api_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/ferry-faas/ferry"
)

// badInput is one request that must be refused with status and exactly msg.
type badInput struct {
	what, method, path string
	body               any
	headers            []string
	status             int
	msg                string
}

func (e *env) refuses(cases []badInput) {
	e.t.Helper()
	for _, c := range cases {
		e.t.Run(c.what, func(t *testing.T) {
			r := e.do(c.method, c.path, e.admin, c.body, c.headers...)
			if r.status != c.status || r.errMessage() != c.msg {
				t.Errorf("%s %s: %d %q\nwant %d %q", c.method, c.path, r.status, r.errMessage(), c.status, c.msg)
			}
		})
	}
}

// nested is n arrays, one inside the other, around inner.
func nested(n int, inner string) string {
	return strings.Repeat("[", n) + inner + strings.Repeat("]", n)
}

// deployChainOf deploys a chain of one step running fn.
func deployChainOf(e *env, name, fn string) {
	e.t.Helper()
	e.want(e.do("POST", "/v1/chains", e.admin, `{"name":"`+name+`","steps":[{"function":"`+fn+`"}]}`), 201, "deploy chain "+name)
}

// Every JSON document the API reads nests at most ferry.MaxJSONDepth (512)
// levels: deeper ones were accepted, and crashed the Python runner.
func TestJSONNestingLimit(t *testing.T) {
	f := newFakeTemporal(t)
	e := newEnv(t, withTemporal(f))
	deployPy(e, e.admin, "echo")
	deployChainOf(e, "ch", "echo")

	// 512 levels are fine, and reach the function byte for byte.
	ok := nested(512, "1")
	r := e.do("POST", "/v1/functions/echo/invoke", e.admin, ok)
	e.want(r, 200, "512 levels")
	if got := string(f.input(r.str("id")).Event); r.str("status") != "completed" || got != ok {
		t.Fatalf("512 levels: status %s, event of %d bytes", r.str("status"), len(got))
	}

	deep := nested(513, "1")
	msg := func(field string) string {
		return field + ": nests deeper than the limit of 512 levels of arrays and objects"
	}
	e.refuses([]badInput{
		{"event", "POST", "/v1/functions/echo/invoke", deep, nil, 400, msg("event")},
		{"event field", "POST", "/v1/functions/echo/invoke?async=true", `{"a": 1, "deep": ` + deep + `}`, nil, 400, msg("event.deep")},
		// A bracket inside a string does not count.
		{"event with brackets in strings", "POST", "/v1/functions/echo/invoke", `{"s": "[[[", "deep": ` + deep + `}`, nil, 400, msg("event.deep")},
		{"chain input", "POST", "/v1/chains/ch/invoke", deep, nil, 400, msg("input")},
		{"chain definition", "POST", "/v1/chains", `{"name": "c2", "steps": ` + deep + `}`, nil, 400, msg("steps")},
		{"deploy", "POST", "/v1/functions", `{"name": "fn", "env": ` + deep + `}`, nil, 400, msg("env")},
		{"multipart env", "POST", "/v1/functions", multipartOf(t, "app.py", []byte(pySource), "name", "fn", "env", `{"A": `+deep+`}`), nil, 400, msg("env.A")},
		{"schedule payload", "POST", "/v1/schedules", `{"name": "s", "every": "1h", "target": {"function": "echo"}, "payload": ` + deep + `}`, nil, 400, msg("payload")},
		{"key", "POST", "/v1/keys", `{"name": "k", "role": ` + deep + `}`, nil, 400, msg("role")},
		{"body root", "POST", "/v1/functions/echo/permissions", deep, nil, 400, msg("body")},
	})
	if n := e.countFunctions(); n != 1 {
		t.Errorf("%d functions after refused deploys", n)
	}
}

// Every text Ferry reads must be UTF-8: bad bytes were silently replaced in
// some fields and refused with PostgreSQL's own message in others.
func TestInputMustBeUTF8(t *testing.T) {
	f := newFakeTemporal(t)
	e := newEnv(t, withTemporal(f))
	deployPy(e, e.admin, "echo")
	deployChainOf(e, "ch", "echo")

	e.refuses([]badInput{
		{"event", "POST", "/v1/functions/echo/invoke", "{\"name\": \"caf\xe9\"}", nil, 400, "event.name: must be UTF-8 (invalid byte 0xe9 at byte 13)"},
		{"event lone surrogate", "POST", "/v1/functions/echo/invoke", `["\ud800"]`, nil, 400, `event[0]: must be UTF-8 (\ud800 at byte 2 is half of a surrogate pair)`},
		{"event low surrogate", "POST", "/v1/functions/echo/invoke", `{"k": "\uDC00\ud83d\ude00"}`, nil, 400, `event.k: must be UTF-8 (\uDC00 at byte 7 is half of a surrogate pair)`},
		{"chain input", "POST", "/v1/chains/ch/invoke", "\"\xff\"", nil, 400, "input: must be UTF-8 (invalid byte 0xff at byte 1)"},
		{"Idempotency-Key", "POST", "/v1/functions/echo/invoke", `{}`, []string{"Idempotency-Key", "k\xff"}, 400, "Idempotency-Key: must be UTF-8 (invalid byte 0xff at byte 1)"},
		{"deploy description", "POST", "/v1/functions", "{\"name\": \"fn\", \"description\": \"\xc3\"}", nil, 400, "description: must be UTF-8 (invalid byte 0xc3 at byte 31)"},
		{"chain description", "POST", "/v1/chains", "{\"name\": \"c2\", \"steps\": [{\"function\": \"echo\"}], \"description\": \"\xff\"}", nil, 400, "description: must be UTF-8 (invalid byte 0xff at byte 64)"},
		{"multipart field", "POST", "/v1/functions", multipartOf(t, "app.py", []byte(pySource), "name", "fn", "description", "\xff"), nil, 400, "description: must be UTF-8 (invalid byte 0xff at byte 0)"},
		{"multipart file name", "POST", "/v1/functions", multipartOf(t, "app\xff.py", []byte(pySource), "name", "fn", "runtime", "python", "handler", "app.handler"), nil, 400, "filename: must be UTF-8 (invalid byte 0xff at byte 3)"},
		{"path parameter", "GET", "/v1/functions/%FF", nil, nil, 400, "name: must be UTF-8 (invalid byte 0xff at byte 0)"},
		{"query parameter", "GET", "/v1/invocations?function=ok%FF", nil, nil, 400, "function: must be UTF-8 (invalid byte 0xff at byte 2)"},
		// It was dropped: the latest version answered.
		{"query escape", "GET", "/v1/functions/echo?version=%ZZ", nil, nil, 400, `query string: invalid URL escape "%ZZ"`},
		{"cursor with NUL", "GET", "/v1/functions?cursor=" + base64.RawURLEncoding.EncodeToString([]byte(`{"n":"a\u0000"}`)), nil, nil, 400, "invalid cursor"},
		{"cursor not UTF-8", "GET", "/v1/functions?cursor=" + base64.RawURLEncoding.EncodeToString([]byte("{\"n\":\"a\xff\"}")), nil, nil, 400, "invalid cursor"},
		{"chain path parameter", "POST", "/v1/chains/%FFx/invoke", `{}`, nil, 400, "name: must be UTF-8 (invalid byte 0xff at byte 0)"},
		{"invocation id", "GET", "/v1/invocations/%C0", nil, nil, 400, "id: must be UTF-8 (invalid byte 0xc0 at byte 0)"},
	})
	if n := e.countFunctions(); n != 1 {
		t.Errorf("%d functions after refused deploys", n)
	}
	// Valid UTF-8, escaped or not, and surrogate pairs pass.
	r := e.do("POST", "/v1/functions/echo/invoke", e.admin, `{"name": "café \u00e9 \ud83d\ude00 😀"}`)
	e.want(r, 200, "UTF-8 event")
	if r.str("status") != "completed" {
		t.Fatalf("UTF-8 event: %s", r.raw)
	}
}

// Integers beyond what PostgreSQL stores answered 500; every one is bounded
// at the edge, with the field's name.
func TestIntegerInputsBounded(t *testing.T) {
	f := newFakeTemporal(t)
	e := newEnv(t, withTemporal(f))
	deployPy(e, e.admin, "echo")
	deployChainOf(e, "ch", "echo")

	const version = "version: must be an integer between 1 and 2147483647"
	cursor := base64.RawURLEncoding.EncodeToString([]byte(`{"v":2147483648}`))
	e.refuses([]badInput{
		{"get function", "GET", "/v1/functions/echo?version=2147483648", nil, nil, 400, version},
		{"invoke", "POST", "/v1/functions/echo/invoke?version=2147483648", `{}`, nil, 400, version},
		{"get chain", "GET", "/v1/chains/ch?version=2147483648", nil, nil, 400, version},
		{"chain versions", "GET", "/v1/chains/ch/versions?version=99999999999999999999", nil, nil, 400, version},
		{"chain invoke", "POST", "/v1/chains/ch/invoke?version=2147483648", `{}`, nil, 400, version},
		{"chain runs", "GET", "/v1/chains/ch/runs?version=2147483648", nil, nil, 400, version},
		{"chain step", "POST", "/v1/chains", `{"name": "c2", "steps": [{"function": "echo"}, {"parallel": [{"function": "echo", "version": 2147483648}]}]}`, nil, 400,
			"steps[1].parallel[0].version: must be between 1 and 2147483647 (0 or none for the latest)"},
		{"chain compensation", "POST", "/v1/chains", `{"name": "c2", "steps": [{"function": "echo", "compensate": "echo", "compensate_version": 4294967296}]}`, nil, 400,
			"steps[0].compensate_version: needs compensate and a version between 1 and 2147483647"},
		{"chain step beyond int64", "POST", "/v1/chains", `{"name": "c2", "steps": [{"function": "echo", "version": 1e30}]}`, nil, 400,
			"steps[0].version: must be an integer, not number 1e30"},
		{"schedule target", "POST", "/v1/schedules", `{"name": "s", "every": "1h", "target": {"function": "echo", "version": 2147483648}}`, nil, 400,
			"target.version: must be between 1 and 2147483647 (0 or none for the latest)"},
		{"versions cursor", "GET", "/v1/functions/echo/versions?cursor=" + cursor, nil, nil, 400, "invalid cursor"},
		{"limit", "GET", "/v1/functions?limit=99999999999999999999", nil, nil, 400, "limit: must be an integer between 1 and 200"},
		{"deploy limit", "POST", "/v1/functions", `{"name": "fn", "runtime": "python", "handler": "app.handler", "code": "` + b64([]byte(pySource)) + `", "timeout_seconds": 4294967297}`, nil, 400,
			"timeout_seconds: must be between 1 and 900 (0 for the default 30), not 4294967297"},
		{"multipart integer", "POST", "/v1/functions", multipartOf(t, "app.py", []byte(pySource), "name", "fn", "retries", "99999999999999999999"), nil, 400,
			`retries: must be an integer, not "99999999999999999999"`},
		{"multipart NaN", "POST", "/v1/functions", multipartOf(t, "app.py", []byte(pySource), "name", "fn", "runtime", "python", "handler", "app.handler", "cpus", "NaN"), nil, 400,
			`cpus: must be a number, not "NaN"`},
	})
	// The largest version is a plain 404.
	r := e.do("GET", "/v1/functions/echo?version=2147483647", e.admin, nil)
	e.want(r, 404, "largest version")
	if n := e.countFunctions(); n != 1 {
		t.Errorf("%d functions after refused deploys", n)
	}
}

// Duplicate keys in a resource were accepted, the last one winning; they are
// refused with the key's path. Events are the user's data and pass as sent.
func TestDuplicateKeysRefused(t *testing.T) {
	f := newFakeTemporal(t)
	e := newEnv(t, withTemporal(f))
	deployPy(e, e.admin, "echo")
	code := b64([]byte(pySource))
	e.refuses([]badInput{
		{"key role", "POST", "/v1/keys", `{"name": "k", "role": "admin", "role": "invoker"}`, nil, 400, "role: duplicate key"},
		{"key role, other case", "POST", "/v1/keys", `{"name": "k", "role": "invoker", "Role": "admin"}`, nil, 400, "Role: duplicate key"},
		{"deploy name", "POST", "/v1/functions", `{"name": "fn", "runtime": "python", "handler": "app.handler", "code": "` + code + `", "name": "other"}`, nil, 400, "name: duplicate key"},
		{"deploy env", "POST", "/v1/functions", `{"name": "fn", "runtime": "python", "handler": "app.handler", "code": "` + code + `", "env": {"A": "1", "B": "2", "A": "3"}}`, nil, 400, "env.A: duplicate key"},
		{"multipart env", "POST", "/v1/functions", multipartOf(t, "app.py", []byte(pySource), "name", "fn", "runtime", "python", "handler", "app.handler", "env", `{"A": "1", "A": "2"}`), nil, 400, "env.A: duplicate key"},
		{"multipart env fields", "POST", "/v1/functions", multipartOf(t, "app.py", []byte(pySource), "name", "fn", "runtime", "python", "handler", "app.handler", "env", "A=1", "env", "A=2"), nil, 400, "env.A: duplicate key"},
		{"multipart env field and object", "POST", "/v1/functions", multipartOf(t, "app.py", []byte(pySource), "name", "fn", "runtime", "python", "handler", "app.handler", "env", "B=1", "env", `{"A": "1", "B": "2"}`), nil, 400, "env.B: duplicate key"},
		{"grant", "POST", "/v1/functions/echo/permissions", `{"key_id": "` + uuid.NewString() + `", "permission": "read", "permission": "admin"}`, nil, 400, "permission: duplicate key"},
		{"chain step", "POST", "/v1/chains", `{"name": "c", "steps": [{"function": "echo"}, {"parallel": [{"function": "echo", "function": "other"}]}]}`, nil, 400, "steps[1].parallel[0].function: duplicate key"},
		{"schedule target", "POST", "/v1/schedules", `{"name": "s", "every": "1h", "target": {"function": "echo", "function": "other"}}`, nil, 400, "target.function: duplicate key"},
	})
	keys := e.do("GET", "/v1/keys", e.admin, nil)
	e.want(keys, 200, "list keys")
	if n := len(keys.list("keys")); n != 1 {
		t.Errorf("%d keys after refused creations: %s", n, keys.raw)
	}
	if n := e.countFunctions(); n != 1 {
		t.Errorf("%d functions after refused deploys", n)
	}

	// An event reaches the function byte for byte, duplicates included.
	ev := `{"a": 1, "a": 2}`
	r := e.do("POST", "/v1/functions/echo/invoke", e.admin, ev)
	e.want(r, 200, "event with duplicate keys")
	if got := string(f.input(r.str("id")).Event); got != ev || r.str("status") != "completed" {
		t.Errorf("event %q, status %s", got, r.str("status"))
	}
	// So does a schedule's payload: the request passes validation and only
	// finds no Temporal schedule client here.
	r = e.do("POST", "/v1/schedules", e.admin, `{"name": "s", "every": "1h", "target": {"function": "echo"}, "payload": {"a": 1, "a": 2}}`)
	if r.status != 503 || r.errMessage() != "schedules are unavailable: no Temporal client" {
		t.Errorf("schedule with a duplicate payload key: %d %s", r.status, r.raw)
	}
}

// Errors in a chain definition name the step: an unknown field in the second
// step answered "bogus: unknown field".
func TestChainErrorsNameTheStep(t *testing.T) {
	e := newEnv(t)
	deployPy(e, e.admin, "echo")
	chain := func(steps string) string { return `{"name": "c", "steps": [{"function": "echo"}, ` + steps + `]}` }
	e.refuses([]badInput{
		{"unknown field", "POST", "/v1/chains", chain(`{"function": "echo", "bogus": 1}`), nil, 400, "steps[1].bogus: unknown field"},
		{"unknown nested field", "POST", "/v1/chains", chain(`{"map": {"function": "echo", "colour": "red"}}`), nil, 400, "steps[1].map.colour: unknown field"},
		{"wrong type", "POST", "/v1/chains", chain(`{"parallel": [{"function": "echo"}, {"function": "echo", "retries": "3"}]}`), nil, 400,
			"steps[1].parallel[1].retries: must be an integer, not string"},
		{"not a step", "POST", "/v1/chains", chain(`"echo"`), nil, 400, "steps[1]: must be an object, not string"},
		{"branches not an array", "POST", "/v1/chains", chain(`{"parallel": {"function": "echo"}}`), nil, 400, "steps[1].parallel: must be an array, not object"},
		{"bad policy", "POST", "/v1/chains", chain(`{"map": {"function": "echo", "on_error": "retry"}}`), nil, 400, `steps[1].map.on_error: must be fail or continue (got "retry")`},
		{"missing function", "POST", "/v1/chains", chain(`{"parallel": [{"function": "nope"}]}`), nil, 400, `steps[1].parallel[0].function: function "nope" not found`},
		// A key cut after a backslash crashed the check.
		{"unterminated key", "POST", "/v1/chains", `{"name\`, nil, 400, "body: malformed JSON: unexpected end of input"},
		{"NUL in a string", "POST", "/v1/chains", `{"name": "c", "steps": [{"function": "echo"}], "description": "a\u0000b"}`, nil, 400, `description: must not contain NUL (\u0000)`},
	})
	r := e.do("GET", "/v1/chains", e.admin, nil)
	e.want(r, 200, "list chains")
	if n := len(r.list("chains")); n != 0 {
		t.Errorf("%d chains after refused deploys", n)
	}
}

// A retry re-sends a recorded event: one recorded before the nesting limit
// existed is refused at once rather than failing again in the runner.
func TestRetryRefusesAnEventBeyondTheLimits(t *testing.T) {
	f := newFakeTemporal(t)
	e := newEnv(t, withTemporal(f))
	deployPy(e, e.admin, "echo")
	ctx := ctxT(t)
	v, err := e.db.GetVersion(ctx, "echo", 0)
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.New()
	if _, _, err := e.db.CreateInvocation(ctx, ferry.Invocation{ID: id, Function: "echo", FunctionID: v.FunctionID, Version: v.Version,
		Event: []byte(nested(513, "1")), WorkflowID: id.String()}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.db.FinishInvocation(ctx, id, ferry.Outcome{Status: ferry.StatusFailed,
		Error: &ferry.FunctionError{Type: "Runtime.UnmarshalError", Message: "too deep"}}); err != nil {
		t.Fatal(err)
	}
	r := e.do("POST", "/v1/invocations/"+id.String()+"/retry", e.admin, nil)
	want := "invocation " + id.String() + " cannot be retried: event: nests deeper than the limit of 512 levels of arrays and objects"
	if r.status != 422 || r.errMessage() != want {
		t.Errorf("retry: %d %q, want 422 %q", r.status, r.errMessage(), want)
	}
	if n := len(f.runs); n != 0 {
		t.Errorf("%d workflows started", n)
	}
}

// Errors in JSON name the document and the field: a malformed event answered
// "body: the event must be valid JSON", a bad id in a schedule "body: invalid
// JSON: invalid UUID length: 4".
func TestJSONErrorsNameWhere(t *testing.T) {
	f := newFakeTemporal(t)
	e := newEnv(t, withTemporal(f))
	deployPy(e, e.admin, "echo")
	deployChainOf(e, "ch", "echo")
	e.refuses([]badInput{
		{"event syntax", "POST", "/v1/functions/echo/invoke", `{"a" 1}`, nil, 400, "event: malformed JSON at byte 5: invalid character '1' after object name (expecting ':')"},
		{"event cut short", "POST", "/v1/functions/echo/invoke", `[1, 2`, nil, 400, "event: malformed JSON: unexpected end of input"},
		{"event trailing data", "POST", "/v1/functions/echo/invoke", `{} {}`, nil, 400, "event: unexpected data after the JSON value"},
		{"chain input trailing data", "POST", "/v1/chains/ch/invoke", `1 2`, nil, 400, "input: unexpected data after the JSON value"},
		{"schedule id", "POST", "/v1/schedules", `{"name": "s", "every": "1h", "target": {"function": "echo", "function_id": "nope"}}`, nil, 400, "target.function_id: invalid UUID length: 4"},
		{"env value", "POST", "/v1/functions", `{"name": "fn", "env": {"A": 1}}`, nil, 400, "env.A: must be a string, not number 1"},
		{"multipart env syntax", "POST", "/v1/functions", multipartOf(t, "app.py", []byte(pySource), "name", "fn", "env", `{"A" "1"}`), nil, 400,
			`env: malformed JSON at byte 5: invalid character '"' after object name (expecting ':')`},
	})
	if n := len(f.runs); n != 0 {
		t.Errorf("%d workflows started", n)
	}
}
