package api

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"
	"github.com/labstack/echo/v4"

	"github.com/ferry-faas/ferry"
)

// readBody reads the whole (size-limited) request body.
func readBody(c echo.Context) ([]byte, error) {
	b, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, ferry.Errorf(ferry.EINVALID, "body: reading the request failed: %v", err)
	}
	return b, nil
}

// decodeJSON decodes a JSON object body into v, rejecting unknown fields and
// naming the offending field in its errors.
func decodeJSON(c echo.Context, v any) error {
	b, err := readBody(c)
	if err != nil {
		return err
	}
	return unmarshalStrict("body", b, v)
}

// strict are the rules of a resource: unlike encoding/json, unknown fields,
// duplicate keys (the last one would win) and strings holding NUL (PostgreSQL
// text cannot) are refused. Names match as in encoding/json: exactly first,
// then in any case.
var strict = json.JoinOptions(
	json.RejectUnknownMembers(true),
	json.MatchCaseInsensitiveNames(true),
	jsonv1.MatchCaseSensitiveDelimiter(true),
	json.WithUnmarshalers(json.JoinUnmarshalers(
		// A schedule's payload is the user's data, like an event: its
		// duplicate keys pass, to the function as sent.
		json.UnmarshalFromFunc(func(dec *jsontext.Decoder, m *stdjson.RawMessage) error {
			return json.UnmarshalDecode(dec, (*jsontext.Value)(m), jsontext.AllowDuplicateNames(true))
		}),
		// Strings must not hold NUL; named string types (runtimes, roles)
		// are enumerations, checked against their values.
		json.UnmarshalFromFunc(func(dec *jsontext.Decoder, s *string) error {
			if dec.PeekKind() != '"' {
				return errors.ErrUnsupported // null: the default
			}
			tok, err := dec.ReadToken()
			if err != nil {
				return err
			}
			if strings.IndexByte(tok.String(), 0) >= 0 {
				return errNUL
			}
			*s = tok.String()
			return nil
		}),
	)),
)

var errNUL = errors.New("NUL")

// unmarshalStrict decodes the resource b, a JSON object named doc ("body",
// "env"), into v with the checks of checkJSON and the rules of strict.
func unmarshalStrict(doc string, b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return ferry.Errorf(ferry.EINVALID, "%s: empty; expected a JSON object", doc)
	}
	if err := checkJSON(doc, b); err != nil {
		return err
	}
	dec := jsontext.NewDecoder(bytes.NewReader(b))
	if err := json.UnmarshalDecode(dec, v, strict); err != nil {
		return jsonError(doc, b, dec, err)
	}
	return nil
}

// checkJSON checks what every JSON document the API reads must be before it
// is decoded or stored: one valid JSON value, UTF-8 (decoders would silently
// replace bad bytes and lone surrogate escapes, PostgreSQL refuses them),
// nested at most ferry.MaxJSONDepth deep. Duplicate keys pass: events and
// inputs are the user's data; unmarshalStrict refuses them in resources.
//
// doc names the document in errors ("event", "input", "env"); the fields of
// "body" are named alone. Empty input passes: callers decide what it means.
func checkJSON(doc string, b []byte) error {
	dec := jsontext.NewDecoder(bytes.NewReader(b), jsontext.AllowDuplicateNames(true))
	for {
		tok, err := dec.ReadToken()
		if err == io.EOF { // before any value: the root's end breaks out below
			return nil
		}
		if err != nil {
			return jsonError(doc, b, dec, err)
		}
		if k := tok.Kind(); (k == '{' || k == '[') && dec.StackDepth() > ferry.MaxJSONDepth {
			// Only the first level: the rest is hundreds of [0].
			path := doc
			if root, _ := dec.StackIndex(1); root == '{' {
				for name := range dec.StackPointer().Tokens() {
					path = joinPath(doc, name)
					break
				}
			}
			return ferry.Errorf(ferry.EINVALID, "%s: nests deeper than the limit of %d levels of arrays and objects", path, ferry.MaxJSONDepth)
		}
		if dec.StackDepth() == 0 {
			break
		}
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return ferry.Errorf(ferry.EINVALID, "%s: unexpected data after the JSON value", doc)
	}
	return nil
}

// jsonError turns an error of dec, reading b, into a message that names the
// value by its path: steps[1].parallel[0].retries.
func jsonError(doc string, b []byte, dec *jsontext.Decoder, err error) error {
	var se *json.SemanticError
	var sy *jsontext.SyntacticError
	switch {
	case errors.As(err, &se):
		path := pathOf(doc, dec, se.JSONPointer)
		switch {
		case errors.Is(se.Err, json.ErrUnknownName):
			return ferry.Errorf(ferry.EINVALID, "%s: unknown field", path)
		case errors.Is(se.Err, errNUL):
			return ferry.Errorf(ferry.EINVALID, "%s: must not contain NUL (\\u0000)", path)
		case se.GoType == nil || se.Err != nil && !errors.Is(se.Err, strconv.ErrSyntax) && !errors.Is(se.Err, strconv.ErrRange):
			return ferry.Errorf(ferry.EINVALID, "%s: %v", path, se.Err) // from a type such as uuid.UUID
		}
		want := jsonTypeName(se.GoType.Kind().String())
		if path == doc {
			want = "a JSON object"
		}
		got := map[jsontext.Kind]string{'"': "string", '{': "object", '[': "array", 't': "boolean", 'f': "boolean", 'n': "null"}[se.JSONKind]
		if se.JSONKind == '0' {
			num := se.JSONValue
			if num == nil && se.ByteOffset < int64(len(b)) { // it is not always filled in
				num, _ = jsontext.NewDecoder(bytes.NewReader(b[se.ByteOffset:])).ReadValue()
			}
			got = strings.TrimSpace("number " + string(num))
		}
		return ferry.Errorf(ferry.EINVALID, "%s: must be %s, not %s", path, want, got)
	case errors.As(err, &sy):
		path, at := pathOf(doc, dec, sy.JSONPointer), sy.ByteOffset
		switch rest := b[min(int(at), len(b)):]; {
		case errors.Is(sy.Err, jsontext.ErrDuplicateName):
			return ferry.Errorf(ferry.EINVALID, "%s: duplicate key", path)
		case errors.Is(sy.Err, io.ErrUnexpectedEOF):
			return ferry.Errorf(ferry.EINVALID, "%s: malformed JSON: unexpected end of input", doc)
		case len(rest) > 0 && !utf8.FullRune(rest) || startsBadRune(rest):
			return ferry.Errorf(ferry.EINVALID, "%s: must be UTF-8 (invalid byte 0x%02x at byte %d)", path, rest[0], at)
		case len(rest) >= 6 && rest[0] == '\\' && rest[1] == 'u' && isSurrogate(rest[2:6]):
			return ferry.Errorf(ferry.EINVALID, "%s: must be UTF-8 (%s at byte %d is half of a surrogate pair)", path, rest[:6], at)
		}
		return ferry.Errorf(ferry.EINVALID, "%s: malformed JSON at byte %d: %v", doc, at, sy.Err)
	}
	return ferry.Errorf(ferry.EINVALID, "%s: invalid JSON: %v", doc, err)
}

func startsBadRune(b []byte) bool {
	r, n := utf8.DecodeRune(b)
	return r == utf8.RuneError && n == 1
}

func isSurrogate(hex []byte) bool {
	n, err := strconv.ParseUint(string(hex), 16, 16)
	return err == nil && utf16.IsSurrogate(rune(n))
}

// pathOf turns ptr (/steps/1/bogus), a JSON pointer to where dec stopped,
// into the path of the API's messages (steps[1].bogus): dec's stack tells
// array indices from object keys.
func pathOf(doc string, dec *jsontext.Decoder, ptr jsontext.Pointer) string {
	path, level := doc, 0
	for name := range ptr.Tokens() {
		if level++; level <= dec.StackDepth() {
			if k, _ := dec.StackIndex(level); k == '[' {
				path += "[" + name + "]"
				continue
			}
		}
		path = joinPath(path, name)
	}
	return path
}

func joinPath(path, name string) string {
	if path == "body" {
		return name
	}
	return path + "." + name
}

// checkText refuses a string that is not UTF-8: path and query parameters,
// headers and form fields that Ferry stores or looks up.
func checkText(field, s string) error {
	if !utf8.ValidString(s) {
		for i := 0; i < len(s); {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				return ferry.Errorf(ferry.EINVALID, "%s: must be UTF-8 (invalid byte 0x%02x at byte %d)", field, s[i], i)
			}
			i += n
		}
	}
	return nil
}

// checkParams refuses path and query parameters that are not UTF-8 or not
// decodable, for every route at once (they become names, filters and ids).
func checkParams(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		for i, name := range c.ParamNames() {
			if i < len(c.ParamValues()) {
				if err := checkText(name, c.ParamValues()[i]); err != nil {
					return err
				}
			}
		}
		// Echo drops the pairs it cannot decode: ?version=%ZZ would mean the latest.
		if _, err := url.ParseQuery(c.Request().URL.RawQuery); err != nil {
			return ferry.Errorf(ferry.EINVALID, "query string: %v", err)
		}
		for k, vs := range c.QueryParams() {
			if err := checkText("query parameter "+strconv.QuoteToASCII(k), k); err != nil {
				return err
			}
			for _, v := range vs {
				if err := checkText(k, v); err != nil {
					return err
				}
			}
		}
		return next(c)
	}
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	case "int", "int64", "int32", "uint", "uint64", "uint32":
		return "an integer"
	case "float64", "float32":
		return "a number"
	}
	return "a " + kind
}

// pageOf reads ?limit= and ?cursor=.
func pageOf(c echo.Context) (ferry.Page, error) {
	p := ferry.Page{Cursor: c.QueryParam("cursor")}
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 200 {
			return p, ferry.Errorf(ferry.EINVALID, "limit: must be an integer between 1 and 200")
		}
		p.Limit = n
	}
	return p, nil
}

// versionParam reads ?version=; 0, when it is absent, means the latest.
func versionParam(c echo.Context) (int, error) {
	q := c.QueryParam("version")
	if q == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(q)
	if err != nil || n < 1 || n > ferry.MaxVersion {
		return 0, ferry.Errorf(ferry.EINVALID, "version: must be an integer between 1 and %d", ferry.MaxVersion)
	}
	return n, nil
}

// listResponse is the shape of every paginated listing.
func listResponse[T any](field string, items []T, next string) map[string]any {
	if items == nil {
		items = []T{}
	}
	return map[string]any{field: items, "next_cursor": next}
}
