package slurm

import (
	"fmt"
	"strings"

	"github.com/ftgate/ftgate/internal/job"
)

// kind is what a Slurm message means for the gateway.
type kind int

const (
	kindUnknown    kind = iota // not in the table: a retryable error
	kindController             // slurmctld or slurmdbd unreachable: EUnavailable, retryable
	kindPartition              // unknown partition: EUnprocessable
	kindNodeConfig             // no node can run the request: EUnprocessable
	kindGRES                   // unknown GPU type: EUnprocessable
	kindLimits                 // account, QOS, association or time limits: EUnprocessable
	kindSpec                   // sbatch refused an option value: EUnprocessable
	kindInvalidJob             // unknown or purged job id: ENotFound
	kindPending                // the job has not started: EConflict
	kindState                  // the job's state does not allow the action: EConflict
	kindForbidden              // not the job's owner: EForbidden
)

// message is one exact message Slurm prints on stderr.
type message struct {
	text string
	kind kind
}

// messages are the stderr texts the client recognises, matched as substrings of the
// whole stderr, first match wins. Each is printed by Slurm 22.05 (captured in
// testdata/capture/slurm-22.05-messages.txt and sbatch-errors.txt, see
// TestMessagesAreCaptured) or documented by Slurm's slurm_errno.c for the same
// errno. Anything else is kindUnknown: a retryable error, never a user error.
var messages = []message{
	// Controller and database (errno SLURM_PROTOCOL_SOCKET_IMPL_TIMEOUT, ESLURM_DB_CONNECTION...).
	{"Unable to contact slurm controller", kindController},
	{"Socket timed out on send/recv operation", kindController},
	{"Slurm backup controller in standby mode", kindController},
	{"Zero Bytes were transmitted or received", kindController},
	{"Problem talking to the database", kindController},
	{"Unable to connect to database", kindController},
	{"Could not establish a configuration source", kindController},
	{"Transport endpoint is not connected", kindController},
	// sbatch rejections.
	{"Invalid partition name specified", kindPartition},
	{"invalid partition specified", kindPartition},
	{"Requested node configuration is not available", kindNodeConfig},
	{"Memory specification can not be satisfied", kindNodeConfig},
	{"More processors requested than permitted", kindNodeConfig},
	{"Node count specification invalid", kindNodeConfig},
	{"Invalid generic resource (gres) specification", kindGRES},
	{"Invalid Trackable RESource (TRES) specification", kindGRES},
	{"Job violates accounting/QOS policy", kindLimits},
	{"Invalid qos specification", kindLimits},
	{"Invalid account or account/partition combination specified", kindLimits},
	{"Requested time limit is invalid (missing or exceeds some limit)", kindLimits},
	{"Requested partition configuration not available now", kindLimits},
	{"Invalid --time specification", kindSpec},
	// Job control.
	{"Invalid job id specified", kindInvalidJob},
	{"Job is pending execution", kindPending},
	{"Job can not be altered now, try again later", kindState},
	{"Job has already finished", kindState},
	{"Job is no longer pending execution", kindState},
	{"Requested operation is presently disabled", kindState},
	{"Job is not suspended", kindState},
	{"Access/permission denied", kindForbidden},
	{"Invalid user id", kindForbidden},
}

// classify returns the kind of the first known message in stderr.
func classify(stderr string) (kind, string) {
	for _, m := range messages {
		if strings.Contains(stderr, m.text) {
			return m.kind, m.text
		}
	}
	return kindUnknown, ""
}

// controllerDown reports whether stderr says slurmctld (or slurmdbd) cannot be reached.
func controllerDown(stderr string) bool {
	k, _ := classify(stderr)
	return k == kindController
}

func unavailable(cmd, stderr string) error {
	return &job.Error{Code: job.EUnavailable, Message: "the Slurm controller is unreachable; try again later",
		Err: fmt.Errorf("%s: %w: %s", cmd, ErrController, firstLine(stderr))}
}

// retryable is an error Slurm printed that the table does not know: the caller
// retries it (job.EUnavailable), it never blames the request.
func retryable(cmd string, status int, stderr string) error {
	return &job.Error{Code: job.EUnavailable, Message: fmt.Sprintf("%s failed (exit %d); retrying", cmd, status),
		Err: fmt.Errorf("%s exited %d: %w: %s", cmd, status, ErrUnknown, firstLine(stderr))}
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

// submitError maps sbatch's stderr to a typed error.
func submitError(stderr string, status int) error {
	msg := strings.TrimSpace(stderr)
	if i := strings.LastIndex(msg, "Batch job submission failed: "); i >= 0 {
		msg = firstLine(msg[i+len("Batch job submission failed: "):])
	} else {
		msg = firstLine(strings.TrimPrefix(msg, "sbatch: error: "))
	}
	unproc := func(cause error, text string) error {
		return &job.Error{Code: job.EUnprocessable, Message: text, Err: fmt.Errorf("sbatch: %w: %s", cause, msg)}
	}
	k, _ := classify(stderr)
	switch k {
	case kindController:
		return unavailable("sbatch", stderr)
	case kindPartition:
		return unproc(ErrUnknownPartition, "resources.partition: the cluster does not know this partition")
	case kindNodeConfig:
		return unproc(ErrNodeConfig, "resources: no node of the partition has that many GPUs, CPUs or that much memory ("+msg+")")
	case kindGRES:
		return unproc(ErrInvalidGRES, "resources.gpu_type: the cluster does not offer this GPU type ("+msg+")")
	case kindLimits:
		return unproc(ErrLimits, "resources: the request exceeds an account, QOS or partition limit ("+msg+")")
	case kindSpec:
		return unproc(ErrRejected, "sbatch refused the job: "+msg)
	}
	return retryable("sbatch", status, stderr)
}

// controlError maps the stderr of a failed scontrol/scancel action to a typed error.
func controlError(args []string, id, stderr string, status int) error {
	what := strings.Join(args, " ")
	k, _ := classify(stderr)
	switch k {
	case kindController:
		return unavailable(what, stderr)
	case kindInvalidJob:
		return &job.Error{Code: job.ENotFound, Message: "Slurm no longer knows job " + id, Err: fmt.Errorf("%s: %w", what, ErrInvalidJob)}
	case kindPending:
		return &job.Error{Code: job.EConflict, Message: "Slurm job " + id + " has not started yet", Err: fmt.Errorf("%s: %w", what, ErrPending)}
	case kindState:
		return &job.Error{Code: job.EConflict, Message: "Slurm job " + id + " is not in a state that allows this (" + firstLine(stderr) + ")",
			Err: fmt.Errorf("%s exited %d: %w", what, status, ErrState)}
	case kindForbidden:
		return &job.Error{Code: job.EForbidden, Message: "not allowed to act on Slurm job " + id,
			Err: fmt.Errorf("%s exited %d: %w", what, status, ErrForbidden)}
	}
	return retryable(what+" "+id, status, stderr)
}
