package slurm

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestMarkHeld: a job an admin holds (scontrol hold as root) is held like a user hold,
// and only pending jobs are held.
func TestMarkHeld(t *testing.T) {
	tests := []struct {
		state            State
		reason           string
		held, requeueHld bool
	}{
		{StatePending, "JobHeldUser", true, false},
		{StatePending, "JobHeldAdmin", true, false},
		{StatePending, "job requeued in held state", true, true},
		{StatePending, "job_requeued_in_held_state", true, true},
		{StatePending, "Priority", false, false},
		{StateRunning, "JobHeldAdmin", false, false},
		{StateCancelled, "JobHeldUser", false, false},
	}
	for _, tt := range tests {
		s := Status{State: tt.state, Reason: tt.reason}
		markHeld(&s)
		if s.Held != tt.held || s.RequeuedHeld != tt.requeueHld {
			t.Errorf("%s %q: held %v requeued-held %v, want %v %v", tt.state, tt.reason, s.Held, s.RequeuedHeld, tt.held, tt.requeueHld)
		}
	}
	line := "40|40|N/A|PENDING|0|0|N/A|N/A|gpu||alice|JobHeldAdmin|\n"
	rows, err := parseSqueue(line)
	if err != nil || len(rows) != 1 || !rows[0].st.Held {
		t.Fatalf("squeue admin hold: %+v %v", rows, err)
	}
}

// TestParseStateSuffixes: the "+" some Slurm versions append (CANCELLED+ in sacct when
// a step was cancelled too) is not part of the state, with or without "by <uid>".
func TestParseStateSuffixes(t *testing.T) {
	tests := []struct {
		in    string
		state State
		by    string
	}{
		{"RUNNING", StateRunning, ""},
		{"CANCELLED+", StateCancelled, ""},
		{" TIMEOUT+ ", StateTimeout, ""},
		{"CANCELLED by 1001", StateCancelled, "1001"},
		{"CANCELLED+ by 0", StateCancelled, "0"},
	}
	for _, tt := range tests {
		st, by := parseState(tt.in)
		if st != tt.state || by != tt.by {
			t.Errorf("parseState(%q) = %q, %q; want %q, %q", tt.in, st, by, tt.state, tt.by)
		}
		if !st.Terminal() && tt.state.Terminal() {
			t.Errorf("parseState(%q) = %q is not terminal", tt.in, st)
		}
	}
	rows, err := parseSacct("41|41|ftgate-x|gpu|alice|CANCELLED+|0:15|2026-11-29T14:00:00|2026-11-29T14:01:00|vm|None\n")
	if err != nil || len(rows) != 1 || rows[0].st.State != StateCancelled {
		t.Fatalf("sacct CANCELLED+: %+v %v", rows, err)
	}
}

// TestMergeRunsTieBreak: two records of one job with the same start (a requeue within
// the second) are ordered by end, the one still open being current, whatever order
// sacct prints them in.
func TestMergeRunsTieBreak(t *testing.T) {
	start := time.Date(2026, 11, 29, 14, 0, 0, 0, time.Local)
	ended := row{id: "50", raw: "50", st: Status{State: StatePreempted, Start: start, End: start.Add(time.Second)}}
	open := row{id: "50", raw: "50", st: Status{State: StateRunning, Start: start}}
	later := row{id: "50", raw: "50", st: Status{State: StateCompleted, Start: start, End: start.Add(5 * time.Second)}}
	tests := []struct {
		name string
		rows []row
		cur  State
		runs string
	}{
		{"open after ended", []row{ended, open}, StateRunning, "PREEMPTED"},
		{"open before ended", []row{open, ended}, StateRunning, "PREEMPTED"},
		{"later end first", []row{later, ended}, StateCompleted, "PREEMPTED"},
		{"later end last", []row{ended, later}, StateCompleted, "PREEMPTED"},
		{"three", []row{open, later, ended}, StateRunning, "PREEMPTED,COMPLETED"},
	}
	for _, tt := range tests {
		s := mergeRuns(append([]row(nil), tt.rows...))
		var runs []string
		for _, r := range s.Runs {
			runs = append(runs, string(r.State))
		}
		if s.State != tt.cur || strings.Join(runs, ",") != tt.runs || s.Restarts != len(runs) {
			t.Errorf("%s: current %s runs %v restarts %d; want %s runs %s", tt.name, s.State, runs, s.Restarts, tt.cur, tt.runs)
		}
	}
}

// TestPollMatchesRawID: an array task asked for by its raw job id (the id sbatch
// printed for it) is found although squeue and sacct display it as <array>_<task>.
func TestPollMatchesRawID(t *testing.T) {
	squeueOut := "60|59|1|RUNNING|0|0|2026-11-29T14:17:04|NONE|gpu|vm|alice|None|\n"
	sacctOut := "59_2|61|ftgate-y|gpu|alice|COMPLETED|0:0|2026-11-29T14:00:00|2026-11-29T14:01:00|vm|None\n"
	r := &fakeRunner{handlers: map[string]func([]string) (string, string, int){
		"squeue": func([]string) (string, string, int) { return squeueOut, "", 0 },
		"sacct":  func([]string) (string, string, int) { return sacctOut, "", 0 },
	}}
	c := newTestClient(t, r, nil)
	st, err := c.Poll(context.Background(), "alice", []string{"60", "61"})
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := st["60"]; !ok || s.State != StateRunning || s.ID != "60" || s.Source != "squeue" {
		t.Errorf("60 by raw id in squeue: %+v (present %v)", s, ok)
	}
	if s, ok := st["61"]; !ok || s.State != StateCompleted || s.ID != "61" || s.Source != "sacct" {
		t.Errorf("61 by raw id in sacct: %+v (present %v)", s, ok)
	}
	if st, err = c.Poll(context.Background(), "alice", []string{"59_1"}); err != nil || st["59_1"].State != StateRunning {
		t.Errorf("59_1 by display id: %+v, %v", st, err)
	}
}
