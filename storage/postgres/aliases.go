package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/ferry-faas/ferry"
)

const aliasColumns = `a.function_id, f.name, a.name, a.version, coalesce(a.additional_version, 0),
	a.additional_weight, a.previous, a.description, a.created_at, a.updated_at`

func scanAlias(row pgx.Row) (ferry.Alias, error) {
	var a ferry.Alias
	err := row.Scan(&a.FunctionID, &a.Function, &a.Name, &a.Version, &a.AdditionalVersion, &a.AdditionalWeight,
		&a.Previous, &a.Description, &a.CreatedAt, &a.UpdatedAt)
	a.CreatedAt, a.UpdatedAt = a.CreatedAt.UTC(), a.UpdatedAt.UTC()
	return a, err
}

func aliasName(function, alias string) string {
	return fmt.Sprintf("alias %q of function %q", alias, function)
}

// nullVersion maps version 0 (none) to SQL NULL.
func nullVersion(v int) any {
	if v == 0 {
		return nil
	}
	return v
}

// SetAlias points the alias name of function at t, creating the alias when it
// is new (created=true). A change keeps the former target as Previous, for
// RollbackAlias. It answers ENOTFOUND when the function or one of t's versions
// does not exist.
func (db *DB) SetAlias(ctx context.Context, function, name string, t ferry.AliasTarget, description string) (a ferry.Alias, created bool, err error) {
	if err := t.Validate(); err != nil {
		return a, false, err
	}
	what := aliasName(function, name)
	err = db.tx(ctx, func(tx pgx.Tx) error {
		// The function's row lock orders this against a delete of the function.
		var fn ferry.Function
		err := tx.QueryRow(ctx, `SELECT id, latest_version FROM functions WHERE name = $1 FOR SHARE`, function).
			Scan(&fn.ID, &fn.LatestVersion)
		if err == pgx.ErrNoRows {
			return notFound("%s not found", functionName(function))
		}
		if err != nil {
			return err
		}
		// Versions are numbered 1..latest without gaps and never deleted alone.
		for _, v := range []int{t.Version, t.AdditionalVersion} {
			if v > fn.LatestVersion {
				return notFound("function %q version %d not found (its latest is %d)", function, v, fn.LatestVersion)
			}
		}
		err = tx.QueryRow(ctx, `
			INSERT INTO function_aliases AS a (function_id, name, version, additional_version, additional_weight, description)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (function_id, name) DO UPDATE SET
				version = EXCLUDED.version, additional_version = EXCLUDED.additional_version,
				additional_weight = EXCLUDED.additional_weight, description = EXCLUDED.description,
				updated_at = now(),
				previous = CASE WHEN (a.version, coalesce(a.additional_version, 0), a.additional_weight) =
						(EXCLUDED.version, coalesce(EXCLUDED.additional_version, 0), EXCLUDED.additional_weight)
					THEN a.previous
					ELSE jsonb_build_object('version', a.version,
						'additional_version', coalesce(a.additional_version, 0),
						'additional_weight', a.additional_weight) END
			RETURNING (xmax = 0)`,
			fn.ID, name, t.Version, nullVersion(t.AdditionalVersion), t.AdditionalWeight, description).Scan(&created)
		if err != nil {
			return err
		}
		a, err = scanAlias(tx.QueryRow(ctx, `SELECT `+aliasColumns+`
			FROM function_aliases a JOIN functions f ON f.id = a.function_id
			WHERE a.function_id = $1 AND a.name = $2`, fn.ID, name))
		return err
	})
	if err != nil {
		return ferry.Alias{}, false, db.mapErr(err, what)
	}
	return a, created, nil
}

// GetAlias returns the alias name of function. ENOTFOUND names what is
// missing: the function, or only the alias.
func (db *DB) GetAlias(ctx context.Context, function, name string) (ferry.Alias, error) {
	a, err := scanAlias(db.pool.QueryRow(ctx, `SELECT `+aliasColumns+`
		FROM function_aliases a JOIN functions f ON f.id = a.function_id
		WHERE f.name = $1 AND a.name = $2`, function, name))
	if err == nil {
		return a, nil
	}
	return ferry.Alias{}, db.aliasErr(ctx, err, function, name)
}

// aliasErr maps err, telling a missing function from a missing alias.
func (db *DB) aliasErr(ctx context.Context, err error, function, name string) error {
	err = db.mapErr(err, aliasName(function, name))
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		if _, ferr := db.GetFunction(ctx, function); ferr != nil {
			return ferr
		}
	}
	return err
}

// ListAliases returns every alias of function, by name (a function has few).
func (db *DB) ListAliases(ctx context.Context, function string) ([]ferry.Alias, error) {
	f, err := db.GetFunction(ctx, function)
	if err != nil {
		return nil, err
	}
	rows, err := db.pool.Query(ctx, `SELECT `+aliasColumns+`
		FROM function_aliases a JOIN functions f ON f.id = a.function_id
		WHERE a.function_id = $1 ORDER BY a.name`, f.ID)
	if err != nil {
		return nil, db.mapErr(err, "aliases of "+functionName(function))
	}
	as, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ferry.Alias, error) { return scanAlias(r) })
	if err != nil {
		return nil, db.mapErr(err, "aliases of "+functionName(function))
	}
	return as, nil
}

// DeleteAlias deletes the alias name of function.
func (db *DB) DeleteAlias(ctx context.Context, function, name string) error {
	tag, err := db.pool.Exec(ctx, `DELETE FROM function_aliases a USING functions f
		WHERE f.id = a.function_id AND f.name = $1 AND a.name = $2`, function, name)
	if err == nil && tag.RowsAffected() == 0 {
		err = pgx.ErrNoRows
	}
	if err != nil {
		return db.aliasErr(ctx, err, function, name)
	}
	return nil
}

// RollbackAlias points the alias back at its previous target; the target it
// had becomes the previous one (a second rollback undoes the first). It
// answers ECONFLICT when the alias has never changed.
func (db *DB) RollbackAlias(ctx context.Context, function, name string) (ferry.Alias, error) {
	var a ferry.Alias
	err := db.tx(ctx, func(tx pgx.Tx) error {
		cur, err := scanAlias(tx.QueryRow(ctx, `SELECT `+aliasColumns+`
			FROM function_aliases a JOIN functions f ON f.id = a.function_id
			WHERE f.name = $1 AND a.name = $2 FOR UPDATE OF a`, function, name))
		if err != nil {
			return err
		}
		if cur.Previous == nil {
			return ferry.Errorf(ferry.ECONFLICT, "%s has no previous target to roll back to: it was never changed", aliasName(function, name))
		}
		p := *cur.Previous
		a, err = scanAlias(tx.QueryRow(ctx, `
			WITH u AS (
				UPDATE function_aliases SET version = $3, additional_version = $4, additional_weight = $5,
					previous = jsonb_build_object('version', version,
						'additional_version', coalesce(additional_version, 0),
						'additional_weight', additional_weight),
					updated_at = now()
				WHERE function_id = $1 AND name = $2
				RETURNING *)
			SELECT `+aliasColumns+` FROM u a JOIN functions f ON f.id = a.function_id`,
			cur.FunctionID, name, p.Version, nullVersion(p.AdditionalVersion), p.AdditionalWeight))
		return err
	})
	if err != nil {
		return ferry.Alias{}, db.aliasErr(ctx, err, function, name)
	}
	return a, nil
}

// ResolveAlias returns the version of function that the alias name gives an
// invocation drawing u (ferry.AliasDraw), with the alias.
func (db *DB) ResolveAlias(ctx context.Context, function, name string, u float64) (ferry.Version, ferry.Alias, error) {
	a, err := db.GetAlias(ctx, function, name)
	if err != nil {
		return ferry.Version{}, a, err
	}
	v, err := db.GetVersion(ctx, function, a.Pick(u))
	if err == nil && v.FunctionID != a.FunctionID {
		// The function was deleted and created again between the two reads.
		err = notFound("%s not found", aliasName(function, name))
	}
	return v, a, err
}
