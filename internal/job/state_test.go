package job

import (
	"fmt"
	"testing"
)

// TestTransitions checks every (from, to) pair of states against the expected table.
func TestTransitions(t *testing.T) {
	t.Parallel()
	legal := map[string]bool{
		"submitting->queued": true, "submitting->failed": true, "submitting->cancelled": true,
		"queued->running": true, "queued->paused": true, "queued->succeeded": true, "queued->failed": true, "queued->cancelled": true,
		"running->queued": true, "running->pausing": true, "running->succeeded": true, "running->failed": true, "running->cancelled": true,
		"pausing->paused": true, "pausing->running": true, "pausing->succeeded": true, "pausing->failed": true, "pausing->cancelled": true,
		"paused->queued": true, "paused->submitting": true, "paused->failed": true, "paused->cancelled": true,
	}
	n := 0
	for _, from := range States {
		for _, to := range States {
			key := fmt.Sprintf("%s->%s", from, to)
			want := legal[key]
			if got := CanTransition(from, to); got != want {
				t.Errorf("CanTransition(%s) = %v, want %v", key, got, want)
			}
			err := Transition(from, to)
			if want && err != nil {
				t.Errorf("Transition(%s) = %v, want nil", key, err)
			}
			if !want && ErrorCode(err) != EConflict {
				t.Errorf("Transition(%s) = %v, want a conflict", key, err)
			}
			if want {
				n++
			}
		}
	}
	if n != len(legal) {
		t.Errorf("table has %d legal transitions, expected list has %d", n, len(legal))
	}
}

func TestStateProperties(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s                       State
		terminal, active, valid bool
	}{
		{Submitting, false, true, true},
		{Queued, false, true, true},
		{Running, false, true, true},
		{Pausing, false, true, true},
		{Paused, false, true, true},
		{Succeeded, true, false, true},
		{Failed, true, false, true},
		{Cancelled, true, false, true},
		{"bogus", false, false, false},
	}
	for _, tt := range tests {
		if tt.s.Terminal() != tt.terminal || tt.s.Active() != tt.active || tt.s.Valid() != tt.valid {
			t.Errorf("%s: terminal=%v active=%v valid=%v, want %v %v %v", tt.s, tt.s.Terminal(), tt.s.Active(), tt.s.Valid(), tt.terminal, tt.active, tt.valid)
		}
		for _, to := range States {
			if tt.s.Terminal() && CanTransition(tt.s, to) {
				t.Errorf("terminal %s has a transition to %s", tt.s, to)
			}
		}
	}
	if got := len(NonTerminal()); got != 5 {
		t.Errorf("NonTerminal() has %d states, want 5", got)
	}
}
