package postgres

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

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
	// Cursors made here hold no NUL and no bytes that are not UTF-8, which
	// PostgreSQL would refuse with its own message.
	if err != nil || !utf8.Valid(b) || bytes.Contains(b, []byte(`\u0000`)) {
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

// collectPage scans the rows of a query that asked for n+1 of them: the extra
// row only tells that there is a next page. It returns at most n items and the
// cursor of the last one, "" on the last page.
func collectPage[T any](rows pgx.Rows, n int, scan func(pgx.Row) (T, error), keyset func(T) any) ([]T, string, error) {
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) { return scan(r) })
	if err != nil {
		return nil, "", err
	}
	if len(items) <= n {
		return items, "", nil
	}
	items = items[:n]
	return items, encodeCursor(keyset(items[n-1])), nil
}

// The keysets of the listings: by name, by version newest first, and newest
// first by (created_at, id).

type functionKeyset struct {
	Name string `json:"n"`
}

type versionKeyset struct {
	Version int `json:"v"`
}

type invocationKeyset struct {
	CreatedAt time.Time `json:"t"`
	ID        uuid.UUID `json:"i"`
}

// versionsBelow decodes the cursor of a listing of versions, newest first, and
// returns the version the page starts below: the largest int4 on the first page.
func versionsBelow(cursor string) (int, error) {
	var before versionKeyset
	ok, err := decodeCursor(cursor, &before)
	if err != nil || !ok {
		return ferry.MaxVersion, err
	}
	if before.Version < 1 || before.Version > ferry.MaxVersion {
		return 0, badCursor() // PostgreSQL would refuse it as a parameter
	}
	return before.Version, nil
}

// createdBefore decodes the cursor of a newest-first listing; nil means the
// first page.
func createdBefore(cursor string) (*invocationKeyset, error) {
	var before invocationKeyset
	ok, err := decodeCursor(cursor, &before)
	if err != nil || !ok {
		return nil, err
	}
	return &before, nil
}

// where builds the WHERE clause of a listing, numbering its arguments.
type where struct {
	conds []string
	args  []any
}

func (w *where) arg(v any) string {
	w.args = append(w.args, v)
	return fmt.Sprintf("$%d", len(w.args))
}

// equal adds the condition column = v.
func (w *where) equal(column string, v any) {
	w.conds = append(w.conds, column+" = "+w.arg(v))
}

// newestFirst returns the query of a page of n+1 rows of selectFrom ("SELECT
// ... FROM table"), newest first by (created_at, id), older than before when
// the listing has a cursor.
func (w *where) newestFirst(selectFrom string, before *invocationKeyset, n int) string {
	if before != nil {
		w.conds = append(w.conds, fmt.Sprintf("(created_at, id) < (%s, %s)", w.arg(before.CreatedAt), w.arg(before.ID)))
	}
	q := selectFrom
	if len(w.conds) > 0 {
		q += " WHERE " + strings.Join(w.conds, " AND ")
	}
	return q + " ORDER BY created_at DESC, id DESC LIMIT " + w.arg(n+1)
}

// readable returns the condition "v may read the function named by the SQL
// expression fn".
func (w *where) readable(v ferry.Viewer, fn string) string {
	if v.KeyID == uuid.Nil {
		return "true"
	}
	return fmt.Sprintf(`EXISTS (SELECT 1 FROM function_permissions g
		WHERE g.key_id = %s AND g.function IN (%s, '*') AND g.permission = ANY(%s))`,
		w.arg(v.KeyID), fn, w.arg(grantNames(v.Grants)))
}

// chainReadable returns the condition "v may read every function (and
// compensation) of the chain definition in the SQL expression def".
func (w *where) chainReadable(v ferry.Viewer, def string) string {
	if v.KeyID == uuid.Nil {
		return "true"
	}
	return fmt.Sprintf(`NOT EXISTS (SELECT 1 FROM (
			SELECT jsonb_path_query(%[1]s, 'strict $.**.function') #>> '{}'
			UNION SELECT jsonb_path_query(%[1]s, 'strict $.**.compensate') #>> '{}') f(name)
		WHERE NOT %[2]s)`, def, w.readable(v, "f.name"))
}

func grantNames(ps []ferry.Permission) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p)
	}
	return out
}
