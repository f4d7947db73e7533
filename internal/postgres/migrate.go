package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Migration is one embedded schema version.
type Migration struct {
	Version   int
	Name      string
	Up, Down  string
	AppliedAt *time.Time
}

func loadMigrations() ([]Migration, error) {
	files, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	byVersion := map[int]*Migration{}
	for _, f := range files {
		base := strings.TrimPrefix(f, "migrations/")
		num, rest, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.(up|down).sql", base)
		}
		b, err := migrationFS.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", base, err)
		}
		m := byVersion[v]
		if m == nil {
			m = &Migration{Version: v}
			byVersion[v] = m
		}
		switch {
		case strings.HasSuffix(rest, ".up.sql"):
			m.Name, m.Up = strings.TrimSuffix(rest, ".up.sql"), string(b)
		case strings.HasSuffix(rest, ".down.sql"):
			m.Down = string(b)
		default:
			return nil, fmt.Errorf("migration %s: want .up.sql or .down.sql", base)
		}
	}
	var out []Migration
	for _, m := range byVersion {
		if m.Up == "" || m.Down == "" {
			return nil, fmt.Errorf("migration %04d: needs both up and down files", m.Version)
		}
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// withMigrationLock runs fn on one connection holding a session advisory lock, so two
// replicas starting at once migrate one after the other.
func withMigrationLock(ctx context.Context, pool *pgxpool.Pool, fn func(conn *pgx.Conn) error) error {
	c, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection: %w", err)
	}
	defer c.Release()
	conn := c.Conn()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtextextended('ftgate.migrate:' || current_schema(), 0))`); err != nil {
		return fmt.Errorf("take migration lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtextextended('ftgate.migrate:' || current_schema(), 0))`) //nolint:errcheck
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	return fn(conn)
}

func applied(ctx context.Context, conn *pgx.Conn) (map[int]time.Time, error) {
	rows, err := conn.Query(ctx, `SELECT version, applied_at FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	out := map[int]time.Time{}
	var v int
	var at time.Time
	_, err = pgx.ForEachRow(rows, []any{&v, &at}, func() error { out[v] = at; return nil })
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	return out, nil
}

// MigrateUp applies every pending migration, each in its own transaction, and returns
// the versions applied.
func MigrateUp(ctx context.Context, pool *pgxpool.Pool) ([]int, error) {
	ms, err := loadMigrations()
	if err != nil {
		return nil, err
	}
	var done []int
	err = withMigrationLock(ctx, pool, func(conn *pgx.Conn) error {
		have, err := applied(ctx, conn)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if _, ok := have[m.Version]; ok {
				continue
			}
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, m.Up); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name)
				return err
			})
			if err != nil {
				return fmt.Errorf("apply migration %04d_%s: %w", m.Version, m.Name, err)
			}
			done = append(done, m.Version)
		}
		return nil
	})
	return done, err
}

// MigrateDown reverts the newest applied migration and returns its version (0 if none).
func MigrateDown(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	ms, err := loadMigrations()
	if err != nil {
		return 0, err
	}
	var undone int
	err = withMigrationLock(ctx, pool, func(conn *pgx.Conn) error {
		have, err := applied(ctx, conn)
		if err != nil {
			return err
		}
		for i := len(ms) - 1; i >= 0; i-- {
			m := ms[i]
			if _, ok := have[m.Version]; !ok {
				continue
			}
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, m.Down); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `DELETE FROM schema_migrations WHERE version = $1`, m.Version)
				return err
			})
			if err != nil {
				return fmt.Errorf("revert migration %04d_%s: %w", m.Version, m.Name, err)
			}
			undone = m.Version
			return nil
		}
		return nil
	})
	return undone, err
}

// MigrationStatus lists every embedded migration with the time it was applied (nil:
// pending).
func MigrationStatus(ctx context.Context, pool *pgxpool.Pool) ([]Migration, error) {
	ms, err := loadMigrations()
	if err != nil {
		return nil, err
	}
	err = withMigrationLock(ctx, pool, func(conn *pgx.Conn) error {
		have, err := applied(ctx, conn)
		if err != nil {
			return err
		}
		for i := range ms {
			if at, ok := have[ms[i].Version]; ok {
				ms[i].AppliedAt = &at
			}
		}
		return nil
	})
	return ms, err
}
