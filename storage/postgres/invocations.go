package postgres

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ferry-faas/ferry"
)

// invocationColumns omits logs: they are read on their own by InvocationLogs.
const invocationColumns = `id, function, coalesce(function_id, '00000000-0000-0000-0000-000000000000'),
	version, status, event, result, error, metrics,
	coalesce(idempotency_key, ''), retry_of, chain_run_id, workflow_id, run_id,
	created_at, started_at, finished_at, attempts`

// listColumns leaves out the payloads, which can be large.
const listColumns = `id, function, coalesce(function_id, '00000000-0000-0000-0000-000000000000'),
	version, status, NULL::json, NULL::json, error, metrics,
	coalesce(idempotency_key, ''), retry_of, chain_run_id, workflow_id, run_id,
	created_at, started_at, finished_at, attempts`

func scanInvocation(row pgx.Row) (ferry.Invocation, error) { return scanInvocationAnd(row) }

// scanInvocationAnd scans invocationColumns (or listColumns), then extra.
func scanInvocationAnd(row pgx.Row, extra ...any) (ferry.Invocation, error) {
	var inv ferry.Invocation
	var status string
	var event, result []byte
	err := row.Scan(append([]any{&inv.ID, &inv.Function, &inv.FunctionID, &inv.Version, &status, &event, &result,
		&inv.Error, &inv.Metrics, &inv.IdempotencyKey, &inv.RetryOf, &inv.ChainRunID, &inv.WorkflowID, &inv.RunID,
		&inv.CreatedAt, &inv.StartedAt, &inv.FinishedAt, &inv.Attempts}, extra...)...)
	inv.Status = ferry.InvocationStatus(status)
	if event != nil {
		inv.Event = json.RawMessage(event)
	}
	if result != nil {
		inv.Result = json.RawMessage(result)
	}
	inv.CreatedAt = inv.CreatedAt.UTC()
	inv.StartedAt = utcPtr(inv.StartedAt)
	inv.FinishedAt = utcPtr(inv.FinishedAt)
	return inv, err
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func invocationName(id uuid.UUID) string { return "invocation " + id.String() }

// rawJSON maps an empty payload to SQL NULL.
func rawJSON(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// nullUUID maps uuid.Nil to SQL NULL.
func nullUUID(id uuid.UUID) any {
	if id == uuid.Nil {
		return nil
	}
	return id
}

// nullString maps "" to SQL NULL.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// CreateInvocation records a new invocation. A zero ID gets a fresh time-ordered
// UUID, a zero status is pending and a zero CreatedAt is now.
//
// When inv.IdempotencyKey is set and an invocation of the same function identity
// (inv.FunctionID) was created with that key less than ferry.IdempotencyKeyLifetime
// ago, it returns that record and created=false, or EUNPROCESSABLE when that
// record was asked for with another request (inv.RequestHash differs), as
// payment APIs answer a reused key. An older key is free again.
func (db *DB) CreateInvocation(ctx context.Context, inv ferry.Invocation) (ferry.Invocation, bool, error) {
	if inv.Function == "" {
		return ferry.Invocation{}, false, ferry.Errorf(ferry.EINVALID, "function name is required")
	}
	if inv.Status == "" {
		inv.Status = ferry.StatusPending
	}
	if !inv.Status.Valid() {
		return ferry.Invocation{}, false, ferry.Errorf(ferry.EINVALID, "unknown invocation status %q", inv.Status)
	}
	if inv.ID == uuid.Nil {
		id, err := uuid.NewV7()
		if err != nil {
			return ferry.Invocation{}, false, ferry.Wrap(err, ferry.EINTERNAL, "generating an invocation id: %v", err)
		}
		inv.ID = id
	}
	if inv.CreatedAt.IsZero() {
		inv.CreatedAt = time.Now()
	}
	errJSON, err := jsonOrNil(sanitizeError(inv.Error))
	if err != nil {
		return ferry.Invocation{}, false, err
	}
	metricsJSON, err := jsonOrNil(inv.Metrics)
	if err != nil {
		return ferry.Invocation{}, false, err
	}
	what := invocationName(inv.ID)
	functionID := nullUUID(inv.FunctionID)
	if inv.IdempotencyKey != "" && inv.FunctionID == uuid.Nil {
		return ferry.Invocation{}, false, ferry.Errorf(ferry.EINVALID, "an idempotency key needs the function's id")
	}
	return idempotent[ferry.Invocation]{
		table: "invocations", scopeColumn: "function_id", scope: inv.FunctionID,
		key: inv.IdempotencyKey, hash: inv.RequestHash, createdAt: inv.CreatedAt,
		what: what, asked: "event or version", target: functionName(inv.Function),
		insert: func() (ferry.Invocation, error) {
			return scanInvocation(db.pool.QueryRow(ctx, `
				INSERT INTO invocations (id, function, function_id, version, status, event, result, error, metrics,
					idempotency_key, request_hash, retry_of, chain_run_id, workflow_id, run_id, created_at,
					started_at, finished_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
				ON CONFLICT (function_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
				RETURNING `+invocationColumns,
				inv.ID, inv.Function, functionID, inv.Version, string(inv.Status), rawJSON(inv.Event), rawJSON(inv.Result),
				errJSON, metricsJSON, nullString(inv.IdempotencyKey), nullString(inv.RequestHash), inv.RetryOf,
				inv.ChainRunID, inv.WorkflowID, inv.RunID, inv.CreatedAt, inv.StartedAt, inv.FinishedAt))
		},
		existing: func(hash *string) (ferry.Invocation, error) {
			return scanInvocationAnd(db.pool.QueryRow(ctx, `SELECT `+invocationColumns+`, coalesce(request_hash, '')
				FROM invocations WHERE function_id = $1 AND idempotency_key = $2`, inv.FunctionID, inv.IdempotencyKey), hash)
		},
	}.run(ctx, db)
}

// GetInvocation returns one invocation, without its logs.
func (db *DB) GetInvocation(ctx context.Context, id uuid.UUID) (ferry.Invocation, error) {
	inv, err := scanInvocation(db.pool.QueryRow(ctx,
		`SELECT `+invocationColumns+` FROM invocations WHERE id = $1`, id))
	if err != nil {
		return ferry.Invocation{}, db.mapErr(err, invocationName(id))
	}
	return inv, nil
}

// ListInvocations lists invocations newest first (by created_at, then id). List
// rows leave out Event and Result.
func (db *DB) ListInvocations(ctx context.Context, f ferry.InvocationFilter, p ferry.Page) ([]ferry.Invocation, string, error) {
	n, err := limit(p)
	if err != nil {
		return nil, "", err
	}
	if f.Status != "" && !f.Status.Valid() {
		return nil, "", ferry.Errorf(ferry.EINVALID, "unknown invocation status %q", f.Status)
	}
	before, err := createdBefore(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	var w where
	if f.Function != "" {
		w.equal("function", f.Function)
	}
	if f.FunctionID != nil {
		w.equal("function_id", *f.FunctionID)
	}
	if f.Status != "" {
		w.equal("status", string(f.Status))
	}
	if f.ChainRunID != nil {
		w.equal("chain_run_id", *f.ChainRunID)
	}
	if !f.Since.IsZero() {
		w.conds = append(w.conds, "created_at >= "+w.arg(f.Since))
	}
	if !f.Until.IsZero() {
		w.conds = append(w.conds, "created_at < "+w.arg(f.Until))
	}
	q := w.newestFirst(`SELECT `+listColumns+` FROM invocations`, before, n)
	rows, err := db.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, "", db.mapErr(err, "invocations")
	}
	invs, next, err := collectPage(rows, n, scanInvocation, func(inv ferry.Invocation) any {
		return invocationKeyset{CreatedAt: inv.CreatedAt, ID: inv.ID}
	})
	if err != nil {
		return nil, "", db.mapErr(err, "invocations")
	}
	return invs, next, nil
}

// StartInvocation records that the function of an invocation that is not final
// is being started by the attempt holding token: the first call moves it from
// pending (or a durable invocation from waiting) to running (recording when
// and in which workflow run), every call
// counts one more attempt, and the attempt takes the record's lease for ttl
// (RenewInvocation extends it, ReleaseInvocation gives it up). It returns the
// record's status afterwards: running, or the final status of a record that is
// already final, which it leaves unchanged (the caller must not run the
// function then). While another attempt holds a live lease it changes nothing
// and answers ECONFLICT: that attempt is running the function.
func (db *DB) StartInvocation(ctx context.Context, id uuid.UUID, runID string, at time.Time, token uuid.UUID, ttl time.Duration) (ferry.InvocationStatus, error) {
	if at.IsZero() {
		at = time.Now()
	}
	tag, err := db.pool.Exec(ctx, `UPDATE invocations SET status = 'running', attempts = attempts + 1,
			run_id = CASE WHEN status = 'pending' THEN $2 ELSE run_id END,
			started_at = coalesce(started_at, $3),
			lease_token = $4, lease_until = now() + make_interval(secs => $5)
		WHERE id = $1 AND (status IN ('pending', 'waiting') OR status = 'running'
			AND (lease_until IS NULL OR lease_until < now() OR lease_token = $4))`,
		id, runID, at, token, ttl.Seconds())
	if err != nil {
		return "", db.mapErr(err, invocationName(id))
	}
	if tag.RowsAffected() == 1 {
		return ferry.StatusRunning, nil
	}
	var status string
	var until *time.Time
	if err := db.pool.QueryRow(ctx, `SELECT status, lease_until FROM invocations WHERE id = $1`, id).Scan(&status, &until); err != nil {
		return "", db.mapErr(err, invocationName(id))
	}
	if st := ferry.InvocationStatus(status); st.Final() {
		return st, nil
	}
	return "", ferry.Errorf(ferry.ECONFLICT, "%s is being run by another attempt (its lease lasts until %s)",
		invocationName(id), until.UTC().Format(time.RFC3339Nano))
}

// RenewInvocation extends the lease of the attempt holding token by ttl from
// now; it answers ECONFLICT when that attempt no longer holds it.
func (db *DB) RenewInvocation(ctx context.Context, id, token uuid.UUID, ttl time.Duration) error {
	tag, err := db.pool.Exec(ctx, `UPDATE invocations SET lease_until = now() + make_interval(secs => $3)
		WHERE id = $1 AND lease_token = $2 AND status = 'running'`, id, token, ttl.Seconds())
	if err != nil {
		return db.mapErr(err, invocationName(id))
	}
	if tag.RowsAffected() == 0 {
		return ferry.Errorf(ferry.ECONFLICT, "%s: the lease is no longer held", invocationName(id))
	}
	return nil
}

// ReleaseInvocation gives up the lease of the attempt holding token, so that
// the next attempt need not wait for it to expire.
func (db *DB) ReleaseInvocation(ctx context.Context, id, token uuid.UUID) error {
	_, err := db.pool.Exec(ctx, `UPDATE invocations SET lease_until = NULL WHERE id = $1 AND lease_token = $2`, id, token)
	return db.mapErr(err, invocationName(id))
}

// FinishInvocation records the outcome of an invocation that is not final yet.
// Its logs are appended to those of the runs that suspended it (durable waits).
// Once final, a record never changes: a second call (an activity retry, or a
// cancel racing a completion) returns the stored record and updated=false.
func (db *DB) FinishInvocation(ctx context.Context, id uuid.UUID, o ferry.Outcome) (ferry.Invocation, bool, error) {
	if !o.Status.Final() || !o.Status.Valid() {
		return ferry.Invocation{}, false, ferry.Errorf(ferry.EINVALID, "%q is not a final invocation status", o.Status)
	}
	if o.FinishedAt.IsZero() {
		o.FinishedAt = time.Now()
	}
	errJSON, err := jsonOrNil(sanitizeError(o.Error))
	if err != nil {
		return ferry.Invocation{}, false, err
	}
	metricsJSON, err := jsonOrNil(o.Metrics)
	if err != nil {
		return ferry.Invocation{}, false, err
	}
	what := invocationName(id)
	// The final logs replace the chunks stored while it ran (AppendLogs).
	inv, err := scanInvocation(db.pool.QueryRow(ctx, `
		WITH chunks AS (DELETE FROM invocation_log_chunks WHERE invocation_id = $1)
		UPDATE invocations SET status = $2, result = $3, error = $4, metrics = $5, logs = logs || $6, finished_at = $7
		WHERE id = $1 AND status IN ('pending', 'running', 'waiting')
		RETURNING `+invocationColumns,
		id, string(o.Status), rawJSON(o.Result), errJSON, metricsJSON, cleanText(o.Logs), o.FinishedAt))
	if err == nil {
		return inv, true, nil
	}
	if err != pgx.ErrNoRows {
		return ferry.Invocation{}, false, db.mapErr(err, what)
	}
	inv, err = db.GetInvocation(ctx, id)
	return inv, false, err
}

// AppendLogs stores a piece of the output of a running invocation: stream
// names the run of the function that wrote it, offset is the bytes of that
// run's output before text. Nothing is stored once the invocation is final.
func (db *DB) AppendLogs(ctx context.Context, id, stream uuid.UUID, offset int, text string) error {
	_, err := db.pool.Exec(ctx, `INSERT INTO invocation_log_chunks (invocation_id, stream, "offset", text)
		SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM invocations WHERE id = $1 AND status IN ('pending', 'running'))`,
		id, stream, offset, cleanText(text))
	return db.mapErr(err, invocationName(id))
}

// FollowLogs returns the status of an invocation and, when it is final, its
// logs; while it runs, the chunks of output stored after seq after.
func (db *DB) FollowLogs(ctx context.Context, id uuid.UUID, after int64) (ferry.InvocationStatus, string, []ferry.LogChunk, error) {
	var status, logs string
	err := db.pool.QueryRow(ctx, `SELECT status, CASE WHEN status IN ('pending', 'running') THEN '' ELSE logs END
		FROM invocations WHERE id = $1`, id).Scan(&status, &logs)
	if err != nil {
		return "", "", nil, db.mapErr(err, invocationName(id))
	}
	st := ferry.InvocationStatus(status)
	if st.Final() {
		return st, logs, nil, nil
	}
	rows, err := db.pool.Query(ctx, `SELECT seq, stream, "offset", text FROM invocation_log_chunks
		WHERE invocation_id = $1 AND seq > $2 ORDER BY seq`, id, after)
	if err != nil {
		return "", "", nil, db.mapErr(err, invocationName(id))
	}
	chunks, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ferry.LogChunk, error) {
		var c ferry.LogChunk
		err := r.Scan(&c.Seq, &c.Stream, &c.Offset, &c.Text)
		return c, err
	})
	if err != nil {
		return "", "", nil, db.mapErr(err, invocationName(id))
	}
	return st, "", chunks, nil
}

// InvocationLogs returns the captured output of an invocation.
func (db *DB) InvocationLogs(ctx context.Context, id uuid.UUID) (string, error) {
	var logs string
	if err := db.pool.QueryRow(ctx, `SELECT logs FROM invocations WHERE id = $1`, id).Scan(&logs); err != nil {
		return "", db.mapErr(err, invocationName(id))
	}
	return logs, nil
}

// jsonOrNil marshals v for a jsonb column, mapping a nil pointer to SQL NULL.
func jsonOrNil[T any](v *T) (any, error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, ferry.Wrap(err, ferry.EINVALID, "cannot encode %T: %v", v, err)
	}
	return string(b), nil
}

// cleanText makes user output storable: PostgreSQL text holds neither NUL bytes
// nor invalid UTF-8.
func cleanText(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}

// sanitizeError cleans a function error's strings; jsonb rejects \u0000.
func sanitizeError(e *ferry.FunctionError) *ferry.FunctionError {
	if e == nil {
		return nil
	}
	return &ferry.FunctionError{Type: cleanText(e.Type), Message: cleanText(e.Message), Stack: cleanText(e.Stack)}
}
