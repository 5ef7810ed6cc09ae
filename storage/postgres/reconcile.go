package postgres

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ferry-faas/ferry"
)

// Unfinished is a pending or running record (an invocation or a chain run) as
// the reconciler sees it: which workflow it waits for.
type Unfinished struct {
	ID         uuid.UUID
	WorkflowID string
	CreatedAt  time.Time
}

// UnfinishedRecords lists pending and running invocations and chain runs
// created before createdBefore, oldest first, after the record (afterAt,
// afterID); the zero cursor starts from the oldest.
func (db *DB) UnfinishedRecords(ctx context.Context, createdBefore, afterAt time.Time, afterID uuid.UUID, n int) ([]Unfinished, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT id, workflow_id, created_at FROM (
			SELECT id, workflow_id, created_at FROM invocations
			WHERE status IN ('pending', 'running', 'waiting') AND created_at < $1 AND (created_at, id) > ($2, $3)
			UNION ALL
			SELECT id, workflow_id, created_at FROM chain_runs
			WHERE status IN ('pending', 'running', 'waiting') AND created_at < $1 AND (created_at, id) > ($2, $3)
		) r ORDER BY created_at, id LIMIT $4`, createdBefore, afterAt, afterID, n)
	if err != nil {
		return nil, db.mapErr(err, "unfinished records")
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Unfinished, error) {
		var u Unfinished
		err := row.Scan(&u.ID, &u.WorkflowID, &u.CreatedAt)
		u.CreatedAt = u.CreatedAt.UTC()
		return u, err
	})
	if err != nil {
		return nil, db.mapErr(err, "unfinished records")
	}
	return out, nil
}

// CloseWorkflowRecords records the final status of every record that waits
// for the workflow whose id is id and is not final yet: the invocation or
// chain run of that id and, for a chain run, its step invocations. It is for
// workflows that ended without recording their outcome (terminated, timed
// out); records already final never change. It returns how many it closed.
func (db *DB) CloseWorkflowRecords(ctx context.Context, id uuid.UUID, status ferry.InvocationStatus, e ferry.FunctionError, at time.Time) (int, error) {
	if !status.Final() || !status.Valid() {
		return 0, ferry.Errorf(ferry.EINVALID, "%q is not a final status", status)
	}
	errJSON, err := jsonOrNil(sanitizeError(&e))
	if err != nil {
		return 0, err
	}
	n := 0
	err = db.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE chain_runs SET status = $2, error = $3, finished_at = $4,
				started_at = coalesce(started_at, $4)
			WHERE id = $1 AND status IN ('pending', 'running', 'waiting')`, id, string(status), errJSON, at)
		if err != nil {
			return err
		}
		n += int(tag.RowsAffected())
		tag, err = tx.Exec(ctx, `UPDATE invocations SET status = $2, error = $3, finished_at = $4
			WHERE (id = $1 OR chain_run_id = $1) AND status IN ('pending', 'running', 'waiting')`, id, string(status), errJSON, at)
		n += int(tag.RowsAffected())
		return err
	})
	if err != nil {
		return 0, db.mapErr(err, "records of workflow "+id.String())
	}
	return n, nil
}
