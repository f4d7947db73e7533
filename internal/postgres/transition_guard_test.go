package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ftgate/ftgate/internal/job"
)

// queryTx is a pgx.Tx that records its queries and fails them; every other method is
// the nil interface's (a call panics, so a test notices one).
type queryTx struct {
	pgx.Tx
	queries int
}

type errRow struct{}

func (errRow) Scan(...any) error { return pgx.ErrTxClosed }

func (q *queryTx) QueryRow(context.Context, string, ...any) pgx.Row {
	q.queries++
	return errRow{}
}

// TestTransitionChecksTableBeforeSQL: a change the transition table refuses never
// reaches the database (the UPDATE's WHERE state = $2, the other half of the guard, is
// checked against Postgres by TestIntegrationStoreTransitionsAndEvents).
func TestTransitionChecksTableBeforeSQL(t *testing.T) {
	for _, c := range []job.Change{
		{From: job.Queued, To: job.Pausing},
		{From: job.Succeeded, To: job.Queued},
		{From: job.Cancelled, To: job.Running},
		{From: job.Paused, To: job.Running},
	} {
		tx := &queryTx{}
		_, err := transition(context.Background(), tx, "j", c, time.Now())
		if job.ErrorCode(err) != job.EConflict || tx.queries != 0 {
			t.Errorf("%s -> %s: %v after %d queries; want EConflict before any query", c.From, c.To, err, tx.queries)
		}
	}
	tx := &queryTx{}
	if _, err := transition(context.Background(), tx, "j", job.Change{From: job.Queued, To: job.Running}, time.Now()); err == nil || tx.queries == 0 {
		t.Errorf("allowed change: %v after %d queries; want it sent to the database", err, tx.queries)
	}
}
