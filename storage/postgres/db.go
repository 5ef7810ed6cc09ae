// Package postgres stores Ferry's functions, versions, invocations, API keys and
// permissions in PostgreSQL through a pgx v5 pool.
//
// Every method returns *ferry.Error (possibly wrapped together with the driver's
// cause, reachable with errors.As/errors.Is): ENOTFOUND for a missing row,
// ECONFLICT for a unique violation, EINVALID for bad input, EUNAVAILABLE when the
// database cannot be reached.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/migrations"
)

// DB is Ferry's PostgreSQL store. It is safe for concurrent use.
type DB struct {
	pool *pgxpool.Pool
	addr string // host:port, for error messages
}

// Defaults applied when the URL does not set them.
const (
	defaultMaxConns       = 16
	defaultConnectTimeout = 5 * time.Second
)

// Open connects to the database at url and pings it.
func Open(ctx context.Context, url string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgconn's parse errors redact the password.
		return nil, ferry.Wrap(err, ferry.EINVALID, "FERRY_DATABASE_URL is not a valid PostgreSQL URL: %v", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		// pgxpool's default (max(4, CPUs)) is too small for an API and a worker sharing one pool.
		cfg.MaxConns = defaultMaxConns
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	if _, set := cfg.ConnConfig.RuntimeParams["synchronous_commit"]; !set {
		// Invocation records are written three times per invocation on the hot
		// path; waiting for the WAL flush each time cost several ms. Without it a
		// crash of the PostgreSQL server (not of Ferry) can lose the last ~200 ms
		// of status updates, never corrupt them; deploys and keys still wait for
		// the flush (durable). See docs/ARCHITECTURE.md.
		cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	}
	addr := net.JoinHostPort(cfg.ConnConfig.Host, fmt.Sprint(cfg.ConnConfig.Port))
	if strings.HasPrefix(cfg.ConnConfig.Host, "/") {
		addr = cfg.ConnConfig.Host // unix socket directory
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, ferry.Wrap(err, ferry.EINVALID, "FERRY_DATABASE_URL: %v", err)
	}
	db := &DB{pool: pool, addr: addr}
	if err := db.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return db, nil
}

// Close closes every connection of the pool.
func (db *DB) Close() { db.pool.Close() }

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return ferry.Wrap(err, ferry.EUNAVAILABLE, "PostgreSQL at %s is unreachable: %s", db.addr, causeText(err))
	}
	return nil
}

// Migrate applies the embedded schema migrations.
func (db *DB) Migrate(ctx context.Context) error {
	sqlDB := stdlib.OpenDBFromPool(db.pool)
	defer sqlDB.Close() // does not close the pool
	if err := migrations.Apply(ctx, sqlDB); err != nil {
		if isUnavailable(err) {
			return db.unavailable(err)
		}
		return ferry.Wrap(err, ferry.EINTERNAL, "applying database migrations failed")
	}
	return nil
}

func notFound(format string, args ...any) error {
	return ferry.Errorf(ferry.ENOTFOUND, format, args...)
}

func (db *DB) unavailable(err error) error {
	return ferry.Wrap(err, ferry.EUNAVAILABLE, "PostgreSQL at %s is unavailable: %s", db.addr, causeText(err))
}

// causeText is a short, user-safe description of a connection failure.
func causeText(err error) string {
	switch {
	case errors.Is(err, context.Canceled):
		return "request cancelled"
	case errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err):
		return "timed out"
	}
	var ne *net.OpError
	if errors.As(err, &ne) && ne.Err != nil {
		return ne.Err.Error()
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Message
	}
	return "connection failed"
}

// isUnavailable reports whether err means the database could not be reached (as
// opposed to the database rejecting the statement).
func isUnavailable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			strings.HasPrefix(pe.Code, "53"),       // insufficient resources (too many connections, ...)
			pe.Code == "57P01", pe.Code == "57P02", // admin/crash shutdown
			pe.Code == "57P03", pe.Code == "57014": // cannot connect now, query cancelled
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		pgconn.Timeout(err) || pgconn.SafeToRetry(err) ||
		strings.Contains(err.Error(), "closed pool")
}

// mapErr turns a driver error into a *ferry.Error. what names the thing the
// statement touched, for messages ("function \"x\"").
func (db *DB) mapErr(err error, what string) error {
	if err == nil {
		return nil
	}
	var fe *ferry.Error
	if errors.As(err, &fe) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return notFound("%s not found", what)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			return ferry.Wrap(err, ferry.ECONFLICT, "%s already exists", what)
		case "23503": // foreign_key_violation
			return ferry.Wrap(err, ferry.ENOTFOUND, "%s refers to a missing row", what)
		case "22P05", "22021": // untranslatable character, character not in repertoire
			return ferry.Wrap(err, ferry.EINVALID, "invalid %s: text must be UTF-8 without NUL characters", what)
		case "23514", "23502", "22P02", "22001", "22003", "22023":
			// check, not null, invalid text/json, bad unicode, bad encoding, too long, out of range
			return ferry.Wrap(err, ferry.EINVALID, "invalid %s: %s", what, pe.Message)
		}
	}
	if isUnavailable(err) {
		return db.unavailable(err)
	}
	return ferry.Wrap(err, ferry.EINTERNAL, "database error on %s", what)
}

// durableCommit makes a transaction wait for its WAL flush although the
// session default (see Open) does not: for deploys, deletes and keys.
const durableCommit = "SET LOCAL synchronous_commit = on"

// tx runs fn in a durable transaction, committing when fn returns nil.
func (db *DB) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, durableCommit); err != nil {
			return err
		}
		return fn(tx)
	})
}
