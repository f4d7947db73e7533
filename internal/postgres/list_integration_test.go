package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/postgres"
	"github.com/ftgate/ftgate/internal/postgres/pgtest"
	"github.com/ftgate/ftgate/internal/quota"
)

// TestIntegrationListSort pages through every sort in both directions over 400 jobs
// with ties in every key and missing losses, eval losses and starts: the pages
// joined equal the full list as one ORDER BY ... NULLS LAST sorts it, without
// duplicates or gaps, while the store's clock moves between pages; and the
// in-memory Page (the unit tests' fake stores) orders the same jobs the same way.
func TestIntegrationListSort(t *testing.T) {
	pool := pgtest.Schema(t)
	ctx := context.Background()
	spec, _ := json.Marshal(job.Spec{Method: "sft", Model: "builtin:tiny"})
	base := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	// i % 5 = 0: never started; started ones end when i % 3 = 0, else still run.
	// Losses repeat (ties) and include thirds (no short decimal form); i % 4 = 0 has
	// no loss, i % 3 = 1 no eval loss. created_at repeats every 37 jobs.
	if _, err := pool.Exec(ctx, `INSERT INTO jobs (id, owner_subject, unix_user, cluster, name, model, spec, spec_hash, state,
			created_at, started_at, ended_at, progress_loss, progress_eval_loss)
		SELECT gen_random_uuid(), 'user' || (i % 2), 'user' || (i % 2), 'dev',
			(ARRAY['llama-sweep', 'baseline', ''])[1 + i % 3],
			(ARRAY['/models/Llama-3-8b', 'builtin:tiny', '/models/qwen2-0.5b', '/models/llama-2-7b'])[1 + i % 4], $1, 'h',
			(ARRAY['queued','running','succeeded','failed'])[1 + i % 4],
			$2::timestamptz + make_interval(secs => i % 37),
			CASE WHEN i % 5 = 0 THEN NULL ELSE $2::timestamptz + make_interval(mins => i % 7) END,
			CASE WHEN i % 5 <> 0 AND i % 3 = 0 THEN $2::timestamptz + make_interval(mins => i % 7 + i % 11) END,
			CASE WHEN i % 4 = 0 THEN NULL ELSE (i % 6)::float8 / 3 END,
			CASE WHEN i % 3 = 1 THEN NULL ELSE (i % 5)::float8 / 3 END
		FROM generate_series(1, 400) AS i`, spec, base); err != nil {
		t.Fatal(err)
	}
	var clock time.Time
	s := postgres.New(pool)
	s.Now = func() time.Time { clock = clock.Add(time.Minute); return clock }
	keys := map[job.Sort]string{
		job.SortCreated:  "created_at",
		job.SortDuration: "coalesce(ended_at, $1::timestamptz) - started_at",
		job.SortLoss:     "progress_loss",
		job.SortEvalLoss: "progress_eval_loss",
	}
	filters := []struct {
		name string
		f    postgres.Filter
		sql  string
	}{
		{"all", postgres.Filter{}, "true"},
		{"user1 llama", postgres.Filter{Owner: "user1", Search: "LLAMA"}, "owner_subject = 'user1' AND (name ILIKE '%llama%' OR model ILIKE '%llama%')"},
	}
	for _, fl := range filters {
		for _, srt := range job.Sorts {
			for _, desc := range []bool{false, true} {
				dir := "ASC"
				if desc {
					dir = "DESC"
				}
				name := fmt.Sprintf("%s/%s %s", fl.name, srt, dir)
				// Each listing starts at base+10m, when running jobs (started at base+0..6m)
				// have run as long as ended ones (0..16m): the two ranges interleave and tie.
				clock = base.Add(9 * time.Minute)
				asOf := clock.Add(time.Minute) // the instant List takes for the first page
				var want []string
				rows, err := pool.Query(ctx, `SELECT id::text FROM jobs WHERE `+fl.sql+` AND $1::timestamptz IS NOT NULL
					ORDER BY `+keys[srt]+` `+dir+` NULLS LAST, id `+dir, asOf)
				if err != nil {
					t.Fatal(err)
				}
				for rows.Next() {
					var id string
					if err := rows.Scan(&id); err != nil {
						t.Fatal(err)
					}
					want = append(want, id)
				}
				rows.Close()
				if len(want) < 50 {
					t.Fatalf("%s: only %d jobs match; the seed is too small", name, len(want))
				}
				f := fl.f
				f.Sort, f.Desc, f.Limit = srt, desc, 13
				var got []job.Job
				for page := 0; ; page++ {
					jobs, next, err := s.List(ctx, f)
					if err != nil || page > len(want) {
						t.Fatalf("%s page %d: %v", name, page, err)
					}
					if next != "" && len(jobs) != f.Limit {
						t.Fatalf("%s page %d: %d jobs and a next cursor", name, page, len(jobs))
					}
					got = append(got, jobs...)
					if next == "" {
						break
					}
					f.Cursor = next
				}
				if ids(got) != strings.Join(want, " ") {
					t.Errorf("%s: pages joined (%d jobs) differ from ORDER BY (%d jobs)", name, len(got), len(want))
				}
				mem, _, err := postgres.Page(postgres.Filter{Sort: srt, Desc: desc, Limit: len(got) + 1}, got, asOf)
				if err != nil || ids(mem) != ids(got) {
					t.Errorf("%s: the in-memory Page orders the jobs differently: %v", name, err)
				}
			}
		}
	}
	// The eval loss the reconciler records is what sort=eval_loss reads.
	j := newJob("user0", "builtin:tiny")
	if _, _, err := s.Create(ctx, j, quota.Limits{}); err != nil {
		t.Fatal(err)
	}
	low := -1.0
	if err := s.SetProgress(ctx, j.ID, job.Progress{Phase: "training", Step: 1, EvalLoss: &low, UpdatedAt: &base}); err != nil {
		t.Fatal(err)
	}
	first, _, err := s.List(ctx, postgres.Filter{Sort: job.SortEvalLoss, Limit: 1})
	if err != nil || len(first) != 1 || first[0].ID != j.ID || first[0].Progress.EvalLoss == nil || *first[0].Progress.EvalLoss != low {
		t.Errorf("lowest eval loss: %+v, %v; want job %s with %v", first, err, j.ID, low)
	}
	// A cursor from another sort, and a forged one, are the client's mistake.
	_, next, err := s.List(ctx, postgres.Filter{Sort: job.SortLoss, Limit: 5})
	if err != nil || next == "" {
		t.Fatalf("loss page: %v %q", err, next)
	}
	for _, f := range []postgres.Filter{
		{Sort: job.SortCreated, Desc: true, Cursor: next},
		{Sort: job.SortLoss, Cursor: "MnxsAhhfGF8xfGp8"},
	} {
		if _, _, err := s.List(ctx, f); job.ErrorCode(err) != job.EInvalid {
			t.Errorf("%+v: %v, want EInvalid", f, err)
		}
	}
}
