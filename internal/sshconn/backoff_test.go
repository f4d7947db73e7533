package sshconn

import (
	"testing"
	"time"
)

// TestBackoff: 200 ms doubled per attempt, capped at 5 s (also when the shift
// overflows), each with ±50% jitter.
func TestBackoff(t *testing.T) {
	for _, c := range []struct {
		attempt int
		base    time.Duration
	}{
		{1, 200 * time.Millisecond},
		{2, 400 * time.Millisecond},
		{5, 3200 * time.Millisecond},
		{6, 5 * time.Second}, // 6.4 s capped
		{20, 5 * time.Second},
		{80, 5 * time.Second}, // the shift overflows to 0
	} {
		for range 20 {
			if d := backoff(c.attempt); d < c.base/2 || d >= c.base/2+c.base {
				t.Errorf("backoff(%d) = %v, want in [%v, %v)", c.attempt, d, c.base/2, c.base/2+c.base)
			}
		}
	}
}
