package worker

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

type lease struct{ checks, released atomic.Int32 }

func (l *lease) Check(context.Context) error {
	if l.checks.Add(1) > 2 {
		return errors.New("connection lost")
	}
	return nil
}
func (l *lease) Release() { l.released.Add(1) }

// TestHoldingLoop: passes run only while the lease holds; a lost lease is released
// and leadership asked for again.
func TestHoldingLoop(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l := &lease{}
	var tries, passes atomic.Int32
	loop := &Loop{Name: "t", Interval: time.Millisecond, Hold: true,
		Lead: func(context.Context) (Lease, error) {
			switch tries.Add(1) {
			case 1:
				return nil, nil // another replica leads
			case 2:
				return l, nil
			}
			cancel()
			return nil, nil
		},
		Pass: func(context.Context) error { passes.Add(1); return nil }}
	loop.Run(ctx)
	if l.released.Load() != 1 || passes.Load() != 2 || tries.Load() < 3 {
		t.Fatalf("released %d, passes %d, tries %d; want 1, 2, >=3", l.released.Load(), passes.Load(), tries.Load())
	}
}

// TestWake: a wake runs the next pass before the interval.
func TestWake(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	wake := make(chan struct{}, 1)
	var passes atomic.Int32
	loop := &Loop{Name: "t", Interval: time.Hour, Wake: wake, Pass: func(context.Context) error {
		if passes.Add(1) == 3 {
			cancel()
		}
		return nil
	}}
	done := make(chan struct{})
	go func() { loop.Run(ctx); close(done) }()
	for passes.Load() < 3 && ctx.Err() == nil {
		select {
		case wake <- struct{}{}:
		default:
		}
		time.Sleep(time.Millisecond)
	}
	<-done
	if passes.Load() != 3 || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("%d passes (%v), want 3 through wakes within the hour-long interval", passes.Load(), ctx.Err())
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		attempt int
		lo, hi  time.Duration
		want    time.Duration
	}{
		{1, time.Second, time.Hour, time.Second},
		{2, time.Second, time.Hour, 2 * time.Second},
		{5, time.Second, time.Hour, 16 * time.Second},
		{0, time.Second, time.Hour, time.Second},
		{13, 10 * time.Second, time.Hour, time.Hour},
		{1000, 10 * time.Second, time.Hour, time.Hour},
		{3, 100 * time.Millisecond, 250 * time.Millisecond, 250 * time.Millisecond},
	} {
		for range 20 {
			got := Backoff(tc.attempt, tc.lo, tc.hi)
			if got < tc.want*8/10 || got > tc.want*12/10 {
				t.Fatalf("Backoff(%d, %s, %s) = %s, want %s ±20%%", tc.attempt, tc.lo, tc.hi, got, tc.want)
			}
		}
	}
}
