package api

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
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
	if err := checkJSON("body", b, reflect.TypeOf(v)); err != nil {
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

// checkJSON checks, in one pass and without recursion, what every JSON
// document the API reads must be before it is decoded or stored: UTF-8
// (decoders would silently replace bad bytes and lone surrogate escapes,
// PostgreSQL refuses them), nested at most ferry.MaxJSONDepth deep.
//
// With t, the Go type a resource decodes into, it also refuses what
// encoding/json would let through or report without the path: duplicate keys
// (the last one would win), unknown fields, values of the wrong JSON type and
// strings holding NUL (PostgreSQL text cannot). Values decoded as
// json.RawMessage (a schedule's payload) are the user's data, like events, and
// only get the first checks.
//
// doc names the document in errors ("event", "input", "env"); the fields of
// "body" are named alone. Paths go down to the value: steps[1].parallel[0].retries.
// Syntax errors are left to the decoder.
func checkJSON(doc string, b []byte, t reflect.Type) error {
	s := jsonScan{doc: doc, b: b}
	err := s.run(t)
	if err == nil && s.fieldErr != nil && json.Valid(b) {
		err = s.fieldErr
	}
	return err
}

// jsonScan is the state of checkJSON.
type jsonScan struct {
	doc      string
	b        []byte
	stack    []*jsonFrame
	fieldErr error // the first error of a field; encoding errors win over it
}

// jsonFrame is an open array or object.
type jsonFrame struct {
	t        reflect.Type // struct, map or slice; nil: not checked
	object   bool
	wantKey  bool
	keyStart int          // the current key is b[keyStart:keyEnd], quotes
	keyEnd   int          // included; keyStart -1: none yet
	next     reflect.Type // the type of the current key's value
	index    int          // the current element, in an array
	seen     map[string]bool
}

func (s *jsonScan) run(root reflect.Type) error {
	b := s.b
	for i := 0; i < len(b); i++ {
		c := b[i]
		var f *jsonFrame
		if n := len(s.stack); n > 0 {
			f = s.stack[n-1]
		}
		switch c {
		case ' ', '\t', '\r', '\n', ':':
			continue
		case ',':
			if f != nil {
				f.wantKey, f.index = f.object, f.index+1
			}
			continue
		case '}', ']':
			if f == nil {
				return nil // malformed: the decoder will say so
			}
			if s.stack = s.stack[:len(s.stack)-1]; len(s.stack) == 0 {
				return nil
			}
			continue
		}
		if c == '"' {
			isKey := f != nil && f.object && f.wantKey
			if isKey {
				f.keyStart = -1 // errors in a key name the object
			}
			end, nul, err := s.str(i)
			if err != nil {
				return err
			}
			if end >= len(b) {
				return nil // unterminated: the decoder will say so
			}
			if isKey {
				f.wantKey, f.keyStart, f.keyEnd = false, i, end+1
				s.key(f)
			} else if t := s.valueType(f, root); t != nil {
				switch {
				case t.Kind() != reflect.String:
					s.wrongType(t, "string")
				case nul:
					s.fail("%s: must not contain NUL (\\u0000)", s.path(false))
				}
			}
			if i = end; f == nil {
				return nil
			}
			continue
		}
		t := s.valueType(f, root)
		switch c {
		case '{', '[':
			if len(s.stack) >= ferry.MaxJSONDepth {
				return ferry.Errorf(ferry.EINVALID, "%s: nests deeper than the limit of %d levels of arrays and objects", s.path(true), ferry.MaxJSONDepth)
			}
			if t != nil {
				ok, got := t.Kind() == reflect.Struct || t.Kind() == reflect.Map, "object"
				if c == '[' {
					ok, got = t.Kind() == reflect.Slice || t.Kind() == reflect.Array, "array"
				}
				if !ok {
					s.wrongType(t, got)
					t = nil
				}
			}
			s.stack = append(s.stack, &jsonFrame{t: t, object: c == '{', wantKey: c == '{', keyStart: -1})
			continue
		}
		// A literal or a number.
		j := i
		for j < len(b) && !jsonDelimiter[b[j]] {
			j++
		}
		if t != nil {
			s.checkLiteral(t, string(b[i:j]))
		} else if c >= utf8.RuneSelf {
			if r, n := utf8.DecodeRune(b[i:]); r == utf8.RuneError && n == 1 {
				return s.notUTF8(i)
			}
		}
		if i = j - 1; f == nil {
			return nil
		}
	}
	return nil
}

// jsonDelimiter marks the bytes that end a number or a literal.
var jsonDelimiter = func() (d [256]bool) {
	for _, c := range " \t\r\n,:]}\"[{" {
		d[c] = true
	}
	return d
}()

// str reads the string whose opening quote is at b[i] and returns the index
// of its closing quote and whether it holds an escaped NUL.
func (s *jsonScan) str(i int) (end int, nul bool, err error) {
	b := s.b
	for i++; i < len(b) && b[i] != '"'; i++ {
		switch {
		case b[i] == '\\' && i+5 < len(b) && b[i+1] == 'u':
			n, ok := surrogates(b[i:])
			if !ok {
				return 0, false, ferry.Errorf(ferry.EINVALID, "%s: must be UTF-8 (%s at byte %d is half of a surrogate pair)", s.path(false), b[i:i+6], i)
			}
			nul = nul || string(b[i:i+6]) == `\u0000`
			i += n - 1
		case b[i] == '\\':
			i++
		case b[i] >= utf8.RuneSelf:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				return 0, false, s.notUTF8(i)
			}
			i += n - 1
		}
	}
	return i, nul, nil
}

// key checks the key just read in f, an object of a checked type.
func (s *jsonScan) key(f *jsonFrame) {
	if f.next = nil; f.t == nil {
		return
	}
	var key string
	if json.Unmarshal(s.b[f.keyStart:f.keyEnd], &key) != nil {
		f.t = nil // malformed: the decoder will say so
		return
	}
	id, next := key, reflect.Type(nil)
	if f.t.Kind() == reflect.Struct {
		sf, ok := fieldOf(f.t, key)
		if !ok {
			s.fail("%s: unknown field", s.path(false))
			return
		}
		id, next = sf.Name, sf.Type
	} else {
		next = f.t.Elem()
	}
	if f.seen == nil {
		f.seen = map[string]bool{}
	}
	if f.seen[id] {
		s.fail("%s: duplicate key", s.path(false))
	}
	f.seen[id], f.next = true, next
}

// valueType is the type of the value read next in f (nil: the root), or nil
// when it is not checked.
func (s *jsonScan) valueType(f *jsonFrame, root reflect.Type) reflect.Type {
	t := root
	switch {
	case f == nil:
	case f.t == nil:
		return nil
	case f.object:
		t = f.next
	default:
		t = f.t.Elem()
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || unchecked(t) {
		return nil
	}
	return t
}

// checkLiteral checks a number, true, false or null against t.
func (s *jsonScan) checkLiteral(t reflect.Type, lit string) {
	var err error
	switch lit {
	case "null":
		return
	case "true", "false":
		if t.Kind() != reflect.Bool {
			s.wrongType(t, "boolean")
		}
		return
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		_, err = strconv.ParseInt(lit, 10, t.Bits())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		_, err = strconv.ParseUint(lit, 10, t.Bits())
	case reflect.Float32, reflect.Float64:
		_, err = strconv.ParseFloat(lit, t.Bits())
	default:
		err = strconv.ErrSyntax
	}
	if err != nil {
		s.wrongType(t, "number "+lit)
	}
}

func (s *jsonScan) wrongType(t reflect.Type, got string) {
	want := jsonTypeName(t.Kind().String())
	if len(s.stack) == 0 && s.doc == "body" {
		want = "a JSON object"
	}
	s.fail("%s: must be %s, not %s", s.path(false), want, got)
}

func (s *jsonScan) fail(format string, args ...any) {
	if s.fieldErr == nil {
		s.fieldErr = ferry.Errorf(ferry.EINVALID, format, args...)
	}
}

func (s *jsonScan) notUTF8(at int) error {
	return ferry.Errorf(ferry.EINVALID, "%s: must be UTF-8 (invalid byte 0x%02x at byte %d)", s.path(false), s.b[at], at)
}

// path names the value being read: the document, then every open object's
// key and array's index; top keeps only the first level.
func (s *jsonScan) path(top bool) string {
	var p strings.Builder
	if s.doc != "body" {
		p.WriteString(s.doc)
	}
	for i, f := range s.stack {
		if top && i > 0 {
			break
		}
		switch {
		case f.object && f.keyStart >= 0:
			var k string
			if json.Unmarshal(s.b[f.keyStart:f.keyEnd], &k) != nil {
				k = string(s.b[f.keyStart+1 : f.keyEnd-1])
			}
			if p.Len() > 0 {
				p.WriteByte('.')
			}
			p.WriteString(k)
		case !f.object && !top:
			fmt.Fprintf(&p, "[%d]", f.index)
		}
	}
	if p.Len() == 0 {
		return s.doc
	}
	return p.String()
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
