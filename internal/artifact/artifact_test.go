package artifact

import (
	"strings"
	"testing"

	"github.com/ftgate/ftgate/internal/job"
)

func TestRel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in string
		ok bool
	}{
		{"weights.bin", true},
		{"tok/vocab.json", true},
		{"adapter_model.safetensors", true},
		{"a/b/c/d", true},
		{"", false},
		{"..", false},
		{"../job.json", false},
		{"tok/../../job.json", false},
		{"./x", false},
		{"/etc/passwd", false},
		{"a//b", false},
		{"a/", false},
		{".hidden", false},
		{"a\x00b", false},
		{"a\\b", false},
		{"%2e%2e/x", false},
		{"a b", false},
		{strings.Repeat("a/", 16) + "a", false},
		{strings.Repeat("x", 1025), false},
	}
	for _, tt := range tests {
		_, err := Rel("file", tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("Rel(%q) error %v, want ok=%v", tt.in, err, tt.ok)
		}
		if err != nil && (job.ErrorCode(err) != job.EInvalid || !strings.HasPrefix(job.ErrorMessage(err), "file:")) {
			t.Errorf("Rel(%q) error %v: want EInvalid naming the field", tt.in, err)
		}
	}
}

func TestForJob(t *testing.T) {
	t.Parallel()
	ok := job.Job{ID: "j1", User: "alice", JobDir: "/jobs/alice/j1"}
	if d, err := ForJob(nil, "/jobs/", ok); err != nil || d.Path != "/jobs/alice/j1" || d.Root != "/jobs" {
		t.Fatalf("ForJob = %+v, %v", d, err)
	}
	for _, dir := range []string{"", "/jobs/bob/j1", "/jobs/alice/../bob/j1", "/jobs/alice", "/jobs/alice/j1/x", "/other/alice/j1", "/jobs/alice/.x"} {
		j := ok
		j.JobDir = dir
		if _, err := ForJob(nil, "/jobs", j); err == nil {
			t.Errorf("ForJob accepted job dir %q", dir)
		}
	}
}

func TestTailIndex(t *testing.T) {
	t.Parallel()
	tests := []struct {
		buf     string
		n       int
		atStart bool
		want    string
	}{
		{"a\nb\nc\n", 2, true, "b\nc\n"},
		{"a\nb\nc", 2, true, "b\nc"},
		{"a\nb\nc\n", 5, true, "a\nb\nc\n"},
		{"a\nb\nc\n", 1, true, "c\n"},
		{"partial\nb\nc\n", 5, false, "b\nc\n"},
		{"partial", 3, false, ""},
		{"", 3, true, ""},
	}
	for _, tt := range tests {
		if got := tt.buf[TailIndex([]byte(tt.buf), tt.n, tt.atStart):]; got != tt.want {
			t.Errorf("tail %d of %q (start %v) = %q, want %q", tt.n, tt.buf, tt.atStart, got, tt.want)
		}
	}
}

func TestLogLines(t *testing.T) {
	t.Parallel()
	lines, rest := LogLines([]byte("a\r\nb\npart"))
	if strings.Join(lines, "|") != "a|b" || string(rest) != "part" {
		t.Fatalf("LogLines = %q, %q", lines, rest)
	}
}

func TestReadSeries(t *testing.T) {
	t.Parallel()
	in := `{"step": 1, "loss": 2.0, "learning_rate": 0.1, "time": 5, "restart_count": 0}
{"step": 2, "loss": 1.5, "tokens_per_second": 100}
not json
{"step": "x", "loss": 1}
{"step": 2, "eval_loss": 1.7}
{"step": 3, "loss": 1.2}
{"step": 2, "loss": 1.4}
{"step": 4, "loss": 1.0, "name": "text"}
{"step": 5, "lo`
	tests := []struct {
		since, max int
		loss       [][2]float64
		last       int64
	}{
		{-1, 0, [][2]float64{{1, 2}, {2, 1.4}, {3, 1.2}, {4, 1}}, 4},
		{2, 0, [][2]float64{{3, 1.2}, {4, 1}}, 4},
		{-1, 2, [][2]float64{{3, 1.2}, {4, 1}}, 4},
		{9, 0, nil, 9},
	}
	for _, tt := range tests {
		s, err := ReadSeries(strings.NewReader(in), int64(tt.since), tt.max)
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Series["loss"]) != len(tt.loss) || s.LastStep != tt.last || s.Skipped != 2 {
			t.Errorf("since %d max %d: loss %v last %d skipped %d; want %v last %d skipped 2", tt.since, tt.max, s.Series["loss"], s.LastStep, s.Skipped, tt.loss, tt.last)
			continue
		}
		for i := range tt.loss {
			if s.Series["loss"][i] != tt.loss[i] {
				t.Errorf("since %d: loss %v, want %v", tt.since, s.Series["loss"], tt.loss)
			}
		}
		if _, ok := s.Series["time"]; ok {
			t.Error("bookkeeping field time became a series")
		}
	}
	s, _ := ReadSeries(strings.NewReader(in), -1, 0)
	if len(s.Series["eval_loss"]) != 1 || s.Series["eval_loss"][0] != [2]float64{2, 1.7} || len(s.Series["tokens_per_second"]) != 1 {
		t.Errorf("merged series: %v", s.Series)
	}
}
