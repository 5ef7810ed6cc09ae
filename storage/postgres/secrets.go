package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ferry-faas/ferry"
)

// SealedSecret is a secret's value as stored: encrypted by package secrets.
type SealedSecret struct {
	Name   string
	KeyID  string
	Sealed []byte
}

const secretColumns = `name, owner_key_id, key_id, created_at, updated_at`

func scanSecret(row pgx.Row) (ferry.Secret, error) {
	var s ferry.Secret
	err := row.Scan(&s.Name, &s.OwnerKeyID, &s.KeyID, &s.CreatedAt, &s.UpdatedAt)
	s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
	return s, err
}

func secretName(name string) string { return fmt.Sprintf("secret %q", name) }

// PutSecret stores a sealed value under its name, creating the secret
// (created=true, owned by owner) or replacing its value (the owner stays).
func (db *DB) PutSecret(ctx context.Context, s SealedSecret, owner uuid.UUID) (ferry.Secret, bool, error) {
	var created bool
	var out ferry.Secret
	err := db.tx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO secrets AS s (name, key_id, sealed, owner_key_id) VALUES ($1, $2, $3, $4)
			ON CONFLICT (name) DO UPDATE SET key_id = EXCLUDED.key_id, sealed = EXCLUDED.sealed, updated_at = now()
			RETURNING (xmax = 0)`, s.Name, s.KeyID, s.Sealed, nullUUID(owner)).Scan(&created)
		if err != nil {
			return err
		}
		out, err = scanSecret(tx.QueryRow(ctx, `SELECT `+secretColumns+` FROM secrets WHERE name = $1`, s.Name))
		return err
	})
	if err != nil {
		return ferry.Secret{}, false, db.mapErr(err, secretName(s.Name))
	}
	return out, created, nil
}

// GetSecret returns a secret's metadata.
func (db *DB) GetSecret(ctx context.Context, name string) (ferry.Secret, error) {
	s, err := scanSecret(db.pool.QueryRow(ctx, `SELECT `+secretColumns+` FROM secrets WHERE name = $1`, name))
	if err != nil {
		return ferry.Secret{}, db.mapErr(err, secretName(name))
	}
	return s, nil
}

// ListSecrets returns every secret's metadata, by name.
func (db *DB) ListSecrets(ctx context.Context) ([]ferry.Secret, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+secretColumns+` FROM secrets ORDER BY name`)
	if err != nil {
		return nil, db.mapErr(err, "secrets")
	}
	ss, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ferry.Secret, error) { return scanSecret(r) })
	if err != nil {
		return nil, db.mapErr(err, "secrets")
	}
	return ss, nil
}

// DeleteSecret deletes a secret. It answers ECONFLICT while the latest version
// of a function reads it (deploy a version without it first).
func (db *DB) DeleteSecret(ctx context.Context, name string) error {
	err := db.tx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT v.function FROM function_versions v
			JOIN functions f ON f.id = v.function_id AND f.latest_version = v.version
			WHERE $1 = ANY (v.secrets) ORDER BY v.function LIMIT 10`, name)
		if err != nil {
			return err
		}
		users, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return ferry.Errorf(ferry.ECONFLICT, "secret %q is read by the latest version of %s: deploy them without it first",
				name, strings.Join(users, ", "))
		}
		tag, err := tx.Exec(ctx, `DELETE FROM secrets WHERE name = $1`, name)
		if err == nil && tag.RowsAffected() == 0 {
			err = pgx.ErrNoRows
		}
		return err
	})
	return db.mapErr(err, secretName(name))
}

// SealedSecrets returns the sealed values of the named secrets that exist.
func (db *DB) SealedSecrets(ctx context.Context, names []string) ([]SealedSecret, error) {
	rows, err := db.pool.Query(ctx, `SELECT name, key_id, sealed FROM secrets WHERE name = ANY ($1) ORDER BY name`, names)
	if err != nil {
		return nil, db.mapErr(err, "secrets")
	}
	ss, err := pgx.CollectRows(rows, pgx.RowToStructByPos[SealedSecret])
	if err != nil {
		return nil, db.mapErr(err, "secrets")
	}
	return ss, nil
}

// SecretKeyIDs counts the stored secrets by the key that sealed them.
func (db *DB) SecretKeyIDs(ctx context.Context) (map[string]int, error) {
	rows, err := db.pool.Query(ctx, `SELECT key_id, count(*)::int FROM secrets GROUP BY key_id`)
	if err != nil {
		return nil, db.mapErr(err, "secrets")
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, db.mapErr(err, "secrets")
		}
		out[id] = n
	}
	return out, db.mapErr(rows.Err(), "secrets")
}

// ResealSecret replaces a value sealed with key from by s (sealed with another
// key), unless the secret changed meanwhile; it reports whether it did.
func (db *DB) ResealSecret(ctx context.Context, from string, s SealedSecret) (bool, error) {
	tag, err := db.pool.Exec(ctx, `UPDATE secrets SET key_id = $2, sealed = $3 WHERE name = $1 AND key_id = $4`,
		s.Name, s.KeyID, s.Sealed, from)
	if err != nil {
		return false, db.mapErr(err, secretName(s.Name))
	}
	return tag.RowsAffected() == 1, nil
}
