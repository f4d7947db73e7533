// Package worker is the one shape of the gateway's background services (submitter,
// reconciler, retainer): a pass run at start and then every interval, sooner when
// woken, until the context ends, optionally only while this replica leads; plus the
// shared clock and logger defaults.
package worker

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Lease is a held leadership; *postgres.Leader implements it.
type Lease interface {
	Check(ctx context.Context) error
	Release()
}

// Loop runs Pass until the context ends.
type Loop struct {
	// Name prefixes the loop's log messages ("reconciler", "submit", "retention").
	Name string
	// Interval between passes (required).
	Interval time.Duration
	// Wake, when set, starts the next pass at once.
	Wake <-chan struct{}
	// Lead, when set, asks for leadership; nil, nil means another replica leads.
	// Passes run only while a lease is held.
	Lead func(ctx context.Context) (Lease, error)
	// Hold keeps a lease across passes, checking it before each one and asking
	// again an interval after it is lost; without Hold a lease is taken for each pass
	// and released after it (the pass is skipped while another replica leads).
	Hold bool
	// Pass is one unit of work; its error is logged.
	Pass func(ctx context.Context) error
	Log  *slog.Logger
}

// Run runs the loop until ctx ends.
func (l *Loop) Run(ctx context.Context) {
	if l.Lead != nil && l.Hold {
		l.runHolding(ctx)
		return
	}
	l.every(ctx, func() bool {
		if l.Lead == nil {
			l.pass(ctx)
			return true
		}
		lease, err := l.Lead(ctx)
		if err != nil && ctx.Err() == nil {
			l.log().Warn(l.Name+": leader lock", "err", err)
		}
		if lease != nil {
			l.pass(ctx)
			lease.Release()
		}
		return true
	})
}

// runHolding waits for leadership, then runs passes until ctx ends or the lease is
// lost, then waits for leadership again.
func (l *Loop) runHolding(ctx context.Context) {
	for ctx.Err() == nil {
		lease, err := l.Lead(ctx)
		if err != nil || lease == nil {
			if err != nil {
				l.log().Warn(l.Name+": leader lock", "err", err)
			}
			Sleep(ctx, l.Interval)
			continue
		}
		l.log().Info(l.Name + ": leading")
		l.every(ctx, func() bool {
			if err := lease.Check(ctx); err != nil {
				l.log().Warn(l.Name+": lost the lease", "err", err)
				return false
			}
			l.pass(ctx)
			return true
		})
		lease.Release()
		l.log().Info(l.Name + ": stopped leading")
	}
}

// every runs step now and then every interval (or on Wake) while it returns true and
// ctx lasts.
func (l *Loop) every(ctx context.Context, step func() bool) {
	t := time.NewTicker(l.Interval)
	defer t.Stop()
	for step() {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-l.Wake:
		}
	}
}

func (l *Loop) pass(ctx context.Context) {
	if err := l.Pass(ctx); err != nil && ctx.Err() == nil {
		l.log().Warn(l.Name+" pass failed", "err", err)
	}
}

func (l *Loop) log() *slog.Logger { return Logger(l.Log) }

// Sleep waits d or until ctx ends.
func Sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Logger returns l, or slog.Default() when l is nil.
func Logger(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return slog.Default()
}

// Now returns now(), or time.Now() when now is nil.
func Now(now func() time.Time) time.Time {
	if now != nil {
		return now()
	}
	return time.Now()
}

// ReleaseFunc is a Lease held for one pass: Check always succeeds, Release calls it.
type ReleaseFunc func()

// Check implements Lease.
func (ReleaseFunc) Check(context.Context) error { return nil }

// Release implements Lease.
func (f ReleaseFunc) Release() { f() }

// Backoff is the delay before retry number attempt (1 for the first retry): lo
// doubling per attempt up to hi, with ±20% jitter so that failures at the same moment
// do not retry in step.
func Backoff(attempt int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
