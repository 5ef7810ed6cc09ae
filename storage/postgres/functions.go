package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/ferry-faas/ferry"
)

const functionColumns = `name, description, latest_version, created_at, updated_at`

const versionColumns = `function, version, runtime, handler, checksum, code_size, code_key,
	limits, env, description, created_at`

func scanFunction(row pgx.Row) (ferry.Function, error) {
	var f ferry.Function
	err := row.Scan(&f.Name, &f.Description, &f.LatestVersion, &f.CreatedAt, &f.UpdatedAt)
	f.CreatedAt, f.UpdatedAt = f.CreatedAt.UTC(), f.UpdatedAt.UTC()
	return f, err
}

func scanVersion(row pgx.Row) (ferry.Version, error) {
	var v ferry.Version
	var rt string
	err := row.Scan(&v.Function, &v.Version, &rt, &v.Handler, &v.Checksum, &v.CodeSize, &v.CodeKey,
		&v.Limits, &v.Env, &v.Description, &v.CreatedAt)
	v.Runtime = ferry.Runtime(rt)
	v.CreatedAt = v.CreatedAt.UTC()
	return v, err
}

func functionName(name string) string { return fmt.Sprintf("function %q", name) }

// CreateVersion stores v as the next version of v.Function, creating the function
// on its first deploy. It sets v.Version and v.CreatedAt and makes the new version
// the latest. Version numbers are gap-free under concurrent deploys: the
// function's row lock, taken by the upsert, orders them.
func (db *DB) CreateVersion(ctx context.Context, v ferry.Version) (ferry.Version, error) {
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
	what := functionName(v.Function)
	err := db.tx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `
			INSERT INTO functions (name, description, latest_version) VALUES ($1, $2, 1)
			ON CONFLICT (name) DO UPDATE SET
				latest_version = functions.latest_version + 1,
				description = EXCLUDED.description,
				updated_at = now()
			RETURNING latest_version`, v.Function, v.Description).Scan(&v.Version)
		if err != nil {
			return err
		}
		what = fmt.Sprintf("function %q version %d", v.Function, v.Version)
		created, err := scanVersion(tx.QueryRow(ctx, `
			INSERT INTO function_versions (function, version, runtime, handler, checksum, code_size,
				code_key, limits, env, description)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			RETURNING `+versionColumns,
			v.Function, v.Version, string(v.Runtime), v.Handler, v.Checksum, v.CodeSize,
			v.CodeKey, v.Limits, v.Env, v.Description))
		v = created
		return err
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

// ListFunctions lists functions by name. The returned cursor is "" on the last page.
func (db *DB) ListFunctions(ctx context.Context, p ferry.Page) ([]ferry.Function, string, error) {
	n, err := limit(p)
	if err != nil {
		return nil, "", err
	}
	var after functionKeyset
	if _, err := decodeCursor(p.Cursor, &after); err != nil {
		return nil, "", err
	}
	// An empty name sorts before every name, so the first page needs no special case.
	rows, err := db.pool.Query(ctx, `SELECT `+functionColumns+` FROM functions
		WHERE name > $1 ORDER BY name LIMIT $2`, after.Name, n+1)
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
// transaction. It returns the code keys that no remaining version references; the
// caller deletes those objects from the code store. Invocation records stay.
func (db *DB) DeleteFunction(ctx context.Context, name string) ([]string, error) {
	what := functionName(name)
	var orphans []string
	err := db.tx(ctx, func(tx pgx.Tx) error {
		// Lock the function first: a concurrent deploy of the same name waits for
		// this transaction and then starts a fresh function at version 1.
		var locked string
		if err := tx.QueryRow(ctx, `SELECT name FROM functions WHERE name = $1 FOR UPDATE`, name).Scan(&locked); err != nil {
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
		return nil, db.mapErr(err, what)
	}
	return orphans, nil
}
