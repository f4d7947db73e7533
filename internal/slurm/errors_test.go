package slurm

import (
	"errors"
	"strings"
	"testing"

	"github.com/ftgate/ftgate/internal/job"
)

// capturedCase is one "### who: command" block of slurm-22.05-messages.txt.
type capturedCase struct {
	cmd, out string
}

func capturedCases(t *testing.T) []capturedCase {
	t.Helper()
	var cases []capturedCase
	for _, b := range strings.Split(capture("slurm-22.05-messages.txt"), "### ")[1:] {
		head, body, _ := strings.Cut(b, "\n")
		_, cmd, _ := strings.Cut(head, ": ")
		cases = append(cases, capturedCase{cmd: cmd, out: body})
	}
	if len(cases) < 20 {
		t.Fatalf("%d captured cases", len(cases))
	}
	return cases
}

// documented are table entries not (yet) seen on the dev stack, with Slurm's errno
// text from slurm_errno.c of 22.05.
var documented = map[string]bool{
	"Socket timed out on send/recv operation":                         true, // SLURM_PROTOCOL_SOCKET_IMPL_TIMEOUT
	"Slurm backup controller in standby mode":                         true, // ESLURM_IN_STANDBY_MODE
	"Zero Bytes were transmitted or received":                         true, // SLURM_PROTOCOL_SOCKET_ZERO_BYTES_SENT
	"Unable to connect to database":                                   true, // ESLURM_DB_CONNECTION
	"Could not establish a configuration source":                      true, // configless slurmctld unreachable
	"Transport endpoint is not connected":                             true, // ENOTCONN
	"More processors requested than permitted":                        true, // ESLURM_TOO_MANY_REQUESTED_CPUS
	"Node count specification invalid":                                true, // ESLURM_INVALID_NODE_COUNT
	"Invalid Trackable RESource (TRES) specification":                 true, // ESLURM_INVALID_TRES
	"Job violates accounting/QOS policy":                              true, // ESLURM_ACCOUNTING_POLICY
	"Invalid qos specification":                                       true, // ESLURM_INVALID_QOS
	"Invalid account or account/partition combination specified":      true, // ESLURM_INVALID_ACCOUNT
	"Requested time limit is invalid (missing or exceeds some limit)": true, // ESLURM_INVALID_TIME_LIMIT
	"Requested partition configuration not available now":             true, // ESLURM_REQUESTED_PART_CONFIG_UNAVAILABLE
	"Job is no longer pending execution":                              true, // ESLURM_JOB_NOT_PENDING
	"Requested operation is presently disabled":                       true, // ESLURM_DISABLED
	"Job is not suspended":                                            true, // ESLURM_JOB_NOT_SUSPENDED
}

// TestMessagesAreCaptured: every message of the table was printed by the real Slurm
// (captured) or is listed with its errno as documented.
func TestMessagesAreCaptured(t *testing.T) {
	all := capture("slurm-22.05-messages.txt") + capture("sbatch-errors.txt") + capture("squeue-unknown-single.txt")
	for _, m := range messages {
		if !strings.Contains(all, m.text) && !documented[m.text] {
			t.Errorf("message %q is neither captured nor documented", m.text)
		}
		if strings.Contains(all, m.text) && documented[m.text] {
			t.Errorf("message %q is captured now: drop it from documented", m.text)
		}
	}
}

// TestClassifyCaptured: what each captured failure means, from its real output.
func TestClassifyCaptured(t *testing.T) {
	want := map[string]kind{
		"sbatch --parsable -p gpu --gres=gpu:5 --wrap true":   kindNodeConfig,
		"sbatch --parsable -p nosuch --wrap true":             kindPartition,
		"sbatch --parsable -p gpu --gres=foo:1 --wrap true":   kindGRES,
		"sbatch --parsable -p gpu --mem=20000000 --wrap true": kindNodeConfig,
		"sbatch --parsable -p gpu --time=abc --wrap true":     kindSpec,
		"squeue -h -j 999999":                                 kindInvalidJob,
		"scontrol hold 999999":                                kindInvalidJob,
		"scontrol release 999999":                             kindInvalidJob,
		"scontrol requeue 999999":                             kindInvalidJob,
		"scontrol requeuehold 999999":                         kindInvalidJob,
		"scontrol requeue 31":                                 kindPending,
		"scontrol hold 30":                                    kindState,
		"scontrol release 31":                                 kindForbidden,
		"scontrol requeuehold 30":                             kindForbidden,
		"scancel 30":                                          kindForbidden, // bob's; the later "scancel 30" (controller down) is checked below
		"squeue -h":                                           kindController,
		"sbatch --parsable -p gpu --wrap true":                kindController,
		"scontrol show node -o":                               kindController,
		"sacct -n -P -X -j 30":                                kindController,
		"scontrol hold 31":                                    kindForbidden, // bob's; the controller-down one is "Unexpected message received": unknown
		"scancel --batch --signal=USR2 31":                    kindUnknown,   // timed out
		"scontrol ping":                                       kindUnknown,   // "Slurmctld(primary) at vm is DOWN": /ready reads the exit status
		"scancel 999999":                                      kindUnknown,   // rc 0, nothing printed
		"scancel --batch --signal=USR2 2 (first capture run; the second run timed out after 60 s: Slurm retries the signal of a pending job)": kindState,
	}
	seen := map[string]bool{}
	for _, c := range capturedCases(t) {
		k, _ := classify(c.out)
		w, ok := want[c.cmd]
		if !ok {
			t.Errorf("captured %q has no expectation", c.cmd)
			continue
		}
		if seen[c.cmd] { // second occurrence: the controller-down variants
			switch c.cmd {
			case "scancel 30":
				w = kindController
			case "scontrol hold 31":
				w = kindUnknown
			}
		}
		seen[c.cmd] = true
		if k != w {
			t.Errorf("%q: kind %d, want %d; output:\n%s", c.cmd, k, w, c.out)
		}
	}
}

// TestUnknownIsRetryable: text the table does not know is EUnavailable (retried),
// whatever English words it contains; control and query errors alike.
func TestUnknownIsRetryable(t *testing.T) {
	for _, stderr := range []string{"", "limit exceeded somewhere\n", "QOS qos time limit AssocMax\n", "Unexpected message received\n"} {
		if err := controlError([]string{"scontrol", "hold"}, "5", stderr, 1); job.ErrorCode(err) != job.EUnavailable || !errors.Is(err, ErrUnknown) {
			t.Errorf("control %q: %v", stderr, err)
		}
		if err := submitError(stderr, 1); job.ErrorCode(err) != job.EUnavailable || !errors.Is(err, ErrUnknown) {
			t.Errorf("sbatch %q: %v", stderr, err)
		}
	}
}
