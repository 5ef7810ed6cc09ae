package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

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
	if err != nil || n < 1 {
		return 0, ferry.Errorf(ferry.EINVALID, "version: must be a positive integer")
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
