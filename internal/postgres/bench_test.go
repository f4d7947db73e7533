package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/benchtable"
	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/postgres"
	"github.com/ftgate/ftgate/internal/postgres/pgtest"
)

// BenchmarkList measures GET /api/jobs's query over 100,000 and then 1,000,000 seeded
// jobs (10 owners, 3 models, all states; three in four with a loss, one in three with
// an eval loss, all but the queued started): first page, a deep keyset page, filtered
// lists and one line per sort and direction, with p50 and p99 per query.
// FTGATE_BENCH_LIST_ROWS overrides the sizes (comma-separated, ascending), e.g.
// 10000000 for the 10M-row goal (about 4 GB in Postgres and minutes of seeding).
func BenchmarkList(b *testing.B) {
	sizes, err := listSizes(os.Getenv("FTGATE_BENCH_LIST_ROWS"))
	if err != nil {
		b.Fatal(err)
	}
	pool := pgtest.Schema(b)
	ctx := context.Background()
	spec, _ := json.Marshal(job.Spec{Method: "sft", Model: "builtin:tiny"})
	seeded := 0
	for _, size := range sizes {
		start := time.Now()
		_, err := pool.Exec(ctx, `INSERT INTO jobs (id, owner_subject, unix_user, cluster, model, spec, spec_hash, state, created_at,
				started_at, ended_at, progress_loss, progress_eval_loss)
			SELECT gen_random_uuid(), 'user' || (i % 10), 'user' || (i % 10), 'dev',
				(ARRAY['builtin:tiny', '/models/llama-3-8b', '/models/qwen2-0.5b'])[1 + i % 3], $1, 'h',
				(ARRAY['queued','running','succeeded','failed','cancelled','paused'])[1 + i % 6],
				now() - make_interval(secs => i),
				CASE WHEN i % 6 <> 0 THEN now() - make_interval(secs => i - 60) END,
				CASE WHEN i % 6 IN (2, 3, 4) THEN now() - make_interval(secs => i - 60 - i % 7200) END,
				CASE WHEN i % 4 <> 0 THEN (i % 9973)::float8 / 1000 END,
				CASE WHEN i % 3 = 0 THEN (i % 7919)::float8 / 1000 END
			FROM generate_series($2::int + 1, $3::int) AS i`, spec, seeded, size)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `ANALYZE jobs`); err != nil {
			b.Fatal(err)
		}
		b.Logf("seeded %d more jobs (%d in all) in %s", size-seeded, size, time.Since(start).Round(time.Millisecond))
		seeded = size
		s := postgres.New(pool)
		_, cursor, err := s.List(ctx, postgres.Filter{Owner: "user3", Limit: 5000})
		if err != nil {
			b.Fatal(err)
		}
		type listCase struct {
			name string
			f    postgres.Filter
		}
		cases := []listCase{
			{"owner first page", postgres.Filter{Owner: "user3", Limit: 50}},
			{"owner deep page", postgres.Filter{Owner: "user3", Limit: 50, Cursor: cursor}},
			{"admin all", postgres.Filter{Limit: 50}},
			{"owner running", postgres.Filter{Owner: "user3", States: []job.State{job.Running}, Limit: 50}},
			{"model substring", postgres.Filter{Model: "qwen", Limit: 50}},
			{"date range", postgres.Filter{From: time.Now().Add(-10 * time.Hour), To: time.Now().Add(-9 * time.Hour), Limit: 50}},
			{"owner search llama", postgres.Filter{Owner: "user3", Search: "llama", Limit: 50}},
		}
		for _, srt := range job.Sorts {
			for _, desc := range []bool{false, true} {
				dir := map[bool]string{false: "asc", true: "desc"}[desc]
				cases = append(cases, listCase{"owner sort " + string(srt) + " " + dir, postgres.Filter{Owner: "user3", Sort: srt, Desc: desc, Limit: 50}})
			}
		}
		_, lossCursor, err := s.List(ctx, postgres.Filter{Owner: "user3", Sort: job.SortLoss, Limit: 5000})
		if err != nil {
			b.Fatal(err)
		}
		cases = append(cases, listCase{"owner sort loss deep page", postgres.Filter{Owner: "user3", Sort: job.SortLoss, Limit: 50, Cursor: lossCursor}},
			listCase{"admin sort loss desc", postgres.Filter{Sort: job.SortLoss, Desc: true, Limit: 50}})
		worst, worstName := 0.0, ""
		for _, c := range cases {
			b.Run(fmt.Sprintf("%d/%s", size, c.name), func(b *testing.B) {
				ds := make([]time.Duration, 0, b.N)
				for i := 0; i < b.N; i++ {
					t0 := time.Now()
					if _, _, err := s.List(ctx, c.f); err != nil {
						b.Fatal(err)
					}
					ds = append(ds, time.Since(t0))
				}
				slices.Sort(ds)
				b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, "p50-ms")
				p99 := float64(ds[(len(ds)-1)*99/100].Microseconds()) / 1000
				b.ReportMetric(p99, "p99-ms")
				if b.N > 1 && p99 > worst {
					worst, worstName = p99, c.name
				}
			})
		}
		if worst > 0 {
			benchtable.Record(benchtable.Row{Figure: fmt.Sprintf("job list query p99 over %d rows (worst filter: %s)", size, worstName),
				Value: worst, Unit: "ms", Reference: "goal", RefValue: 10, Goal: 1})
		}
	}
}

// listSizes parses FTGATE_BENCH_LIST_ROWS ("" is the default 100k then 1M).
func listSizes(v string) ([]int, error) {
	if v == "" {
		return []int{100000, 1000000}, nil
	}
	var sizes []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || (len(sizes) > 0 && n <= sizes[len(sizes)-1]) {
			return nil, fmt.Errorf("FTGATE_BENCH_LIST_ROWS=%q: want ascending positive row counts", v)
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
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
