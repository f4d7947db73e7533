package postgres_test

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/postgres"
)

var sortT0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// sortFixture: ties in every key, jobs without a loss, eval loss or start.
func sortFixture() []job.Job {
	at := func(d time.Duration) *time.Time { t := sortT0.Add(d); return &t }
	f := func(v float64) *float64 { return &v }
	return []job.Job{
		{ID: "a", CreatedAt: sortT0, StartedAt: at(time.Minute), EndedAt: at(11 * time.Minute), Progress: job.Progress{Loss: f(0.5)}},
		{ID: "b", CreatedAt: sortT0, StartedAt: at(2 * time.Minute), Progress: job.Progress{Loss: f(0.5), EvalLoss: f(0.7)}},
		{ID: "c", CreatedAt: sortT0.Add(time.Minute)},
		{ID: "d", CreatedAt: sortT0.Add(-time.Minute), StartedAt: at(0), EndedAt: at(10 * time.Minute), Progress: job.Progress{Loss: f(0.3), EvalLoss: f(0.7)}},
		{ID: "e", CreatedAt: sortT0.Add(time.Minute), StartedAt: at(time.Minute), EndedAt: at(31 * time.Minute), Progress: job.Progress{EvalLoss: f(0.9)}},
	}
}

func ids(jobs []job.Job) string {
	s := make([]string, len(jobs))
	for i, j := range jobs {
		s[i] = j.ID
	}
	return strings.Join(s, " ")
}

// TestPageOrder pins every sort and direction on a hand-made set (b is still running
// at the listing's instant, sortT0+2h: 118 minutes).
func TestPageOrder(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sort job.Sort
		desc bool
		want string
	}{
		{job.SortCreated, true, "e c b a d"},
		{job.SortCreated, false, "d a b c e"},
		{job.SortDuration, true, "b e d a c"},
		{job.SortDuration, false, "a d e b c"},
		{job.SortLoss, false, "d a b c e"},
		{job.SortLoss, true, "b a d e c"},
		{job.SortEvalLoss, false, "b d e a c"},
		{job.SortEvalLoss, true, "e d b c a"},
	} {
		got, next, err := postgres.Page(postgres.Filter{Sort: tc.sort, Desc: tc.desc}, sortFixture(), sortT0.Add(2*time.Hour))
		if err != nil || next != "" || ids(got) != tc.want {
			t.Errorf("%s desc=%v: %q next %q err %v, want %q", tc.sort, tc.desc, ids(got), next, err, tc.want)
		}
	}
	// A Filter without Sort is today's order: newest first.
	if got, _, _ := postgres.Page(postgres.Filter{}, sortFixture(), sortT0); ids(got) != "e c b a d" {
		t.Errorf("zero Filter: %q, want newest first", ids(got))
	}
}

// TestPageKeyset pages through every sort, both directions and several page sizes
// over jobs with many ties and missing values: the pages joined are the full list.
func TestPageKeyset(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	var jobs []job.Job
	for i := range 300 {
		j := job.Job{ID: fmt.Sprintf("%08x-0000-4000-8000-%012x", r.Uint32(), i), CreatedAt: sortT0.Add(time.Duration(r.IntN(20)) * time.Second)}
		if r.IntN(4) > 0 {
			s := sortT0.Add(time.Duration(r.IntN(10)) * time.Minute)
			j.StartedAt = &s
			if r.IntN(2) == 0 {
				e := s.Add(time.Duration(r.IntN(5)) * time.Minute)
				j.EndedAt = &e
			}
		}
		if r.IntN(3) > 0 {
			l := float64(r.IntN(6)) / 4
			j.Progress.Loss = &l
		}
		if r.IntN(3) == 0 {
			l := float64(r.IntN(3)) / 2
			j.Progress.EvalLoss = &l
		}
		jobs = append(jobs, j)
	}
	now := sortT0.Add(time.Hour)
	for _, s := range job.Sorts {
		for _, desc := range []bool{false, true} {
			f := postgres.Filter{Sort: s, Desc: desc, Limit: 1000}
			full, _, _ := postgres.Page(f, jobs, now)
			if len(full) != len(jobs) {
				t.Fatalf("%s: full list has %d jobs, want %d", s, len(full), len(jobs))
			}
			for _, size := range []int{1, 7, 50} {
				f.Limit, f.Cursor = size, ""
				var got []job.Job
				for pages := 0; ; pages++ {
					page, next, err := postgres.Page(f, jobs, now.Add(time.Duration(pages)*time.Minute)) // the clock moves on
					if err != nil || pages > len(jobs) {
						t.Fatalf("%s desc=%v size %d page %d: %v", s, desc, size, pages, err)
					}
					got = append(got, page...)
					if next == "" {
						break
					}
					f.Cursor = next
				}
				if ids(got) != ids(full) {
					t.Errorf("%s desc=%v size %d: pages joined differ from the full list", s, desc, size)
				}
			}
		}
	}
}

func TestCursor(t *testing.T) {
	t.Parallel()
	j := sortFixture()[1]
	asOf := sortT0.Add(time.Hour)
	for _, s := range job.Sorts {
		for _, desc := range []bool{false, true} {
			f := postgres.Filter{Sort: s, Desc: desc, AsOf: asOf}
			c, err := postgres.DecodeCursor(f, postgres.EncodeCursor(f, j))
			v, ok := postgres.SortKey(s, j, asOf)
			if err != nil || c.ID != j.ID || c.Sort != s || c.Desc != desc || !c.AsOf.Equal(asOf) || c.Null == ok || (ok && c.Value != v) {
				t.Errorf("%s desc=%v: round trip %+v, %v; want value %v (ok %v)", s, desc, c, err, v, ok)
			}
		}
	}
	loss := postgres.Filter{Sort: job.SortLoss}
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct {
		name, cursor string
		f            postgres.Filter
		err          string
	}{
		{"other sort", postgres.EncodeCursor(loss, j), postgres.Filter{Sort: job.SortDuration, Desc: true}, "cursor: it continues a list sorted by loss asc"},
		{"other order", postgres.EncodeCursor(loss, j), postgres.Filter{Sort: job.SortLoss, Desc: true}, "cursor: it continues a list sorted by loss asc"},
		{"not base64", "***", loss, "cursor: not a cursor"},
		{"few fields", enc("2|loss|a|0|1"), loss, "cursor: not a cursor"},
		{"bad direction", enc("2|loss|x|0|1|b"), loss, "cursor: not a cursor"},
		{"bad value", enc("2|loss|a|0|NaN|b"), loss, "cursor: not a cursor"},
		{"bad instant", enc("2|loss|a|soon|1|b"), loss, "cursor: not a cursor"},
		{"null created", enc("2|created|d|0||b"), postgres.Filter{}, "cursor: not a cursor"},
		{"no id", enc("2|loss|a|0|1|"), loss, "cursor: not a cursor"},
	} {
		_, err := postgres.DecodeCursor(tc.f, tc.cursor)
		if err == nil || !strings.Contains(err.Error(), tc.err) || job.ErrorCode(err) != job.EInvalid {
			t.Errorf("%s: %v, want EInvalid %q", tc.name, err, tc.err)
		}
	}
	// A cursor from before sort= (created_at micros|id) still continues newest first.
	c, err := postgres.DecodeCursor(postgres.Filter{}, enc(fmt.Sprintf("%d|%s", sortT0.UnixMicro(), "b")))
	if err != nil || c.Sort != job.SortCreated || !c.Desc || c.Value != float64(sortT0.UnixMicro()) || c.ID != "b" {
		t.Errorf("old cursor: %+v, %v", c, err)
	}
}
