package postgres

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ferry-faas/ferry"
)

const keyColumns = `id, name, prefix, role, created_at, last_used_at, revoked_at`

// lastUsedPrecision limits last_used_at writes to one per key and interval, so
// that authenticating a request is a read in the common case.
const lastUsedPrecision = time.Minute

func scanKey(row pgx.Row) (ferry.APIKey, error) {
	var k ferry.APIKey
	var role string
	err := row.Scan(&k.ID, &k.Name, &k.Prefix, &role, &k.CreatedAt, &k.LastUsedAt, &k.RevokedAt)
	k.Role = ferry.Role(role)
	k.CreatedAt = k.CreatedAt.UTC()
	k.LastUsedAt = utcPtr(k.LastUsedAt)
	k.RevokedAt = utcPtr(k.RevokedAt)
	return k, err
}

func keyName(id uuid.UUID) string { return "API key " + id.String() }

func validRole(r ferry.Role) bool {
	return r == ferry.RoleAdmin || r == ferry.RoleDeveloper || r == ferry.RoleInvoker
}

// CreateKey stores a key under the hash of its secret. It sets ID and CreatedAt
// when they are zero.
func (db *DB) CreateKey(ctx context.Context, k ferry.APIKey, hash []byte) (ferry.APIKey, error) {
	switch {
	case len(hash) == 0:
		return ferry.APIKey{}, ferry.Errorf(ferry.EINVALID, "API key hash is required")
	case !validRole(k.Role):
		return ferry.APIKey{}, ferry.Errorf(ferry.EINVALID, "unknown role %q", k.Role)
	}
	if k.ID == uuid.Nil {
		k.ID = uuid.New()
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = time.Now()
	}
	created, err := scanKey(db.pool.QueryRow(ctx, `
		INSERT INTO api_keys (id, name, prefix, hash, role, created_at, last_used_at, revoked_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		RETURNING `+keyColumns,
		k.ID, k.Name, k.Prefix, hash, string(k.Role), k.CreatedAt, k.LastUsedAt, k.RevokedAt))
	if err != nil {
		return ferry.APIKey{}, db.mapErr(err, "API key "+quote(k.Name))
	}
	return created, nil
}

func quote(s string) string { return `"` + s + `"` }

// KeyByHash finds an active key by the hash of its secret; a missing or revoked
// key is ENOTFOUND. It also records the key's use, at most once a minute.
func (db *DB) KeyByHash(ctx context.Context, hash []byte) (ferry.APIKey, error) {
	k, err := scanKey(db.pool.QueryRow(ctx,
		`SELECT `+keyColumns+` FROM api_keys WHERE hash = $1 AND revoked_at IS NULL`, hash))
	if err != nil {
		return ferry.APIKey{}, db.mapErr(err, "API key")
	}
	now := time.Now().UTC().Truncate(time.Microsecond) // the column's precision
	if k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) >= lastUsedPrecision {
		if _, err := db.pool.Exec(ctx, `UPDATE api_keys SET last_used_at = $2 WHERE id = $1`, k.ID, now); err != nil {
			return ferry.APIKey{}, db.mapErr(err, keyName(k.ID))
		}
		k.LastUsedAt = &now
	}
	return k, nil
}

// KeyByID returns a key, revoked or not.
func (db *DB) KeyByID(ctx context.Context, id uuid.UUID) (ferry.APIKey, error) {
	k, err := scanKey(db.pool.QueryRow(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE id = $1`, id))
	if err != nil {
		return ferry.APIKey{}, db.mapErr(err, keyName(id))
	}
	return k, nil
}

// ListKeys lists every key, revoked ones included, oldest first.
func (db *DB) ListKeys(ctx context.Context) ([]ferry.APIKey, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+keyColumns+` FROM api_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, db.mapErr(err, "API keys")
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ferry.APIKey, error) { return scanKey(r) })
	if err != nil {
		return nil, db.mapErr(err, "API keys")
	}
	return keys, nil
}

// RevokeKey revokes a key and returns it; revoking a revoked key is a no-op.
// Its permissions stay on record until the key row is deleted. The last active
// admin key is not revoked (ECONFLICT): the transaction locks every active
// admin key first, so two admins revoking each other at once cannot both
// succeed (the second one waits, then counts again).
func (db *DB) RevokeKey(ctx context.Context, id uuid.UUID) (ferry.APIKey, error) {
	var k ferry.APIKey
	err := db.tx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL
			ORDER BY id FOR UPDATE`)
		if err != nil {
			return err
		}
		admins, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil {
			return err
		}
		if len(admins) == 1 && admins[0] == id {
			k, err = scanKey(tx.QueryRow(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE id = $1`, id))
			if err != nil {
				return err
			}
			return ferry.Errorf(ferry.ECONFLICT, "API key %s is the last active admin key; create another admin key first", k.Prefix)
		}
		k, err = scanKey(tx.QueryRow(ctx, `UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
			WHERE id = $1 RETURNING `+keyColumns, id))
		return err
	})
	if err != nil {
		return ferry.APIKey{}, db.mapErr(err, keyName(id))
	}
	return k, nil
}

// CountActiveKeys counts the keys that are not revoked (zero on a fresh install,
// when the first admin key may be bootstrapped).
func (db *DB) CountActiveKeys(ctx context.Context) (int, error) {
	var n int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM api_keys WHERE revoked_at IS NULL`).Scan(&n); err != nil {
		return 0, db.mapErr(err, "API keys")
	}
	return n, nil
}

func validPermission(p ferry.Permission) bool {
	switch p {
	case ferry.PermRead, ferry.PermWrite, ferry.PermExecute, ferry.PermAdmin:
		return true
	}
	return false
}

// Grant gives a key a permission on a function ("*" for every function).
// Granting twice is a no-op.
func (db *DB) Grant(ctx context.Context, keyID uuid.UUID, function string, p ferry.Permission) error {
	switch {
	case !validPermission(p):
		return ferry.Errorf(ferry.EINVALID, "unknown permission %q", p)
	case function == "":
		return ferry.Errorf(ferry.EINVALID, "function name is required")
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO function_permissions (key_id, function, permission)
		VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, keyID, function, string(p))
	if ferry.ErrorCode(db.mapErr(err, "")) == ferry.ENOTFOUND {
		return notFound("%s not found", keyName(keyID)) // the foreign key to api_keys
	}
	return db.mapErr(err, "permission")
}

// RevokePermission removes a grant; removing a missing grant is a no-op.
func (db *DB) RevokePermission(ctx context.Context, keyID uuid.UUID, function string, p ferry.Permission) error {
	_, err := db.pool.Exec(ctx, `DELETE FROM function_permissions
		WHERE key_id = $1 AND function = $2 AND permission = $3`, keyID, function, string(p))
	return db.mapErr(err, "permission")
}

// Permissions lists what a key may do on a function: grants on the function
// itself and grants on "*".
func (db *DB) Permissions(ctx context.Context, keyID uuid.UUID, function string) ([]ferry.Permission, error) {
	rows, err := db.pool.Query(ctx, `SELECT DISTINCT permission FROM function_permissions
		WHERE key_id = $1 AND function IN ($2, '*') ORDER BY permission`, keyID, function)
	if err != nil {
		return nil, db.mapErr(err, "permissions")
	}
	perms, err := pgx.CollectRows(rows, pgx.RowTo[ferry.Permission])
	if err != nil {
		return nil, db.mapErr(err, "permissions")
	}
	return perms, nil
}
