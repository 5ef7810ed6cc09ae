package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ferry-faas/ferry"
)

func chainName(name string) string { return fmt.Sprintf("chain %q", name) }

func chainRunName(id uuid.UUID) string { return "chain run " + id.String() }

// definition is what chain_versions.definition holds.
type definition struct {
	Steps       []ferry.Step `json:"steps"`
	Description string       `json:"description,omitempty"`
}

const chainColumns = `id, name, latest_version, created_at, updated_at`

func scanChain(row pgx.Row) (ferry.Chain, error) {
	var c ferry.Chain
	err := row.Scan(&c.ID, &c.Name, &c.LatestVersion, &c.CreatedAt, &c.UpdatedAt)
	c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	return c, err
}

const chainVersionColumns = `chain_id, chain, version, definition, created_at`

func scanChainVersion(row pgx.Row) (ferry.ChainVersion, error) {
	var v ferry.ChainVersion
	var d definition
	err := row.Scan(&v.ChainID, &v.Chain, &v.Version, &d, &v.CreatedAt)
	v.Steps, v.Description = d.Steps, d.Description
	v.CreatedAt = v.CreatedAt.UTC()
	return v, err
}

// CreateChainVersion stores v as the next version of chain v.Chain, creating
// the chain on its first version. It validates the steps.
func (db *DB) CreateChainVersion(ctx context.Context, v ferry.ChainVersion) (ferry.ChainVersion, error) {
	if v.Chain == "" {
		return ferry.ChainVersion{}, ferry.Errorf(ferry.EINVALID, "chain name is required")
	}
	if err := ferry.ValidateSteps(v.Steps); err != nil {
		return ferry.ChainVersion{}, err
	}
	what := chainName(v.Chain)
	err := db.tx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `
			INSERT INTO chains (name, latest_version) VALUES ($1, 1)
			ON CONFLICT (name) DO UPDATE SET latest_version = chains.latest_version + 1, updated_at = now()
			RETURNING id, latest_version`, v.Chain).Scan(&v.ChainID, &v.Version)
		if err != nil {
			return err
		}
		created, err := scanChainVersion(tx.QueryRow(ctx, `
			INSERT INTO chain_versions (chain_id, chain, version, definition) VALUES ($1, $2, $3, $4)
			RETURNING `+chainVersionColumns, v.ChainID, v.Chain, v.Version, definition{Steps: v.Steps, Description: v.Description}))
		v = created
		return err
	})
	if err != nil {
		return ferry.ChainVersion{}, db.mapErr(err, what)
	}
	return v, nil
}

// GetChain returns the chain called name.
func (db *DB) GetChain(ctx context.Context, name string) (ferry.Chain, error) {
	c, err := scanChain(db.pool.QueryRow(ctx, `SELECT `+chainColumns+` FROM chains WHERE name = $1`, name))
	if err != nil {
		return ferry.Chain{}, db.mapErr(err, chainName(name))
	}
	return c, nil
}

// ListChains lists by name the chains whose latest version v may read.
func (db *DB) ListChains(ctx context.Context, v ferry.Viewer, p ferry.Page) ([]ferry.Chain, string, error) {
	n, err := limit(p)
	if err != nil {
		return nil, "", err
	}
	var after functionKeyset
	if _, err := decodeCursor(p.Cursor, &after); err != nil {
		return nil, "", err
	}
	var w where
	q := `SELECT ` + chainColumns + ` FROM chains WHERE name > ` + w.arg(after.Name)
	if v.KeyID != uuid.Nil {
		q += ` AND EXISTS (SELECT 1 FROM chain_versions cv WHERE cv.chain = chains.name
			AND cv.version = chains.latest_version AND ` + w.chainReadable(v, "cv.definition") + `)`
	}
	rows, err := db.pool.Query(ctx, q+` ORDER BY name LIMIT `+w.arg(n+1), w.args...)
	if err != nil {
		return nil, "", db.mapErr(err, "chains")
	}
	cs, next, err := collectPage(rows, n, scanChain, func(c ferry.Chain) any { return functionKeyset{Name: c.Name} })
	if err != nil {
		return nil, "", db.mapErr(err, "chains")
	}
	return cs, next, nil
}

// GetChainVersion returns one version of a chain; version 0 means the latest.
func (db *DB) GetChainVersion(ctx context.Context, name string, version int) (ferry.ChainVersion, error) {
	if version < 0 || version > ferry.MaxVersion {
		return ferry.ChainVersion{}, ferry.Errorf(ferry.EINVALID, "version must be between 1 and %d", ferry.MaxVersion)
	}
	var v ferry.ChainVersion
	var err error
	if version == 0 {
		v, err = scanChainVersion(db.pool.QueryRow(ctx, `SELECT `+chainVersionColumns+` FROM chain_versions
			WHERE chain = $1 ORDER BY version DESC LIMIT 1`, name))
		if err != nil {
			return ferry.ChainVersion{}, db.mapErr(err, chainName(name))
		}
		return v, nil
	}
	v, err = scanChainVersion(db.pool.QueryRow(ctx, `SELECT `+chainVersionColumns+` FROM chain_versions
		WHERE chain = $1 AND version = $2`, name, version))
	if err == nil {
		return v, nil
	}
	err = db.mapErr(err, fmt.Sprintf("chain %q version %d", name, version))
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		if _, cerr := db.GetChain(ctx, name); cerr != nil {
			return ferry.ChainVersion{}, cerr
		}
	}
	return ferry.ChainVersion{}, err
}

// ListChainVersions lists the versions of a chain that v may read, newest first.
func (db *DB) ListChainVersions(ctx context.Context, name string, v ferry.Viewer, p ferry.Page) ([]ferry.ChainVersion, string, error) {
	n, err := limit(p)
	if err != nil {
		return nil, "", err
	}
	below, err := versionsBelow(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	if _, err := db.GetChain(ctx, name); err != nil {
		return nil, "", err
	}
	var w where
	q := `SELECT ` + chainVersionColumns + ` FROM chain_versions WHERE chain = ` + w.arg(name) +
		` AND version < ` + w.arg(below) + ` AND ` + w.chainReadable(v, "definition") +
		` ORDER BY version DESC LIMIT ` + w.arg(n+1)
	rows, err := db.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, "", db.mapErr(err, chainName(name))
	}
	vs, next, err := collectPage(rows, n, scanChainVersion, func(v ferry.ChainVersion) any { return versionKeyset{Version: v.Version} })
	if err != nil {
		return nil, "", db.mapErr(err, chainName(name))
	}
	return vs, next, nil
}

// DeleteChain deletes a chain and its versions. Its runs stay, but their
// idempotency keys are released: a chain created later under the name is
// another chain, and a key must not answer with the deleted one's run.
func (db *DB) DeleteChain(ctx context.Context, name string) error {
	return db.mapErr(db.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM chains WHERE name = $1`, name)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return notFound("%s not found", chainName(name))
		}
		_, err = tx.Exec(ctx, `UPDATE chain_runs SET idempotency_key = NULL
			WHERE chain = $1 AND idempotency_key IS NOT NULL`, name)
		return err
	}), chainName(name))
}

const chainRunColumns = `id, chain, coalesce(chain_id, '00000000-0000-0000-0000-000000000000'),
	version, status, input, output, error, steps,
	coalesce(idempotency_key, ''), workflow_id, run_id, created_at, started_at, finished_at`

const chainRunListColumns = `id, chain, coalesce(chain_id, '00000000-0000-0000-0000-000000000000'),
	version, status, NULL::json, NULL::json, error, '[]'::jsonb,
	coalesce(idempotency_key, ''), workflow_id, run_id, created_at, started_at, finished_at`

func scanChainRun(row pgx.Row) (ferry.ChainRun, error) { return scanChainRunAnd(row) }

// scanChainRunAnd scans chainRunColumns, then extra.
func scanChainRunAnd(row pgx.Row, extra ...any) (ferry.ChainRun, error) {
	var r ferry.ChainRun
	var status string
	var input, output []byte
	err := row.Scan(append([]any{&r.ID, &r.Chain, &r.ChainID, &r.Version, &status, &input, &output, &r.Error, &r.Steps,
		&r.IdempotencyKey, &r.WorkflowID, &r.RunID, &r.CreatedAt, &r.StartedAt, &r.FinishedAt}, extra...)...)
	r.Status = ferry.InvocationStatus(status)
	if input != nil {
		r.Input = json.RawMessage(input)
	}
	if output != nil {
		r.Output = json.RawMessage(output)
	}
	if r.Steps == nil {
		r.Steps = []ferry.StepStatus{}
	}
	r.CreatedAt = r.CreatedAt.UTC()
	r.StartedAt = utcPtr(r.StartedAt)
	r.FinishedAt = utcPtr(r.FinishedAt)
	return r, err
}

// CreateChainRun records a new chain run (pending). With an idempotency key that
// a run of the same chain was created with less than ferry.IdempotencyKeyLifetime
// ago, it returns that run and created=false, or EUNPROCESSABLE when that run was
// asked for with another request (r.RequestHash differs). An older key is free.
func (db *DB) CreateChainRun(ctx context.Context, r ferry.ChainRun) (ferry.ChainRun, bool, error) {
	if r.Chain == "" {
		return ferry.ChainRun{}, false, ferry.Errorf(ferry.EINVALID, "chain name is required")
	}
	if r.Status == "" {
		r.Status = ferry.StatusPending
	}
	if r.ID == uuid.Nil {
		id, err := uuid.NewV7()
		if err != nil {
			return ferry.ChainRun{}, false, ferry.Wrap(err, ferry.EINTERNAL, "generating a chain run id: %v", err)
		}
		r.ID = id
	}
	if r.WorkflowID == "" {
		r.WorkflowID = r.ID.String()
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = time.Now()
	}
	if r.Steps == nil {
		r.Steps = []ferry.StepStatus{}
	}
	errJSON, err := jsonOrNil(r.Error)
	if err != nil {
		return ferry.ChainRun{}, false, err
	}
	return idempotent[ferry.ChainRun]{
		table: "chain_runs", scopeColumn: "chain", scope: r.Chain,
		key: r.IdempotencyKey, hash: r.RequestHash, createdAt: r.CreatedAt,
		what: chainRunName(r.ID), asked: "input or version", target: chainName(r.Chain),
		insert: func() (ferry.ChainRun, error) {
			return scanChainRun(db.pool.QueryRow(ctx, `
				INSERT INTO chain_runs (id, chain, chain_id, version, status, input, steps, idempotency_key,
					request_hash, workflow_id, created_at, error, finished_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
				ON CONFLICT (chain, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
				RETURNING `+chainRunColumns,
				r.ID, r.Chain, nullUUID(r.ChainID), r.Version, string(r.Status), rawJSON(r.Input), r.Steps,
				nullString(r.IdempotencyKey), nullString(r.RequestHash), r.WorkflowID, r.CreatedAt, errJSON, r.FinishedAt))
		},
		existing: func(hash *string) (ferry.ChainRun, error) {
			return scanChainRunAnd(db.pool.QueryRow(ctx, `SELECT `+chainRunColumns+`, coalesce(request_hash, '')
				FROM chain_runs WHERE chain = $1 AND idempotency_key = $2`, r.Chain, r.IdempotencyKey), hash)
		},
	}.run(ctx, db)
}

// GetChainRun returns one chain run.
func (db *DB) GetChainRun(ctx context.Context, id uuid.UUID) (ferry.ChainRun, error) {
	r, err := scanChainRun(db.pool.QueryRow(ctx, `SELECT `+chainRunColumns+` FROM chain_runs WHERE id = $1`, id))
	if err != nil {
		return ferry.ChainRun{}, db.mapErr(err, chainRunName(id))
	}
	return r, nil
}

// ListChainRuns lists chain runs newest first, without input, output and steps.
func (db *DB) ListChainRuns(ctx context.Context, f ferry.ChainRunFilter, p ferry.Page) ([]ferry.ChainRun, string, error) {
	n, err := limit(p)
	if err != nil {
		return nil, "", err
	}
	if f.Status != "" && !f.Status.Valid() {
		return nil, "", ferry.Errorf(ferry.EINVALID, "unknown status %q", f.Status)
	}
	before, err := createdBefore(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	var w where
	if f.Chain != "" {
		w.equal("chain", f.Chain)
	}
	if f.Status != "" {
		w.equal("status", string(f.Status))
	}
	if f.Viewer.KeyID != uuid.Nil {
		// The version of the run's own chain: not a version of a chain created
		// later under the name of a deleted one.
		w.conds = append(w.conds, `EXISTS (SELECT 1 FROM chain_versions cv WHERE cv.chain_id = chain_runs.chain_id
			AND cv.version = chain_runs.version AND `+w.chainReadable(f.Viewer, "cv.definition")+`)`)
	}
	q := w.newestFirst(`SELECT `+chainRunListColumns+` FROM chain_runs`, before, n)
	rows, err := db.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, "", db.mapErr(err, "chain runs")
	}
	runs, next, err := collectPage(rows, n, scanChainRun, func(r ferry.ChainRun) any {
		return invocationKeyset{CreatedAt: r.CreatedAt, ID: r.ID}
	})
	if err != nil {
		return nil, "", db.mapErr(err, "chain runs")
	}
	return runs, next, nil
}

// StartChainRun moves a pending chain run to running; it is a no-op otherwise.
func (db *DB) StartChainRun(ctx context.Context, id uuid.UUID, runID string, at time.Time) error {
	if at.IsZero() {
		at = time.Now()
	}
	_, err := db.pool.Exec(ctx, `UPDATE chain_runs SET status = 'running', run_id = $2, started_at = $3
		WHERE id = $1 AND status = 'pending'`, id, runID, at)
	if err != nil {
		return db.mapErr(err, chainRunName(id))
	}
	return nil
}

// FinishChainRun records the outcome of a chain run that is not final yet;
// once final a run never changes (updated=false, the stored run).
func (db *DB) FinishChainRun(ctx context.Context, id uuid.UUID, o ferry.ChainOutcome) (ferry.ChainRun, bool, error) {
	if !o.Status.Final() || !o.Status.Valid() {
		return ferry.ChainRun{}, false, ferry.Errorf(ferry.EINVALID, "%q is not a final status", o.Status)
	}
	if o.FinishedAt.IsZero() {
		o.FinishedAt = time.Now()
	}
	if o.Steps == nil {
		o.Steps = []ferry.StepStatus{}
	}
	errJSON, err := jsonOrNil(o.Error)
	if err != nil {
		return ferry.ChainRun{}, false, err
	}
	r, err := scanChainRun(db.pool.QueryRow(ctx, `
		UPDATE chain_runs SET status = $2, output = $3, error = $4, steps = $5, finished_at = $6,
			started_at = coalesce(started_at, $6)
		WHERE id = $1 AND status IN ('pending', 'running')
		RETURNING `+chainRunColumns, id, string(o.Status), rawJSON(o.Output), errJSON, o.Steps, o.FinishedAt))
	if err == nil {
		return r, true, nil
	}
	if err != pgx.ErrNoRows {
		return ferry.ChainRun{}, false, db.mapErr(err, chainRunName(id))
	}
	r, err = db.GetChainRun(ctx, id)
	return r, false, err
}
