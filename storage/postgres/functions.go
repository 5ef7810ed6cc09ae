package postgres

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ferry-faas/ferry"
)

const functionColumns = `id, name, description, latest_version, created_at, updated_at`

const versionColumns = `function_id, function, version, runtime, handler, checksum, code_size, code_key,
	limits, env, description, created_at, secrets`

func scanFunction(row pgx.Row) (ferry.Function, error) {
	var f ferry.Function
	err := row.Scan(&f.ID, &f.Name, &f.Description, &f.LatestVersion, &f.CreatedAt, &f.UpdatedAt)
	f.CreatedAt, f.UpdatedAt = f.CreatedAt.UTC(), f.UpdatedAt.UTC()
	return f, err
}

func scanVersion(row pgx.Row) (ferry.Version, error) {
	var v ferry.Version
	var rt string
	err := row.Scan(&v.FunctionID, &v.Function, &v.Version, &rt, &v.Handler, &v.Checksum, &v.CodeSize, &v.CodeKey,
		&v.Limits, &v.Env, &v.Description, &v.CreatedAt, &v.Secrets)
	v.Runtime = ferry.Runtime(rt)
	v.CreatedAt = v.CreatedAt.UTC()
	return v, err
}

func functionName(name string) string { return fmt.Sprintf("function %q", name) }

// CreateFunction creates the function v.Function with v as its version 1 and,
// when admin is not uuid.Nil, grants that key admin on it, in one transaction.
// The function's identity is v.FunctionID, or a fresh one when that is zero. It
// answers ECONFLICT when a function of that name exists: creating and adding a
// version are different rights, so a create never turns into an update.
func (db *DB) CreateFunction(ctx context.Context, v ferry.Version, admin uuid.UUID) (ferry.Version, error) {
	if v.FunctionID == uuid.Nil {
		v.FunctionID = uuid.New()
	}
	return db.insertVersion(ctx, v, `
		INSERT INTO functions (id, name, description, latest_version) VALUES ($1, $2, $3, 1)
		ON CONFLICT (name) DO NOTHING
		RETURNING latest_version`,
		"function %q was created by another deploy a moment ago; deploy again to add a version to it",
		func(tx pgx.Tx) error {
			if admin == uuid.Nil {
				return nil
			}
			_, err := tx.Exec(ctx, `INSERT INTO function_permissions (key_id, function, permission)
				VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, admin, v.Function, string(ferry.PermAdmin))
			return err
		})
}

// CreateVersion stores v as the next version of the function whose identity is
// v.FunctionID and makes it the latest; it sets v.Version and v.CreatedAt.
// Version numbers are gap-free under concurrent deploys: the function's row lock
// orders them. It answers ECONFLICT when the function of that name is gone or is
// another function (deleted and created again) since the caller read it.
func (db *DB) CreateVersion(ctx context.Context, v ferry.Version) (ferry.Version, error) {
	if v.FunctionID == uuid.Nil {
		return ferry.Version{}, ferry.Errorf(ferry.EINVALID, "function id is required")
	}
	return db.insertVersion(ctx, v, `
		UPDATE functions SET latest_version = latest_version + 1, description = $3, updated_at = now()
		WHERE id = $1 AND name = $2
		RETURNING latest_version`,
		"function %q was deleted or replaced while this deploy ran; deploy again", nil)
}

// insertVersion runs bump (which returns the new version number from the
// functions row, $1 id, $2 name, $3 description) and inserts the version row, in
// one transaction with then (when not nil); gone is the conflict message when
// bump matches no row.
func (db *DB) insertVersion(ctx context.Context, v ferry.Version, bump, gone string, then func(pgx.Tx) error) (ferry.Version, error) {
	switch {
	case v.Function == "":
		return ferry.Version{}, ferry.Errorf(ferry.EINVALID, "function name is required")
	case !v.Runtime.Valid():
		return ferry.Version{}, ferry.Errorf(ferry.EINVALID, "unknown runtime %q", v.Runtime)
	case v.CodeKey == "":
		return ferry.Version{}, ferry.Errorf(ferry.EINVALID, "code key is required")
	}
	if v.Env == nil {
		v.Env = map[string]string{}
	}
	if v.Secrets == nil {
		v.Secrets = []string{}
	}
	what := functionName(v.Function)
	err := db.tx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, bump, v.FunctionID, v.Function, v.Description).Scan(&v.Version)
		if err == pgx.ErrNoRows {
			return ferry.Errorf(ferry.ECONFLICT, gone, v.Function)
		}
		if err != nil {
			return err
		}
		what = fmt.Sprintf("function %q version %d", v.Function, v.Version)
		created, err := scanVersion(tx.QueryRow(ctx, `
			INSERT INTO function_versions (function_id, function, version, runtime, handler, checksum,
				code_size, code_key, limits, env, description, secrets)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
			RETURNING `+versionColumns,
			v.FunctionID, v.Function, v.Version, string(v.Runtime), v.Handler, v.Checksum, v.CodeSize,
			v.CodeKey, v.Limits, v.Env, v.Description, v.Secrets))
		v = created
		if err != nil || then == nil {
			return err
		}
		return then(tx)
	})
	if err != nil {
		return ferry.Version{}, db.mapErr(err, what)
	}
	return v, nil
}

// GetFunction returns the function called name.
func (db *DB) GetFunction(ctx context.Context, name string) (ferry.Function, error) {
	f, err := scanFunction(db.pool.QueryRow(ctx,
		`SELECT `+functionColumns+` FROM functions WHERE name = $1`, name))
	if err != nil {
		return ferry.Function{}, db.mapErr(err, functionName(name))
	}
	return f, nil
}

// ListFunctions lists the functions v may read, by name. The returned cursor
// is "" on the last page.
func (db *DB) ListFunctions(ctx context.Context, v ferry.Viewer, p ferry.Page) ([]ferry.Function, string, error) {
	n, err := limit(p)
	if err != nil {
		return nil, "", err
	}
	var after functionKeyset
	if _, err := decodeCursor(p.Cursor, &after); err != nil {
		return nil, "", err
	}
	// An empty name sorts before every name, so the first page needs no special case.
	var w where
	q := `SELECT ` + functionColumns + ` FROM functions WHERE name > ` + w.arg(after.Name) +
		` AND ` + w.readable(v, "functions.name") + ` ORDER BY name LIMIT ` + w.arg(n+1)
	rows, err := db.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, "", db.mapErr(err, "functions")
	}
	fns, next, err := collectPage(rows, n, scanFunction, func(f ferry.Function) any { return functionKeyset{Name: f.Name} })
	if err != nil {
		return nil, "", db.mapErr(err, "functions")
	}
	return fns, next, nil
}

// GetVersion returns one version of a function; version 0 means the latest.
func (db *DB) GetVersion(ctx context.Context, name string, version int) (ferry.Version, error) {
	if version < 0 || version > ferry.MaxVersion {
		return ferry.Version{}, ferry.Errorf(ferry.EINVALID, "version must be between 1 and %d", ferry.MaxVersion)
	}
	// One statement for both cases: the latest version is found through functions.
	v, err := scanVersion(db.pool.QueryRow(ctx, `SELECT `+versionColumns+` FROM function_versions
		WHERE function = $1 AND version = CASE WHEN $2::int = 0
			THEN (SELECT latest_version FROM functions WHERE name = $1) ELSE $2::int END`,
		name, version))
	if err == nil {
		return v, nil
	}
	if version == 0 {
		return ferry.Version{}, db.mapErr(err, functionName(name))
	}
	err = db.mapErr(err, fmt.Sprintf("function %q version %d", name, version))
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		// Say which is missing: the function or only this version of it.
		if _, ferr := db.GetFunction(ctx, name); ferr != nil {
			return ferry.Version{}, ferr
		}
	}
	return ferry.Version{}, err
}

// ListVersions lists a function's versions, newest first. It returns ENOTFOUND
// when the function does not exist.
func (db *DB) ListVersions(ctx context.Context, name string, p ferry.Page) ([]ferry.Version, string, error) {
	n, err := limit(p)
	if err != nil {
		return nil, "", err
	}
	below, err := versionsBelow(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	what := functionName(name)
	var vs []ferry.Version
	next := ""
	// Repeatable read: the existence check and the page see the same snapshot.
	err = pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error {
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM functions WHERE name = $1)`, name).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				return notFound("%s not found", what)
			}
			rows, err := tx.Query(ctx, `SELECT `+versionColumns+` FROM function_versions
				WHERE function = $1 AND version < $2 ORDER BY version DESC LIMIT $3`, name, below, n+1)
			if err != nil {
				return err
			}
			vs, next, err = collectPage(rows, n, scanVersion, func(v ferry.Version) any { return versionKeyset{Version: v.Version} })
			return err
		})
	if err != nil {
		return nil, "", db.mapErr(err, what)
	}
	return vs, next, nil
}

// DeleteFunction deletes a function with its versions and permissions in one
// transaction. It returns the deleted function's identity and the code keys that
// no remaining version references; the caller deletes those objects, and
// everything stored under the identity, from the code store. Invocation records
// stay.
func (db *DB) DeleteFunction(ctx context.Context, name string) (uuid.UUID, []string, error) {
	what := functionName(name)
	var orphans []string
	var id uuid.UUID
	err := db.tx(ctx, func(tx pgx.Tx) error {
		// Lock the function first: a concurrent deploy of the same name waits for
		// this transaction and then fails (it was authorised for this function).
		if err := tx.QueryRow(ctx, `SELECT id FROM functions WHERE name = $1 FOR UPDATE`, name).Scan(&id); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `DELETE FROM function_versions WHERE function = $1 RETURNING code_key`, name)
		if err != nil {
			return err
		}
		keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM function_permissions WHERE function = $1`, name); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM functions WHERE name = $1`, name); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `
			SELECT DISTINCT k FROM unnest($1::text[]) AS k
			WHERE NOT EXISTS (SELECT 1 FROM function_versions v WHERE v.code_key = k)
			ORDER BY k`, keys)
		if err != nil {
			return err
		}
		orphans, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return uuid.Nil, nil, db.mapErr(err, what)
	}
	return id, orphans, nil
}
