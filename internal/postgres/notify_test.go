package postgres_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/postgres"
	"github.com/ftgate/ftgate/internal/postgres/pgtest"
	"github.com/ftgate/ftgate/internal/quota"
)

func TestIntegrationNotifyOnCommit(t *testing.T) {
	pool := pgtest.Schema(t)
	s := postgres.New(pool)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN "+postgres.Channel); err != nil {
		t.Fatal(err)
	}
	j, _, err := s.Create(ctx, newJob("alice", "m"), quota.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Transition(ctx, j.ID, job.Change{From: job.Submitting, To: job.Queued, SlurmID: "5"}); err != nil {
		t.Fatal(err)
	}
	// A transition rolled back by a conflict publishes nothing.
	if _, err := s.Transition(ctx, j.ID, job.Change{From: job.Submitting, To: job.Queued}); job.ErrorCode(err) != job.EConflict {
		t.Fatal(err)
	}
	var got []map[string]any
	for len(got) < 2 {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			t.Fatalf("after %d notifications: %v", len(got), err)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(n.Payload), &m); err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	if got[0]["state"] != "submitting" || got[1]["state"] != "queued" || got[1]["event_id"].(float64) != 2 ||
		got[1]["job_id"] != j.ID || got[1]["owner"] != "alice" {
		t.Fatalf("notifications: %v", got)
	}
	short, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel2()
	if n, err := conn.Conn().WaitForNotification(short); err == nil {
		t.Fatalf("unexpected notification %s", n.Payload)
	}
}

func TestIntegrationLeaderTakeoverWhenConnectionDies(t *testing.T) {
	pool := pgtest.Schema(t)
	ctx := context.Background()
	l1, err := postgres.TryLead(ctx, pool, "reconcile")
	if err != nil || l1 == nil {
		t.Fatalf("TryLead: %v %v", l1, err)
	}
	var pid int
	var held bool
	if err := pool.QueryRow(ctx, `SELECT pid, granted FROM pg_locks WHERE locktype = 'advisory' AND pid <> pg_backend_pid()
		AND objid = (hashtextextended('ftgate.leader:reconcile:' || current_schema(), 0) & 4294967295)::oid LIMIT 1`).Scan(&pid, &held); err != nil {
		t.Fatalf("find the leader's backend: %v", err)
	}
	// The leader's session dies (crash, network): Postgres drops its lock.
	if _, err := pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	if err := l1.Check(ctx); err == nil {
		t.Fatal("Check still succeeds on a dead leader connection")
	}
	var l2 *postgres.Leader
	for i := 0; i < 50 && l2 == nil; i++ {
		if l2, err = postgres.TryLead(ctx, pool, "reconcile"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if l2 == nil {
		t.Fatal("a second replica could not take over")
	}
	l2.Release()
	l1.Release()
}
