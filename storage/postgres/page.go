package postgres

import (
	"bytes"
	"encoding/base64"
	"encoding/json"

	"github.com/ferry-faas/ferry"
)

// Page limits.
const (
	DefaultLimit = 50
	MaxLimit     = 200
)

// limit validates p.Limit and returns the page size to use.
func limit(p ferry.Page) (int, error) {
	switch {
	case p.Limit == 0:
		return DefaultLimit, nil
	case p.Limit < 0 || p.Limit > MaxLimit:
		return 0, ferry.Errorf(ferry.EINVALID, "limit must be between 1 and %d", MaxLimit)
	}
	return p.Limit, nil
}

// Cursors are the keyset of the last row of a page, as JSON, base64url-encoded.
// They are opaque to clients; decodeCursor rejects anything it did not make.

func encodeCursor(keyset any) string {
	b, err := json.Marshal(keyset)
	if err != nil {
		panic(err) // keysets are plain structs
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor fills keyset from cursor and reports whether there was one.
func decodeCursor(cursor string, keyset any) (bool, error) {
	if cursor == "" {
		return false, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return false, badCursor()
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields() // a cursor of another listing is rejected
	if err := dec.Decode(keyset); err != nil {
		return false, badCursor()
	}
	return true, nil
}

func badCursor() error { return ferry.Errorf(ferry.EINVALID, "invalid cursor") }
