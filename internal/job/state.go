package job

import "slices"

// State is the gateway state of a job, what users see. The raw Slurm state is kept
// separately (Job.SlurmState).
type State string

// Job states.
const (
	Submitting State = "submitting"
	Queued     State = "queued"
	Running    State = "running"
	Pausing    State = "pausing"
	Paused     State = "paused"
	Succeeded  State = "succeeded"
	Failed     State = "failed"
	Cancelled  State = "cancelled"
)

// States lists every state in lifecycle order.
var States = []State{Submitting, Queued, Running, Pausing, Paused, Succeeded, Failed, Cancelled}

// transitions is the one table of legal state changes. Every state change in the
// store is checked against it and written as UPDATE ... WHERE state = from.
//
//   - submitting -> queued once sbatch answered; paused -> submitting when a resume
//     finds the Slurm job purged and the same job directory is submitted again.
//   - queued -> running, or straight to a terminal state when the job was too short
//     to be seen running; queued -> paused is a pause before start (scontrol hold).
//   - running -> queued is an automatic requeue (TIMEOUT, PREEMPTED, NODE_FAIL).
//   - running -> pausing -> paused is a pause through a checkpoint; paused -> queued is
//     a resume.
//   - every non-terminal state may be cancelled or fail.
var transitions = map[State][]State{
	Submitting: {Queued, Failed, Cancelled},
	Queued:     {Running, Paused, Succeeded, Failed, Cancelled},
	Running:    {Queued, Pausing, Succeeded, Failed, Cancelled},
	Pausing:    {Paused, Running, Succeeded, Failed, Cancelled},
	Paused:     {Queued, Submitting, Failed, Cancelled},
}

// Valid reports whether s is a known state.
func (s State) Valid() bool { return slices.Contains(States, s) }

// Terminal reports whether no transition leaves s.
func (s State) Terminal() bool { return s == Succeeded || s == Failed || s == Cancelled }

// Active reports whether the job counts against the queue quota: every unfinished
// job, paused ones included (a paused job keeps its place, so pausing jobs cannot make
// room for more).
func (s State) Active() bool { return s.Valid() && !s.Terminal() }

// ActiveStates lists the states that count against the quota.
func ActiveStates() []State { return filter(State.Active) }

// TerminalStates lists the states no transition leaves.
func TerminalStates() []State { return filter(State.Terminal) }

func filter(keep func(State) bool) []State {
	var out []State
	for _, s := range States {
		if keep(s) {
			out = append(out, s)
		}
	}
	return out
}

// CanTransition reports whether from -> to is a legal transition.
func CanTransition(from, to State) bool { return slices.Contains(transitions[from], to) }

// Transition returns nil when from -> to is legal and an EConflict error otherwise.
func Transition(from, to State) error {
	if CanTransition(from, to) {
		return nil
	}
	if from.Terminal() {
		return Errorf(EConflict, "job is %s; a finished job cannot become %s", from, to)
	}
	return Errorf(EConflict, "job is %s and cannot become %s", from, to)
}

// NonTerminal lists the states the reconciler follows.
func NonTerminal() []State { return filter(func(s State) bool { return !s.Terminal() }) }
