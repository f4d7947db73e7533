package shared

import (
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
)

func TestProgressLineAndElapsed(t *testing.T) {
	t.Parallel()
	loss, eta := 0.8, 80.0
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	start, end := now.Add(-5*time.Minute), now.Add(-time.Minute)
	for _, tc := range []struct{ got, want string }{
		{ProgressLine(job.Progress{Step: 150, TotalSteps: 300, Loss: &loss, TokensPerSecond: 2400, ETASeconds: &eta}), "[##########..........] 150/300 50%  loss 0.8  2400 tokens/s  ETA 1m20s"},
		{ProgressLine(job.Progress{Step: 7}), "step 7"},
		{Elapsed(job.Job{}, now), "-"},
		{Elapsed(job.Job{StartedAt: &start}, now), "5m00s"},
		{Elapsed(job.Job{StartedAt: &start, EndedAt: &end}, now), "4m00s"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
