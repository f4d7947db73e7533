package postgres

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Leader holds a session advisory lock on a dedicated connection: one leader per
// database (and schema). Postgres drops the lock when the connection dies, so another
// replica's TryLead then succeeds.
type Leader struct {
	conn *pgxpool.Conn
	name string
}

// TryLead tries to take the lock called name. It returns nil, nil when another
// session holds it.
func TryLead(ctx context.Context, pool *pgxpool.Pool, name string) (*Leader, error) {
	c, err := pool.Acquire(ctx)
	if err != nil {
		return nil, translate(err, "leader lock")
	}
	var ok bool
	if err := c.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended('ftgate.leader:' || $1 || ':' || current_schema(), 0))`, name).Scan(&ok); err != nil {
		c.Release()
		return nil, translate(err, "leader lock")
	}
	if !ok {
		c.Release()
		return nil, nil
	}
	return &Leader{conn: c, name: name}, nil
}

// Check verifies that the lock's connection is still alive (and so the lock held).
func (l *Leader) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := l.conn.Ping(ctx); err != nil {
		return fmt.Errorf("leader connection lost: %w", err)
	}
	return nil
}

// Release gives up the lock. The connection is closed rather than returned to the
// pool, which drops the lock even if the unlock call fails.
func (l *Leader) Release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = l.conn.Exec(ctx, `SELECT pg_advisory_unlock_all()`)
	_ = l.conn.Conn().Close(ctx)
	l.conn.Release()
}

// NewID returns a random (version 4) UUID, the shape of job ids.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
