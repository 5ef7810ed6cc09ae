package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferry-faas/ferry"
)

// idempotent is an insert of a row that may carry an Idempotency-Key, as
// invocations and chain runs do: the key is unique per scope (a function's
// identity, a chain's name) among rows created in the last
// ferry.IdempotencyKeyLifetime, and names one request (its hash).
type idempotent[T any] struct {
	table, scopeColumn string // SQL names, from code
	scope              any
	key, hash          string
	createdAt          time.Time
	what               string // names the row in errors
	asked              string // "event or version", for the mismatch message
	target             string // "function \"x\"", for messages
	// insert runs INSERT ... ON CONFLICT DO NOTHING RETURNING, pgx.ErrNoRows
	// when the key is taken; existing reads the row holding the key and its
	// request hash.
	insert   func() (T, error)
	existing func(hash *string) (T, error)
}

// run inserts the row, or returns the live row holding the key (created=false),
// or EUNPROCESSABLE when that row was asked for with another request. An expired
// key is released first (its row keeps everything else).
func (i idempotent[T]) run(ctx context.Context, db *DB) (row T, created bool, err error) {
	if i.key != "" {
		if _, err := db.pool.Exec(ctx, `UPDATE `+i.table+` SET idempotency_key = NULL
			WHERE `+i.scopeColumn+` = $1 AND idempotency_key = $2 AND created_at < $3`,
			i.scope, i.key, i.createdAt.Add(-ferry.IdempotencyKeyLifetime)); err != nil {
			return row, false, db.mapErr(err, i.what)
		}
	}
	// A concurrent insert with the same key makes ON CONFLICT wait for it and then
	// skip; the existing row is read afterwards. Two attempts cover the case where
	// that other insert rolled back in between.
	for attempt := 0; attempt < 2; attempt++ {
		row, err = i.insert()
		if err == nil {
			return row, true, nil
		}
		if err != pgx.ErrNoRows || i.key == "" {
			return row, false, db.mapErr(err, i.what)
		}
		var hash string
		row, err = i.existing(&hash)
		if err == nil {
			if hash != "" && i.hash != "" && hash != i.hash {
				return row, false, ferry.Errorf(ferry.EUNPROCESSABLE,
					"Idempotency-Key: %q was used for another request (%s) to %s in the last %s; "+
						"send a new key for a new request", i.key, i.asked, i.target, ferry.IdempotencyKeyLifetime)
			}
			return row, false, nil
		}
		if err != pgx.ErrNoRows {
			return row, false, db.mapErr(err, i.what)
		}
	}
	return row, false, ferry.Errorf(ferry.ECONFLICT, "a record of %s with idempotency key %q is being created concurrently",
		i.target, i.key)
}
