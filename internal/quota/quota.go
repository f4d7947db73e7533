// Package quota holds the arithmetic of the per-user limits: unfinished jobs, jobs
// waiting to start (the queue cap), GPUs held at once and GPU-hours in a rolling
// window, computed from the runs the gateway saw Slurm run. It does no I/O: the store
// counts (internal/postgres), this package decides.
package quota

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/ftgate/ftgate/internal/job"
)

// Limits are one user's limits, resolved from the configuration (config.Limits.For).
// A zero field is no limit.
type Limits struct {
	MaxActive int // unfinished jobs: submitting, queued, running, pausing, paused
	MaxQueued int // jobs waiting to start: submitting and queued (the queue cap)
	MaxGPUs   int // GPUs of the jobs that are submitting, queued, running or pausing
	// GPUHours caps the GPU-hours of the runs in the last Window.
	GPUHours float64
	Window   time.Duration
	// Pools are the shared GPU-hour budgets of the user's groups: each caps the
	// GPU-hours of all its members' runs in the last Window together.
	Pools []Pool
}

// Pool is one group's shared GPU-hour budget (limits.group_budgets).
type Pool struct {
	Group    string
	GPUHours float64
}

// The states each limit counts (every unfinished state counts toward MaxActive:
// job.ActiveStates).
var (
	// Waiting jobs count toward the queue cap.
	Waiting = []job.State{job.Submitting, job.Queued}
	// InUse jobs hold GPUs on a node now.
	InUse = []job.State{job.Running, job.Pausing}
	// Holding jobs count toward MaxGPUs: waiting or in use.
	Holding = []job.State{job.Submitting, job.Queued, job.Running, job.Pausing}
)

// None reports whether l limits nothing.
func (l Limits) None() bool {
	return l.MaxActive == 0 && l.MaxQueued == 0 && l.MaxGPUs == 0 && l.GPUHours == 0 && len(l.Pools) == 0
}

// RunsWindow is the window whose runs Check needs: Window when a GPU-hour limit or a
// pool applies, else 0 (no runs to read).
func (l Limits) RunsWindow() time.Duration {
	if l.GPUHours == 0 && len(l.Pools) == 0 {
		return 0
	}
	return l.Window
}

// Run is one run of a job as the gateway saw Slurm run it: a job that Slurm requeued
// or that was paused and resumed has one run per start.
type Run struct {
	Start time.Time
	End   *time.Time // nil while it runs
	GPUs  int        // in all (per node × nodes)
}

// Usage is what one user holds at one instant.
type Usage struct {
	At        time.Time
	Active    int // unfinished jobs
	Queued    int // submitting or queued
	GPUsInUse int // GPUs of running and pausing jobs
	// GPUsHeld are the GPUs of submitting, queued, running and pausing jobs: what
	// MaxGPUs counts (the gateway cannot keep a queued job from starting).
	GPUsHeld int
	// Runs are the user's runs that overlap the window ending At (with GPUs).
	Runs []Run
	// PoolRuns are, per pool group, the runs of all the group's members' jobs that
	// overlap the window (a job belongs to the groups its owner had at submission).
	PoolRuns map[string][]Run
}

// Count adds one job in state st holding gpus GPUs to u, as the store counts it
// (for stores that count in memory).
func (u *Usage) Count(st job.State, gpus int) {
	if st.Active() {
		u.Active++
	}
	if slices.Contains(Waiting, st) {
		u.Queued++
	}
	if slices.Contains(InUse, st) {
		u.GPUsInUse += gpus
	}
	if slices.Contains(Holding, st) {
		u.GPUsHeld += gpus
	}
}

// Add is what a job about to be created or resumed adds to the usage.
type Add struct {
	Active int // 1 for a new job; a resumed job is already counted
	Queued int // 1: it waits to start
	GPUs   int // its GPUs in all
}

// Limit names, as an error's details carry them.
const (
	LimitActive   = "active_jobs"
	LimitQueued   = "queued_jobs"
	LimitGPUs     = "gpus"
	LimitGPUHours = "gpu_hours"
	LimitPool     = "group_gpu_hours"
)

// overlap is how long [start, end] overlaps [from, to].
func overlap(start, end, from, to time.Time) time.Duration {
	if start.Before(from) {
		start = from
	}
	if end.After(to) {
		end = to
	}
	if !end.After(start) {
		return 0
	}
	return end.Sub(start)
}

// GPUHours sums the GPU-hours of runs within the window (at-window, at]; a run
// still running counts up to at.
func GPUHours(runs []Run, at time.Time, window time.Duration) float64 {
	from := at.Add(-window)
	var h float64
	for _, r := range runs {
		end := at
		if r.End != nil && r.End.Before(at) {
			end = *r.End
		}
		h += float64(r.GPUs) * overlap(r.Start, end, from, at).Hours()
	}
	return h
}

// GPUHours is the usage's GPU-hours in the window ending u.At.
func (u Usage) GPUHours(window time.Duration) float64 { return GPUHours(u.Runs, u.At, window) }

// FreesAt is the first instant after at when the GPU-hours of runs in the window
// ending there fall below limit, with running runs running on: ok is false when they
// never do while those runs run (they alone hold the limit). Usage in the window is
// linear between the instants a run's start or end leaves the window, so it is
// evaluated there and solved in the segment where it crosses the limit.
func FreesAt(runs []Run, at time.Time, window time.Duration, limit float64) (time.Time, bool) {
	// usage at t >= at, running runs counted up to t.
	usage := func(t time.Time) float64 {
		from := t.Add(-window)
		var h float64
		for _, r := range runs {
			end := t
			if r.End != nil {
				end = *r.End
			}
			h += float64(r.GPUs) * overlap(r.Start, end, from, t).Hours()
		}
		return h
	}
	u0 := usage(at)
	if u0 < limit {
		return at, true
	}
	var points []time.Time
	for _, r := range runs {
		for _, p := range []*time.Time{&r.Start, r.End} {
			if p != nil && p.Add(window).After(at) {
				points = append(points, p.Add(window))
			}
		}
	}
	slices.SortFunc(points, time.Time.Compare)
	a, ua := at, u0
	for _, b := range points {
		ub := usage(b)
		if ub < limit {
			// Linear on [a, b]: ua >= limit > ub.
			frac := (ua - limit) / (ua - ub)
			t := a.Add(time.Duration(frac * float64(b.Sub(a))))
			return t.Truncate(time.Second).Add(time.Second), true
		}
		a, ua = b, ub
	}
	return time.Time{}, false
}

// Check refuses add with an ETooMany *job.Error naming the first limit it would pass:
// the limit, the usage and (for GPU-hours) when it frees up, in the message and in the
// error's details.
func (l Limits) Check(u Usage, add Add) error {
	if l.MaxActive > 0 && add.Active > 0 && u.Active+add.Active > l.MaxActive {
		return tooMany(LimitActive, l.MaxActive, u.Active, add.Active,
			"quota exceeded: you have %d unfinished jobs (paused ones included), the limit is %d; wait for one to finish or cancel one", u.Active, l.MaxActive)
	}
	if l.MaxActive > 0 && add.Active == 0 && u.Active > l.MaxActive {
		// A resumed job is already counted: more than the limit means over it (the
		// limit was lowered meanwhile).
		return tooMany(LimitActive, l.MaxActive, u.Active, 0,
			"quota exceeded: you have %d unfinished jobs (paused ones included), the limit is %d; cancel one before resuming", u.Active, l.MaxActive)
	}
	if l.MaxQueued > 0 && add.Queued > 0 && u.Queued+add.Queued > l.MaxQueued {
		return tooMany(LimitQueued, l.MaxQueued, u.Queued, add.Queued,
			"queue cap reached: you have %d jobs waiting to start (submitting or queued), the limit is %d; wait for one to start or cancel one", u.Queued, l.MaxQueued)
	}
	if l.MaxGPUs > 0 && add.GPUs > 0 && u.GPUsHeld+add.GPUs > l.MaxGPUs {
		return tooMany(LimitGPUs, l.MaxGPUs, u.GPUsHeld, add.GPUs,
			"GPU limit reached: your queued and running jobs hold %d GPUs and this job asks for %d more, the limit is %d at once; wait for a job to finish or cancel one",
			u.GPUsHeld, add.GPUs, l.MaxGPUs)
	}
	if l.GPUHours > 0 && add.GPUs > 0 {
		if used := u.GPUHours(l.Window); used >= l.GPUHours {
			return l.hoursRefused(LimitGPUHours, l.GPUHours, used, u.Runs, u.At, add.GPUs,
				fmt.Sprintf("GPU-hour limit reached: you used %.1f of %g GPU-hours", used, l.GPUHours), "your running jobs")
		}
	}
	if add.GPUs > 0 {
		for _, p := range l.Pools {
			runs := u.PoolRuns[p.Group]
			if used := GPUHours(runs, u.At, l.Window); used >= p.GPUHours {
				e := l.hoursRefused(LimitPool, p.GPUHours, used, runs, u.At, add.GPUs,
					fmt.Sprintf("group budget reached: group %s used %.1f of its shared %g GPU-hours", p.Group, used, p.GPUHours), "the group's running jobs")
				e.Details["group"] = p.Group
				return e
			}
		}
	}
	return nil
}

// hoursRefused is the ETooMany of a GPU-hour budget (the user's or a pool's) that
// runs used up by at: what, the window, and when it frees up (or that holders alone
// hold it).
func (l Limits) hoursRefused(limit string, budget, used float64, runs []Run, at time.Time, requested int, what, holders string) *job.Error {
	e := tooMany(limit, budget, round(used), requested, "")
	e.Details["window_seconds"] = int64(l.Window / time.Second)
	msg := what + " in the last " + FormatWindow(l.Window)
	if t, ok := FreesAt(runs, at, l.Window, budget); ok {
		e.Details["frees_at"] = t.UTC().Format(time.RFC3339)
		msg += fmt.Sprintf("; it frees up at %s (in %s)", t.UTC().Format(time.RFC3339), t.Sub(at).Round(time.Minute))
	} else {
		msg += "; " + holders + " alone hold it, so it frees up only after they end"
	}
	e.Message = msg
	return e
}

func tooMany(limit string, max, used any, requested int, format string, a ...any) *job.Error {
	e := job.Errorf(job.ETooMany, format, a...)
	e.Details = map[string]any{"limit": limit, "max": max, "used": used, "requested": requested}
	return e
}

// round keeps two decimals, for details.
func round(h float64) float64 { return math.Round(h*100) / 100 }

// FormatWindow writes a window as people say it: 7d, 36h, 90m.
func FormatWindow(d time.Duration) string {
	switch {
	case d >= 24*time.Hour && d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d >= time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}
