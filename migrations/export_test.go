package migrations

import (
	"context"
	"database/sql"

	"github.com/pressly/goose/v3"
)

// ApplyUpTo applies the migrations up to version, for tests of an upgrade.
func ApplyUpTo(ctx context.Context, db *sql.DB, version int64) error {
	p, err := goose.NewProvider(goose.DialectPostgres, db, files, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return err
	}
	_, err = p.UpTo(ctx, version)
	return err
}
