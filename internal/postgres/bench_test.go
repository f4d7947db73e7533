package postgres_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/postgres"
	"github.com/ftgate/ftgate/internal/postgres/pgtest"
)

// BenchmarkList measures GET /api/jobs's query over 100,000 seeded jobs (10 owners,
// 3 models, all states): first page, a deep keyset page, and filtered lists.
func BenchmarkList(b *testing.B) {
	pool := pgtest.Schema(b)
	ctx := context.Background()
	spec, _ := json.Marshal(job.Spec{Method: "sft", Model: "builtin:tiny"})
	start := time.Now()
	_, err := pool.Exec(ctx, `INSERT INTO jobs (id, owner_subject, unix_user, cluster, model, spec, spec_hash, state, created_at)
		SELECT gen_random_uuid(), 'user' || (i % 10), 'user' || (i % 10), 'dev',
			(ARRAY['builtin:tiny', '/models/llama-3-8b', '/models/qwen2-0.5b'])[1 + i % 3], $1, 'h',
			(ARRAY['queued','running','succeeded','failed','cancelled','paused'])[1 + i % 6],
			now() - make_interval(secs => i)
		FROM generate_series(1, 100000) AS i`, spec)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE jobs`); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded 100000 jobs in %s", time.Since(start).Round(time.Millisecond))
	s := postgres.New(pool)
	_, cursor, err := s.List(ctx, postgres.Filter{Owner: "user3", Limit: 5000})
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name string
		f    postgres.Filter
	}{
		{"owner first page", postgres.Filter{Owner: "user3", Limit: 50}},
		{"owner deep page", postgres.Filter{Owner: "user3", Limit: 50, Cursor: cursor}},
		{"admin all", postgres.Filter{Limit: 50}},
		{"owner running", postgres.Filter{Owner: "user3", States: []job.State{job.Running}, Limit: 50}},
		{"model substring", postgres.Filter{Model: "qwen", Limit: 50}},
		{"date range", postgres.Filter{From: time.Now().Add(-10 * time.Hour), To: time.Now().Add(-9 * time.Hour), Limit: 50}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, _, err := s.List(ctx, c.f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCreate measures the insert path of POST /api/training/execute (quota check
// under the owner's lock, insert, first event, NOTIFY).
func BenchmarkCreate(b *testing.B) {
	s := postgres.New(pgtest.Schema(b))
	ctx := context.Background()
	j := newJob("alice", "builtin:tiny")
	for i := 0; i < b.N; i++ {
		j.ID = postgres.NewID()
		if _, _, err := s.Create(ctx, j, 0); err != nil {
			b.Fatal(err)
		}
	}
}
