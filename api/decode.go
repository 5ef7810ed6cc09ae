package api

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

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
	return unmarshalStrict(b, v)
}

func unmarshalStrict(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return ferry.Errorf(ferry.EINVALID, "body: empty; expected a JSON object")
	}
	if err := checkJSON("body", b); err != nil {
		return err
	}
	if err := checkFields("", b, reflect.TypeOf(v)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return ferry.Errorf(ferry.EINVALID, "body: unexpected data after the JSON object")
	}
	return nil
}

// checkJSON checks, without recursion, what every JSON document the API reads
// must be before it is decoded or stored: UTF-8 (decoders would silently
// replace bad bytes and lone surrogate escapes, PostgreSQL refuses them), and
// nested at most ferry.MaxJSONDepth deep. doc names the document in errors:
// the fields of "body" are named alone, those of others as "event.key".
func checkJSON(doc string, b []byte) error {
	depth := 0
	inObject, wantKey := false, false // at the top level
	keyStart, keyEnd := -1, -1        // the top-level key being read
	field := func() string {
		if keyStart < 0 {
			return doc
		}
		var k string
		if json.Unmarshal(b[keyStart:keyEnd], &k) != nil {
			return doc
		}
		if doc == "body" {
			return k
		}
		return doc + "." + k
	}
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '"':
			start := i
			for i++; i < len(b) && b[i] != '"'; i++ {
				switch {
				case b[i] == '\\' && i+5 < len(b) && b[i+1] == 'u':
					n, ok := surrogates(b[i:])
					if !ok {
						return ferry.Errorf(ferry.EINVALID, "%s: must be UTF-8 (%s at byte %d is half of a surrogate pair)", field(), b[i:i+6], i)
					}
					i += n - 1
				case b[i] == '\\':
					i++
				case b[i] >= utf8.RuneSelf:
					r, n := utf8.DecodeRune(b[i:])
					if r == utf8.RuneError && n == 1 {
						return notUTF8(field(), b, i)
					}
					i += n - 1
				}
			}
			if depth == 1 && inObject && wantKey {
				keyStart, keyEnd, wantKey = start, min(i+1, len(b)), false
			}
		case '{', '[':
			depth++
			if depth == 1 {
				inObject, wantKey = c == '{', c == '{'
			}
			if depth > ferry.MaxJSONDepth {
				return ferry.Errorf(ferry.EINVALID, "%s: nests deeper than the limit of %d levels of arrays and objects", field(), ferry.MaxJSONDepth)
			}
		case '}', ']':
			depth--
		case ',':
			wantKey = depth == 1 && inObject
		default:
			if c >= utf8.RuneSelf {
				if r, n := utf8.DecodeRune(b[i:]); r == utf8.RuneError && n == 1 {
					return notUTF8(field(), b, i)
				}
			}
		}
	}
	return nil
}

// surrogates reads the \uXXXX escape at the start of b; a surrogate must come
// as a high and a low one. It returns how many bytes to skip.
func surrogates(b []byte) (int, bool) {
	hex4 := func(b []byte) rune {
		if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
			return -1
		}
		n, err := strconv.ParseUint(string(b[2:6]), 16, 16)
		if err != nil {
			return -1
		}
		return rune(n)
	}
	switch r := hex4(b); {
	case r >= 0xDC00 && r <= 0xDFFF:
		return 0, false
	case r >= 0xD800 && r <= 0xDBFF:
		if lo := hex4(b[6:]); lo < 0xDC00 || lo > 0xDFFF {
			return 0, false
		}
		return 12, true
	}
	return 6, true
}

func notUTF8(field string, b []byte, at int) error {
	return ferry.Errorf(ferry.EINVALID, "%s: must be UTF-8 (invalid byte 0x%02x at byte %d)", field, b[at], at)
}

// checkFields walks a resource's JSON without recursion, along the Go type t
// it decodes into, and refuses what encoding/json would let through or report
// without the path: duplicate keys (the last one would win), unknown fields,
// values of the wrong type and strings holding NUL (PostgreSQL text cannot).
// Errors name the full path: steps[1].parallel[0].retries. Values decoded as
// json.RawMessage (a schedule's payload) are the user's data and pass as they
// are, like events. Syntax errors are left to the decoder.
func checkFields(root string, b []byte, t reflect.Type) error {
	type frame struct {
		t       reflect.Type // struct, map or slice; nil: user data, unchecked
		path    string
		object  bool
		wantKey bool
		key     string       // the key just read, in an object
		next    reflect.Type // the type of its value
		index   int          // the next element's, in an array
		seen    map[string]bool
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		vt, path := t, root // the value's type and path
		if n := len(stack); n > 0 {
			f := stack[n-1]
			if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
				if stack = stack[:n-1]; len(stack) == 0 {
					return nil
				}
				continue
			}
			if f.object && f.wantKey {
				f.key, f.wantKey = tok.(string), false
				if f.t == nil {
					continue
				}
				id, next := f.key, reflect.Type(nil)
				if f.t.Kind() == reflect.Struct {
					sf, ok := fieldOf(f.t, f.key)
					if !ok {
						return ferry.Errorf(ferry.EINVALID, "%s: unknown field", joinPath(f.path, f.key))
					}
					id, next = sf.Name, sf.Type
				} else {
					next = f.t.Elem()
				}
				if f.seen[id] {
					return ferry.Errorf(ferry.EINVALID, "%s: duplicate key", joinPath(f.path, f.key))
				}
				f.seen[id], f.next = true, next
				continue
			}
			if f.object {
				vt, path, f.wantKey = f.next, joinPath(f.path, f.key), true
			} else {
				vt, path = nil, fmt.Sprintf("%s[%d]", f.path, f.index)
				if f.t != nil {
					vt = f.t.Elem()
				}
				f.index++
			}
			if f.t == nil {
				vt = nil
			}
		}
		for vt != nil && vt.Kind() == reflect.Pointer {
			vt = vt.Elem()
		}
		if vt != nil && unchecked(vt) {
			vt = nil
		}
		name := path
		if name == "" {
			name = "body"
		}
		if d, ok := tok.(json.Delim); ok {
			if vt != nil {
				want, got := vt.Kind() == reflect.Struct || vt.Kind() == reflect.Map, "object"
				if d == '[' {
					want, got = vt.Kind() == reflect.Slice || vt.Kind() == reflect.Array, "array"
				}
				if !want {
					return ferry.Errorf(ferry.EINVALID, "%s: must be %s, not %s", name, typeName(path, vt), got)
				}
			}
			stack = append(stack, &frame{t: vt, path: path, object: d == '{', wantKey: d == '{', seen: map[string]bool{}})
			continue
		}
		if err := checkScalar(name, typeName(path, vt), tok, vt); err != nil {
			return err
		}
		if len(stack) == 0 {
			return nil
		}
	}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var (
	rawMessageType    = reflect.TypeFor[json.RawMessage]()
	jsonUnmarshaler   = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// unchecked reports whether values of t are left to their own decoding: raw
// JSON passed on to functions (the user's data), interfaces, and types such as
// time.Time and uuid.UUID that decode themselves.
func unchecked(t reflect.Type) bool {
	if t == rawMessageType || t.Kind() == reflect.Interface {
		return true
	}
	p := reflect.PointerTo(t)
	return p.Implements(jsonUnmarshaler) || p.Implements(textUnmarshalType)
}

// fieldOf finds the struct field a JSON key sets, as encoding/json does: the
// exact name first, then case-insensitively.
func fieldOf(t reflect.Type, key string) (reflect.StructField, bool) {
	var fold *reflect.StructField
	for _, sf := range reflect.VisibleFields(t) {
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if !sf.IsExported() || name == "-" || (sf.Anonymous && name == "" && sf.Type.Kind() == reflect.Struct) {
			continue // embedded structs: their fields are visible ones
		}
		if name == "" {
			name = sf.Name
		}
		if name == key {
			return sf, true
		}
		if fold == nil && strings.EqualFold(name, key) {
			fold = &sf
		}
	}
	if fold != nil {
		return *fold, true
	}
	return reflect.StructField{}, false
}

// typeName names the JSON type that t decodes from, for messages.
func typeName(path string, t reflect.Type) string {
	if path == "" || t == nil {
		return "a JSON object"
	}
	return jsonTypeName(t.Kind().String())
}

// checkScalar checks one string, number, boolean or null against t (nil:
// anything goes); want names t's JSON type.
func checkScalar(name, want string, tok json.Token, t reflect.Type) error {
	if t == nil || tok == nil {
		return nil
	}
	k := t.Kind()
	got := ""
	switch v := tok.(type) {
	case string:
		if k == reflect.String {
			if strings.IndexByte(v, 0) >= 0 {
				return ferry.Errorf(ferry.EINVALID, "%s: must not contain NUL (\\u0000)", name)
			}
			return nil
		}
		got = "string"
	case json.Number:
		var err error
		switch k {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			_, err = strconv.ParseInt(v.String(), 10, t.Bits())
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			_, err = strconv.ParseUint(v.String(), 10, t.Bits())
		case reflect.Float32, reflect.Float64:
			_, err = strconv.ParseFloat(v.String(), t.Bits())
		default:
			err = strconv.ErrSyntax
		}
		if err == nil {
			return nil
		}
		got = "number " + v.String()
	case bool:
		if k == reflect.Bool {
			return nil
		}
		got = "boolean"
	}
	return ferry.Errorf(ferry.EINVALID, "%s: must be %s, not %s", name, want, got)
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

// checkParams refuses path and query parameters that are not UTF-8, for
// every route at once (they become names, filters and ids).
func checkParams(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		for i, name := range c.ParamNames() {
			if i < len(c.ParamValues()) {
				if err := checkText(name, c.ParamValues()[i]); err != nil {
					return err
				}
			}
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

// jsonError turns encoding/json's errors into messages that name the field.
func jsonError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return ferry.Errorf(ferry.EINVALID, "body: malformed JSON at byte %d: %v", se.Offset, se)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return ferry.Errorf(ferry.EINVALID, "body: malformed JSON: unexpected end of input")
	case errors.As(err, &te):
		if te.Field == "" {
			return ferry.Errorf(ferry.EINVALID, "body: must be a JSON object, not %s", te.Value)
		}
		return ferry.Errorf(ferry.EINVALID, "%s: must be %s, not %s", te.Field, jsonTypeName(te.Type.Kind().String()), te.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		return ferry.Errorf(ferry.EINVALID, "%s: unknown field", field)
	}
	return ferry.Errorf(ferry.EINVALID, "body: invalid JSON: %v", err)
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
