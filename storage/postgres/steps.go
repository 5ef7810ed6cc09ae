package postgres

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ferry-faas/ferry"
)

const operationColumns = `name, kind, status, result, coalesce(result_ref, ''), result_size, error,
	attempts, duration_ms, created_at, finished_at, wait_until`

func scanOperation(row pgx.Row) (ferry.Operation, error) {
	var op ferry.Operation
	var kind, status string
	var result []byte
	err := row.Scan(&op.Name, &kind, &status, &result, &op.ResultRef, &op.ResultSize, &op.Error,
		&op.Attempts, &op.DurationMS, &op.CreatedAt, &op.FinishedAt, &op.WaitUntil)
	op.Kind, op.Status = ferry.OperationKind(kind), ferry.OperationStatus(status)
	if result != nil {
		op.Result = json.RawMessage(result)
	}
	op.CreatedAt = op.CreatedAt.UTC()
	op.FinishedAt, op.WaitUntil = utcPtr(op.FinishedAt), utcPtr(op.WaitUntil)
	return op, err
}

// ListOperations returns an invocation's operations in the order they were
// first recorded. Waits whose time has come (at now) are marked succeeded, and
// callbacks past their timeout timed out, before they are read.
func (db *DB) ListOperations(ctx context.Context, id uuid.UUID, now time.Time) ([]ferry.Operation, error) {
	ops, err := db.listOperations(ctx, id)
	if err != nil {
		return nil, err
	}
	for _, op := range ops {
		if op.Status == ferry.OperationStarted && op.WaitUntil != nil && !op.WaitUntil.After(now) {
			// Rare (only after a wait or a callback): resolve, then read again.
			if _, err := db.pool.Exec(ctx, `
				UPDATE invocation_steps SET
					status = CASE kind WHEN 'wait' THEN 'succeeded' ELSE 'timed_out' END,
					error = CASE kind WHEN 'wait' THEN NULL ELSE $3::jsonb END,
					result = CASE kind WHEN 'wait' THEN 'null'::json ELSE NULL END,
					finished_at = $2
				WHERE invocation_id = $1 AND status = 'started' AND wait_until <= $2`,
				id, now, `{"type":"Callback.Timeout","message":"the callback was not completed before its timeout"}`); err != nil {
				return nil, db.mapErr(err, invocationName(id))
			}
			return db.listOperations(ctx, id)
		}
	}
	return ops, nil
}

func (db *DB) listOperations(ctx context.Context, id uuid.UUID) ([]ferry.Operation, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+operationColumns+` FROM invocation_steps
		WHERE invocation_id = $1 ORDER BY seq`, id)
	if err != nil {
		return nil, db.mapErr(err, invocationName(id))
	}
	ops, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ferry.Operation, error) { return scanOperation(row) })
	if err != nil {
		return nil, db.mapErr(err, invocationName(id))
	}
	return ops, nil
}

// RecordOperation records a checkpoint once: when the invocation already has
// an operation of that name (an earlier attempt recorded it), nothing changes
// and inserted is false. More than ferry.MaxOperations is ETOOMANY.
func (db *DB) RecordOperation(ctx context.Context, id uuid.UUID, op ferry.NewOperation) (inserted bool, err error) {
	errJSON, err := jsonOrNil(sanitizeError(op.Error))
	if err != nil {
		return false, err
	}
	var finished *time.Time
	if op.Status != ferry.OperationStarted {
		now := time.Now()
		finished = &now
	}
	var ref any
	if op.ResultRef != "" {
		ref = op.ResultRef
	}
	tag, err := db.pool.Exec(ctx, `
		INSERT INTO invocation_steps (invocation_id, name, seq, kind, status, result, result_ref, result_size,
			error, attempts, duration_ms, finished_at, wait_until, token_hash)
		SELECT $1, $2, n, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13
		FROM (SELECT count(*) AS n FROM invocation_steps WHERE invocation_id = $1) c
		WHERE n < $14
		ON CONFLICT (invocation_id, name) DO NOTHING`,
		id, op.Name, string(op.Kind), string(op.Status), rawJSON(op.Result), ref, op.ResultSize,
		errJSON, max(op.Attempts, 1), op.DurationMS, finished, op.WaitUntil, op.TokenHash, ferry.MaxOperations)
	if err != nil {
		return false, db.mapErr(err, invocationName(id))
	}
	if tag.RowsAffected() == 1 {
		return true, nil
	}
	var exists bool
	if err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM invocation_steps WHERE invocation_id = $1 AND name = $2)`,
		id, op.Name).Scan(&exists); err != nil {
		return false, db.mapErr(err, invocationName(id))
	}
	if !exists {
		return false, ferry.Errorf(ferry.ETOOMANY, "an invocation records at most %d operations", ferry.MaxOperations)
	}
	return false, nil
}

// CompleteCallback stores the body POSTed to the callback whose token hashes
// to tokenHash and returns its invocation and name. An unknown token is
// ENOTFOUND; a callback already completed or timed out is ECONFLICT.
func (db *DB) CompleteCallback(ctx context.Context, tokenHash []byte, body json.RawMessage, now time.Time) (uuid.UUID, string, error) {
	var id uuid.UUID
	var name string
	err := db.pool.QueryRow(ctx, `
		UPDATE invocation_steps SET status = 'succeeded', result = $2, result_size = $4, finished_at = $3
		WHERE token_hash = $1 AND status = 'started' AND wait_until > $3
		RETURNING invocation_id, name`, tokenHash, rawJSON(body), now, len(body)).Scan(&id, &name)
	if err == nil {
		return id, name, nil
	}
	if err != pgx.ErrNoRows {
		return id, name, db.mapErr(err, "callback")
	}
	var status string
	err = db.pool.QueryRow(ctx, `SELECT invocation_id, name, status FROM invocation_steps WHERE token_hash = $1`,
		tokenHash).Scan(&id, &name, &status)
	if err == pgx.ErrNoRows {
		return id, name, notFound("no such callback (the token is wrong, or its invocation was deleted)")
	}
	if err != nil {
		return id, name, db.mapErr(err, "callback")
	}
	if status == string(ferry.OperationSucceeded) {
		return id, name, ferry.Errorf(ferry.ECONFLICT, "callback %q was already completed: a callback token is single-use", name)
	}
	return id, name, ferry.Errorf(ferry.ECONFLICT, "callback %q timed out before this request", name)
}

// SuspendInvocation marks a running invocation waiting and appends the logs of
// the run that suspended it. It does nothing to a final record.
func (db *DB) SuspendInvocation(ctx context.Context, id uuid.UUID, logs string) (ferry.Invocation, error) {
	inv, err := scanInvocation(db.pool.QueryRow(ctx, `
		UPDATE invocations SET status = 'waiting', logs = logs || $2
		WHERE id = $1 AND status IN ('pending', 'running', 'waiting')
		RETURNING `+invocationColumns, id, cleanText(logs)))
	if err == pgx.ErrNoRows {
		return db.GetInvocation(ctx, id)
	}
	if err != nil {
		return inv, db.mapErr(err, invocationName(id))
	}
	return inv, nil
}

// CompleteOperation ends a started operation of kind invoke with op's status,
// result and error. It is idempotent: an operation already ended stays as it is.
func (db *DB) CompleteOperation(ctx context.Context, id uuid.UUID, op ferry.NewOperation) error {
	errJSON, err := jsonOrNil(sanitizeError(op.Error))
	if err != nil {
		return err
	}
	var ref any
	if op.ResultRef != "" {
		ref = op.ResultRef
	}
	_, err = db.pool.Exec(ctx, `
		UPDATE invocation_steps SET status = $3, result = $4, result_ref = $5, result_size = $6, error = $7,
			duration_ms = $8, finished_at = now()
		WHERE invocation_id = $1 AND name = $2 AND kind = 'invoke' AND status = 'started'`,
		id, op.Name, string(op.Status), rawJSON(op.Result), ref, op.ResultSize, errJSON, op.DurationMS)
	return db.mapErr(err, invocationName(id))
}
