// Package pgtest gives integration tests an isolated, migrated schema in the local
// stack's real Postgres.
package pgtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ftgate/ftgate/internal/postgres"
	"github.com/ftgate/ftgate/internal/stacktest"
)

// Schema creates a fresh schema on the stack's Postgres, returns a pool whose
// search_path is that schema, migrated up, and drops the schema when t ends.
func Schema(t testing.TB) *pgxpool.Pool {
	t.Helper()
	st := stacktest.Require(t)
	pool, _ := Open(t, st.PGURL, true)
	return pool
}

// Open creates a fresh schema at url and returns a pool on it (migrated when migrate)
// and the schema's name.
func Open(t testing.TB, url string, migrate bool) (*pgxpool.Pool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	schema := fmt.Sprintf("test_%s", postgres.NewID()[:8])
	admin, err := postgres.Open(ctx, url, 2)
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	if _, err := admin.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
		admin.Close()
		t.Fatalf("create schema: %v", err)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema + ",public"
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.Exec(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Logf("drop schema %s: %v", schema, err)
		}
		admin.Close()
	})
	if migrate {
		if _, err := postgres.MigrateUp(ctx, pool); err != nil {
			t.Fatalf("migrate: %v", err)
		}
	}
	return pool, schema
}
