// Package slurm submits, controls and observes Slurm batch jobs on a cluster's login
// node through a Runner (an SSH connection pool such as *sshconn.Pool), as the job's
// Unix user.
//
// Every command is built as an argv and quoted by sshconn.Quote, the one quoting
// function; the batch script is rendered from sbatch-templates/ (or an admin override
// directory) with Go text/template and validated, typed values only. Every value
// outside its typed domain is refused before any remote call with a *job.Error
// (code job.EInvalid) naming the field and the rule.
//
// Errors: stderr is classified against a table of the exact messages Slurm prints
// (errors.go, captured from Slurm 22.05 in testdata/capture). sbatch rejections that
// the client caused (unknown partition, node configuration not available, invalid
// GRES, limits/QOS) are *job.Error with code job.EUnprocessable; a controller or login
// node that cannot be reached is job.EUnavailable; a message the table does not know
// is job.EUnavailable with cause ErrUnknown (retried, never blamed on the request).
// The wrapped cause is one of the Err* sentinels below, for errors.Is.
//
// Polling is tiered: one `squeue -h -t all` for all the given ids, then one batched
// `sacct -n -P -X --duplicates` only for the ids squeue no longer knows. Every Status
// carries the job's owner (Status.User) as Slurm printed it; callers must drop rows
// whose owner is not the job's. Output read through a user's login is under that
// user's control (startup files, PATH), so it may only decide that user's own jobs:
// cluster-wide reads (Poll of many users' jobs, Capacity) belong to the probe account
// (Options.ProbeUser), a site-controlled account that owns no jobs. A purged id
// (squeue answers "Invalid job id specified") never blinds the poll of the others.
package slurm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/ftgate/ftgate/internal/job"
)

// Runner is the one SSH method this package needs; *sshconn.Pool implements it.
// A non-zero exit must come back as an error carrying the exit status through an
// ExitStatus() int method or as *sshconn.ExitError.
type Runner interface {
	Run(ctx context.Context, user string, argv []string, stdin io.Reader) (stdout, stderr []byte, err error)
}

// Sentinel causes wrapped by this package's *job.Error values.
var (
	ErrUnknownPartition = errors.New("unknown partition")
	ErrNodeConfig       = errors.New("requested node configuration is not available")
	ErrInvalidGRES      = errors.New("invalid generic resource specification")
	ErrLimits           = errors.New("job violates account, QOS or partition limits")
	ErrController       = errors.New("slurm controller unreachable")
	ErrInvalidJob       = errors.New("unknown or purged slurm job")
	ErrPending          = errors.New("job is pending")
	ErrState            = errors.New("job state does not allow the action")
	ErrForbidden        = errors.New("not the job's owner")
	ErrRejected         = errors.New("sbatch refused an option value")
	ErrUnknown          = errors.New("unrecognised slurm error")
	ErrNoProbe          = errors.New("no probe account configured")
)

// Options are a cluster's Slurm settings (built from config.Cluster by
// internal/wiring; this package does not import config).
type Options struct {
	Cluster          string        // cluster name, for messages
	SlurmConf        string        // exported as SLURM_CONF for every command when set
	JobRoot          string        // <job_root>/<user>/<job-id>/
	Partitions       []string      // allowed partitions
	DefaultPartition string        // used when a request names none
	Account          string        // --account when set
	GPUType          string        // default GPU type (gpu:<type>:<n>) when set
	Python           string        // interpreter on the compute nodes
	TrainerDir       string        // PYTHONPATH for `python -m ftgate_trainer`
	GPUStat          string        // optional ftgate-gpustat binary (GPU sampler)
	TemplateDir      string        // admin override of the embedded templates
	CheckpointSignal string        // USR1 USR2 TERM INT HUP URG (default USR2)
	SignalLead       time.Duration // --signal=B:SIG@<lead seconds> (default 90s)
	RestartBudget    int           // requeues the batch script may do itself on exit 75
	ProbeUser        string        // trusted account for capacity reads ("" = no capacity check)
	Now              func() time.Time
}

// Request is one job's Slurm request: the typed values the template receives.
type Request struct {
	JobID            string // gateway job id (tag), job.IDRE
	User             string // Unix account; the job directory is <job_root>/<user>/<job-id>
	Partition        string // "" = Options.DefaultPartition; must be in Options.Partitions
	QOS              string // optional, ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$
	Nodes            int    // 1..256; 0 = 1
	ProcsPerNode     int    // trainer processes per node, 1..64; 0 = GPUs (or 1 without GPUs)
	GPUs             int    // per node, 0..64
	GPUType          string // optional, overrides Options.GPUType; same pattern as QOS
	CPUs             int    // per node, 1..1024
	MemoryMB         int    // per node, 1..16777216
	TimeLimitMinutes int    // 1..525600
}

// Submitted is the result of a successful sbatch.
type Submitted struct {
	ID      string // Slurm job id
	Cluster string // cluster name from "id;cluster", if sbatch printed one
	Script  string // the script that was submitted
}

// State is a Slurm job state as squeue/sacct print it (without "by N").
type State string

// Job states.
const (
	StatePending     State = "PENDING"
	StateRunning     State = "RUNNING"
	StateSuspended   State = "SUSPENDED"
	StateCompleting  State = "COMPLETING"
	StateConfiguring State = "CONFIGURING"
	StateRequeued    State = "REQUEUED"
	StateResizing    State = "RESIZING"
	StateCompleted   State = "COMPLETED"
	StateFailed      State = "FAILED"
	StateCancelled   State = "CANCELLED"
	StateTimeout     State = "TIMEOUT"
	StatePreempted   State = "PREEMPTED"
	StateNodeFail    State = "NODE_FAIL"
	StateOutOfMemory State = "OUT_OF_MEMORY"
	StateBootFail    State = "BOOT_FAIL"
	StateDeadline    State = "DEADLINE"
	StateSpecialExit State = "SPECIAL_EXIT"
	StateRevoked     State = "REVOKED"
)

// Terminal reports whether s is a final state (COMPLETING is not).
func (s State) Terminal() bool {
	switch s {
	case StateCompleted, StateFailed, StateCancelled, StateTimeout, StatePreempted, StateNodeFail,
		StateOutOfMemory, StateBootFail, StateDeadline, StateRevoked:
		return true
	}
	return false
}

// Status is the observed state of one Slurm job.
type Status struct {
	ID           string    // the id as polled (array tasks: 123_4)
	User         string    // the job's owner as Slurm printed it
	State        State     // normalised state
	CancelledBy  string    // uid from "CANCELLED by N"
	Reason       string    // squeue/sacct reason, e.g. "job requeued in held state", "None"
	Held         bool      // PENDING because of a user/admin hold or a requeuehold
	RequeuedHeld bool      // PENDING after requeuehold ("job requeued in held state")
	ExitCode     int       // from "a:b", a
	ExitSignal   int       // from "a:b", b
	Restarts     int       // squeue RestartCnt, or the number of earlier sacct runs
	Start, End   time.Time // zero when unknown
	Partition    string
	NodeList     string
	Source       string // "squeue" or "sacct"
	Runs         []Run  // earlier runs from sacct --duplicates (REQUEUED, PREEMPTED, NODE_FAIL...)
}

// Run is one earlier run of a requeued job, from sacct --duplicates.
type Run struct {
	State      State
	ExitCode   int
	ExitSignal int
	Start, End time.Time
}

// Found is a job located by FindByTag.
type Found struct {
	ID    string
	State State
}

// Capacity is the cluster's nodes and partitions.
type Capacity struct {
	Nodes      []Node
	Partitions []Partition
}

// Node is one compute node.
type Node struct {
	Name          string
	State         string // e.g. IDLE, MIXED, ALLOCATED, DOWN*, IDLE+DRAIN
	Available     bool   // can start jobs (not down/drained/fail/unknown)
	Partitions    []string
	CPUs          int
	CPUsAlloc     int
	MemoryMB      int
	MemoryAllocMB int
	GPUs          int
	GPUsAlloc     int
	GPUType       string // from Gres=gpu:<type>:<n>, empty when untyped
}

// Partition is one partition with its nodes' totals.
type Partition struct {
	Name            string
	State           string // UP, DOWN, DRAIN, INACTIVE
	Default         bool
	Nodes           []string
	MaxNodes        int // 0 = unlimited
	CPUs            int
	CPUsAlloc       int
	GPUs            int
	GPUsAlloc       int
	MemoryMB        int
	MemoryAllocMB   int
	MaxNodeCPUs     int // largest node
	MaxNodeGPUs     int
	MaxNodeMemoryMB int
}

// File is one file returned by ReadFiles.
type File struct {
	Path      string
	Exists    bool   // false when missing or unreadable
	Data      []byte // at most maxEach bytes
	Truncated bool   // the file was larger than maxEach
}

var (
	signalRE = regexp.MustCompile(`^(USR1|USR2|TERM|INT|HUP|URG)$`)
	// safePathRE: absolute paths the batch script may name in #SBATCH lines.
	safePathRE = regexp.MustCompile(`^(/[A-Za-z0-9_.+@-]+)+/?$|^/$`)
)

// Tag is the job name and comment value that identifies a gateway job in Slurm.
func Tag(jobID string) string { return "ftgate-" + jobID }

// JobDir returns <root>/<user>/<job-id>.
func JobDir(root, user, jobID string) string {
	return strings.TrimRight(root, "/") + "/" + user + "/" + jobID
}

// invalid returns a job.EInvalid error naming field and the rule it broke.
func invalid(field, format string, a ...any) error {
	return job.Errorf(job.EInvalid, "%s: %s", field, fmt.Sprintf(format, a...))
}
