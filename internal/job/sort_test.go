package job_test

import (
	"strings"
	"testing"

	"github.com/ftgate/ftgate/internal/job"
)

func TestParseSort(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sort, order string
		want        job.Sort
		desc        bool
		err         string
	}{
		{"", "", job.SortCreated, true, ""},
		{"created", "asc", job.SortCreated, false, ""},
		{"duration", "", job.SortDuration, true, ""},
		{"duration", "asc", job.SortDuration, false, ""},
		{"loss", "", job.SortLoss, false, ""},
		{"loss", "desc", job.SortLoss, true, ""},
		{"eval_loss", "", job.SortEvalLoss, false, ""},
		{"", "asc", job.SortCreated, false, ""},
		{"-loss", "", "", false, `sort: want one of created, duration, loss, eval_loss, got "-loss"`},
		{"Loss", "", "", false, `sort: want one of created, duration, loss, eval_loss, got "Loss"`},
		{"loss", "up", "", false, `order: want asc or desc, got "up"`},
		{"loss", "DESC", "", false, `order: want asc or desc, got "DESC"`},
		{strings.Repeat("x", 100), "", "", false, `got "` + strings.Repeat("x", 40) + `..."`},
	} {
		s, desc, err := job.ParseSort(tc.sort, tc.order)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || job.ErrorCode(err) != job.EInvalid {
				t.Errorf("ParseSort(%q, %q) = %v, want EInvalid %q", tc.sort, tc.order, err, tc.err)
			}
			continue
		}
		if err != nil || s != tc.want || desc != tc.desc {
			t.Errorf("ParseSort(%q, %q) = %q, %v, %v; want %q, %v", tc.sort, tc.order, s, desc, err, tc.want, tc.desc)
		}
	}
}
