package quota

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
)

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func at(h float64) time.Time { return t0.Add(time.Duration(h * float64(time.Hour))) }

func ended(startH, endH float64, gpus int) Run {
	e := at(endH)
	return Run{Start: at(startH), End: &e, GPUs: gpus}
}

func running(startH float64, gpus int) Run { return Run{Start: at(startH), GPUs: gpus} }

// TestGPUHours: runs count by their overlap with the window (at-window, at]: edges
// cut, runs outside count nothing, running runs count up to at, each restart is its
// own run.
func TestGPUHours(t *testing.T) {
	t.Parallel()
	w := 10 * time.Hour
	tests := []struct {
		name string
		runs []Run
		want float64
	}{
		{"none", nil, 0},
		{"inside", []Run{ended(-5, -3, 2)}, 4},
		{"cut by the window's start", []Run{ended(-12, -8, 1)}, 2},
		{"ended exactly at the window's start", []Run{ended(-12, -10, 4)}, 0},
		{"before the window", []Run{ended(-30, -20, 8)}, 0},
		{"spans the whole window", []Run{ended(-20, 5, 1)}, 10},
		{"running counts up to now", []Run{running(-1.5, 4)}, 6},
		{"running since before the window", []Run{running(-15, 1)}, 10},
		{"started in the future (clock skew) counts nothing", []Run{running(1, 4)}, 0},
		{"restarts: each run counts, the gaps between do not", []Run{ended(-6, -5, 2), ended(-4, -3, 2), running(-1, 2)}, 6},
		{"zero-length run", []Run{ended(-2, -2, 4)}, 0},
	}
	for _, tt := range tests {
		if got := GPUHours(tt.runs, t0, w); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("%s: %v GPU-hours, want %v", tt.name, got, tt.want)
		}
	}
}

// TestFreesAt: the first instant the window's GPU-hours fall below the limit, with
// running runs running on; never when running runs alone hold it.
func TestFreesAt(t *testing.T) {
	t.Parallel()
	w := 10 * time.Hour
	tests := []struct {
		name  string
		runs  []Run
		limit float64
		want  time.Time // zero: never
	}{
		{"under the limit: now", []Run{ended(-5, -4, 1)}, 2, t0},
		// 4 GPU-hours from -9h to -8h: the window's start reaches -9h at +1h and the
		// usage is 3 a quarter of the way through the run; below it a second later.
		{"one ended run leaves the window", []Run{ended(-9, -8, 4)}, 3, at(1.25).Add(time.Second)},
		{"exactly at the limit waits for it to drop", []Run{ended(-9, -8, 4)}, 4, at(1).Add(time.Second)},
		// Two runs: 2 GPU-h (-9..-8) and 2 GPU-h (-5..-4); once the first has left
		// (+2h) the usage is exactly the limit 2 until the second starts leaving (+5h).
		{"two runs: a plateau at the limit", []Run{ended(-9, -8, 2), ended(-5, -4, 2)}, 2, at(5).Add(time.Second)},
		{"two runs: below the limit while the first leaves", []Run{ended(-9, -8, 2), ended(-5, -4, 2)}, 3, at(1.5).Add(time.Second)},
		// A running run of 1 GPU since -2h adds as fast as time goes; an ended run
		// of 8 GPU-h from -10h to -9h leaves at 8 GPU-h per hour: usage 10 now, the
		// limit 5 is reached when 8(1-x)+2+x = 5, x = 5/7 h.
		{"running run grows while an ended one leaves", []Run{ended(-10, -9, 8), running(-2, 1)}, 5,
			t0.Add(5 * time.Hour / 7).Truncate(time.Second).Add(time.Second)},
		{"running run alone holds the limit", []Run{running(-12, 2)}, 15, time.Time{}},
		{"running run grows past the limit after the ended one left", []Run{ended(-10, -9, 1), running(-5, 2)}, 10, time.Time{}},
	}
	for _, tt := range tests {
		got, ok := FreesAt(tt.runs, t0, w, tt.limit)
		if ok != !tt.want.IsZero() || (ok && !got.Equal(tt.want)) {
			t.Errorf("%s: FreesAt = %v %v, want %v", tt.name, got, ok, tt.want)
			continue
		}
		if ok && got.After(t0) {
			if u := GPUHours(tt.runs, got, w); u >= tt.limit {
				t.Errorf("%s: at %v the usage is %v, not below %v", tt.name, got, u, tt.limit)
			}
			if u := GPUHours(tt.runs, got.Add(-2*time.Second), w); u < tt.limit {
				t.Errorf("%s: 2s before %v the usage is already %v, below %v", tt.name, got, u, tt.limit)
			}
		}
	}
}

// TestCheck: each limit refuses the job that would pass it, with its details; a
// resumed job (Add.Active 0) is already counted among the unfinished ones.
func TestCheck(t *testing.T) {
	t.Parallel()
	newJob := func(gpus int) Add { return Add{Active: 1, Queued: 1, GPUs: gpus} }
	w := 24 * time.Hour
	tests := []struct {
		name  string
		lim   Limits
		u     Usage
		add   Add
		limit string // "" accepted
		msg   string
	}{
		{"no limits", Limits{}, Usage{Active: 100, Queued: 100, GPUsHeld: 100}, newJob(8), "", ""},
		{"active under", Limits{MaxActive: 3}, Usage{Active: 2}, newJob(1), "", ""},
		{"active at", Limits{MaxActive: 3}, Usage{Active: 3}, newJob(1), LimitActive, "you have 3 unfinished jobs (paused ones included), the limit is 3"},
		{"resume at the active limit", Limits{MaxActive: 3}, Usage{Active: 3}, Add{Queued: 1, GPUs: 1}, "", ""},
		{"resume over the active limit", Limits{MaxActive: 3}, Usage{Active: 4}, Add{Queued: 1, GPUs: 1}, LimitActive, "cancel one before resuming"},
		{"queue cap", Limits{MaxQueued: 2}, Usage{Active: 5, Queued: 2}, newJob(0), LimitQueued, "2 jobs waiting to start (submitting or queued), the limit is 2"},
		{"queue cap under", Limits{MaxQueued: 2}, Usage{Queued: 1}, newJob(0), "", ""},
		{"gpus fit exactly", Limits{MaxGPUs: 8}, Usage{GPUsHeld: 4}, newJob(4), "", ""},
		{"gpus over", Limits{MaxGPUs: 8}, Usage{GPUsHeld: 6}, newJob(4), LimitGPUs, "hold 6 GPUs and this job asks for 4 more, the limit is 8"},
		{"a CPU job passes the GPU limit", Limits{MaxGPUs: 8}, Usage{GPUsHeld: 8}, newJob(0), "", ""},
		{"gpu hours under", Limits{GPUHours: 10, Window: w}, Usage{At: t0, Runs: []Run{ended(-5, -1, 2)}}, newJob(1), "", ""},
		{"gpu hours used up", Limits{GPUHours: 8, Window: w}, Usage{At: t0, Runs: []Run{ended(-5, -1, 2)}}, newJob(1), LimitGPUHours,
			"you used 8.0 of 8 GPU-hours in the last 1d; it frees up at 2026-11-30T07:00:01Z"},
		{"gpu hours held by a running job", Limits{GPUHours: 8, Window: w}, Usage{At: t0, Runs: []Run{running(-30, 1)}}, newJob(1), LimitGPUHours,
			"your running jobs alone hold it"},
		{"gpu hours do not refuse a CPU job", Limits{GPUHours: 8, Window: w}, Usage{At: t0, Runs: []Run{running(-30, 1)}}, newJob(0), "", ""},
		{"group budget under", Limits{Window: w, Pools: []Pool{{"lab", 10}}},
			Usage{At: t0, PoolRuns: map[string][]Run{"lab": {ended(-5, -1, 2)}}}, newJob(1), "", ""},
		{"group budget used up by the group", Limits{GPUHours: 100, Window: w, Pools: []Pool{{"lab", 10}, {"nlp", 8}}},
			Usage{At: t0, Runs: []Run{ended(-2, -1, 1)}, PoolRuns: map[string][]Run{"lab": {ended(-5, -1, 2)}, "nlp": {ended(-5, -1, 2)}}}, newJob(1), LimitPool,
			"group budget reached: group nlp used 8.0 of its shared 8 GPU-hours in the last 1d; it frees up at 2026-11-30T07:00:01Z"},
		{"group budget held by running jobs", Limits{Window: w, Pools: []Pool{{"lab", 8}}},
			Usage{At: t0, PoolRuns: map[string][]Run{"lab": {running(-30, 1)}}}, newJob(1), LimitPool, "the group's running jobs alone hold it"},
		{"group budget does not refuse a CPU job", Limits{Window: w, Pools: []Pool{{"lab", 8}}},
			Usage{At: t0, PoolRuns: map[string][]Run{"lab": {running(-30, 1)}}}, newJob(0), "", ""},
	}
	for _, tt := range tests {
		err := tt.lim.Check(tt.u, tt.add)
		if tt.limit == "" {
			if err != nil {
				t.Errorf("%s: %v, want accepted", tt.name, err)
			}
			continue
		}
		e, ok := err.(*job.Error)
		if !ok || e.Code != job.ETooMany || e.Details["limit"] != tt.limit || !strings.Contains(e.Message, tt.msg) {
			t.Errorf("%s: %v (details %v), want too_many for %s with %q", tt.name, err, e.Details, tt.limit, tt.msg)
		}
	}
	e := Limits{GPUHours: 8, Window: w}.Check(Usage{At: t0, Runs: []Run{ended(-5, -1, 2)}}, newJob(1)).(*job.Error)
	if e.Details["max"] != 8.0 || e.Details["used"] != 8.0 || e.Details["window_seconds"] != int64(86400) || e.Details["frees_at"] != "2026-11-30T07:00:01Z" {
		t.Errorf("gpu_hours details: %v", e.Details)
	}
	e = Limits{Window: w, Pools: []Pool{{"lab", 8}}}.Check(Usage{At: t0, PoolRuns: map[string][]Run{"lab": {ended(-5, -1, 2)}}}, newJob(1)).(*job.Error)
	if e.Details["group"] != "lab" || e.Details["max"] != 8.0 || e.Details["used"] != 8.0 || e.Details["frees_at"] != "2026-11-30T07:00:01Z" {
		t.Errorf("group_gpu_hours details: %v", e.Details)
	}
	if (Limits{Pools: []Pool{{"lab", 8}}}).None() || (Limits{Pools: []Pool{{"lab", 8}}, Window: w}).RunsWindow() != w || (Limits{MaxActive: 1, Window: w}).RunsWindow() != 0 {
		t.Error("a pool alone must count as a limit that needs the window's runs")
	}
}

// TestCount: each state counts where the store counts it.
func TestCount(t *testing.T) {
	t.Parallel()
	var u Usage
	for _, st := range job.States {
		u.Count(st, 2)
	}
	if u.Active != 5 || u.Queued != 2 || u.GPUsInUse != 4 || u.GPUsHeld != 8 {
		t.Errorf("one job in each state with 2 GPUs: %+v", u)
	}
}

func TestFormatWindow(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{168 * time.Hour: "7d", 36 * time.Hour: "36h", 90 * time.Minute: "90m", 90 * time.Second: "1m30s"} {
		if got := FormatWindow(d); got != want {
			t.Errorf("FormatWindow(%s) = %q, want %q", d, got, want)
		}
	}
}
