package slurm

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/ftgate/ftgate/internal/job"
)

// Client runs Slurm commands for one cluster. It is safe for concurrent use.
type Client struct {
	r    Runner
	opts Options
	tmpl *template.Template

	mu       sync.Mutex
	capCache *Capacity
	capAt    time.Time
}

// capacityTTL is how long Submit reuses partition sizes for its pre-check.
const capacityTTL = 30 * time.Second

// New validates o, loads the batch template (embedded, or o.TemplateDir) and returns a Client.
func New(r Runner, o Options) (*Client, error) {
	if r == nil {
		return nil, errors.New("slurm: nil Runner")
	}
	if o.CheckpointSignal == "" {
		o.CheckpointSignal = "USR2"
	}
	if o.SignalLead == 0 {
		o.SignalLead = 90 * time.Second
	}
	if o.Python == "" {
		o.Python = "python3"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.DefaultPartition == "" && len(o.Partitions) > 0 {
		o.DefaultPartition = o.Partitions[0]
	}
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("slurm options %s: %s", field, fmt.Sprintf(format, a...)))
	}
	if !signalRE.MatchString(o.CheckpointSignal) {
		bad("checkpoint_signal", "must be one of USR1 USR2 TERM INT HUP URG, got %q", o.CheckpointSignal)
	}
	if o.SignalLead < 0 || o.SignalLead > time.Hour {
		bad("signal_lead", "must be between 0 and 1h, got %v", o.SignalLead)
	}
	if o.RestartBudget < 0 || o.RestartBudget > 1000 {
		bad("restart_budget", "must be between 0 and 1000, got %d", o.RestartBudget)
	}
	if !safePathRE.MatchString(o.JobRoot) {
		bad("job_root", "must be an absolute path matching %s, got %q", safePathRE, o.JobRoot)
	}
	if len(o.Partitions) == 0 {
		bad("partitions", "needs at least one partition")
	}
	for _, p := range o.Partitions {
		if !job.NameRE.MatchString(p) {
			bad("partitions", "invalid partition name %q", p)
		}
	}
	if o.Account != "" && !job.NameRE.MatchString(o.Account) {
		bad("account", "must match %s, got %q", job.NameRE, o.Account)
	}
	if o.GPUType != "" && !job.NameRE.MatchString(o.GPUType) {
		bad("gpu_type", "must match %s, got %q", job.NameRE, o.GPUType)
	}
	for field, v := range map[string]string{"python": o.Python, "trainer_dir": o.TrainerDir, "gpustat": o.GPUStat, "slurm_conf": o.SlurmConf} {
		if strings.ContainsAny(v, "\x00\n") {
			bad(field, "must not contain NUL or newline")
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	t, err := loadTemplate(o.TemplateDir)
	if err != nil {
		return nil, err
	}
	c := &Client{r: r, opts: o, tmpl: t}
	// Render once with sample values so a broken admin template fails at start-up.
	if _, err := c.Render(Request{JobID: "check", User: "check", CPUs: 1, MemoryMB: 1, GPUs: 1, TimeLimitMinutes: 60}); err != nil {
		return nil, fmt.Errorf("slurm template: %w", err)
	}
	return c, nil
}

// argv prefixes a Slurm command with SLURM_CONF when the cluster sets one.
func (c *Client) argv(args ...string) []string {
	if c.opts.SlurmConf == "" {
		return args
	}
	return append([]string{"env", "SLURM_CONF=" + c.opts.SlurmConf}, args...)
}

// run runs a Slurm command and returns stdout, stderr and the exit status; a remote
// command that could not run at all returns err.
func (c *Client) run(ctx context.Context, user string, stdin string, args ...string) (stdout, stderr string, status int, err error) {
	var in *strings.Reader
	if stdin != "" {
		in = strings.NewReader(stdin)
	}
	var o, e []byte
	if in != nil {
		o, e, err = c.r.Run(ctx, user, c.argv(args...), in)
	} else {
		o, e, err = c.r.Run(ctx, user, c.argv(args...), nil)
	}
	if err != nil {
		var es interface{ ExitStatus() int }
		if errors.As(err, &es) {
			return string(o), string(e), es.ExitStatus(), nil
		}
		return string(o), string(e), -1, err
	}
	return string(o), string(e), 0, nil
}

// query runs a read-only Slurm command and returns its stdout; a non-zero exit becomes
// an error, EUnavailable when the controller or database cannot be reached.
func (c *Client) query(ctx context.Context, user string, args ...string) (string, error) {
	n := 1 // name the command by its leading words: "sacct", "scontrol show node"
	for n < len(args) && n < 3 && !strings.HasPrefix(args[n], "-") {
		n++
	}
	name := strings.Join(args[:n], " ")
	out, stderr, status, err := c.run(ctx, user, "", args...)
	if err != nil {
		return "", fmt.Errorf("run %s: %w", name, err)
	}
	if status != 0 {
		if controllerDown(stderr) {
			return "", unavailable(name, stderr)
		}
		return "", fmt.Errorf("%s exited %d: %s", name, status, firstLine(stderr))
	}
	return out, nil
}

// controllerDown reports whether stderr says slurmctld (or slurmdbd) cannot be reached.
func controllerDown(stderr string) bool {
	for _, s := range []string{"Unable to contact slurm controller", "Socket timed out", "Connection refused",
		"Problem talking to the database", "Slurm backup controller in standby mode", "Zero Bytes were transmitted",
		"Could not establish a configuration source", "Transport endpoint is not connected"} {
		if strings.Contains(stderr, s) {
			return true
		}
	}
	return false
}

func unavailable(cmd, stderr string) error {
	return &job.Error{Code: job.EUnavailable, Message: "the Slurm controller is unreachable; try again later",
		Err: fmt.Errorf("%s: %w: %s", cmd, ErrController, firstLine(stderr))}
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
	switch {
	case controllerDown(stderr):
		return unavailable("sbatch", stderr)
	case strings.Contains(stderr, "Invalid partition name specified"), strings.Contains(stderr, "invalid partition specified"):
		return unproc(ErrUnknownPartition, "resources.partition: the cluster does not know this partition")
	case strings.Contains(stderr, "Requested node configuration is not available"),
		strings.Contains(stderr, "Memory specification can not be satisfied"),
		strings.Contains(stderr, "More processors requested than permitted"),
		strings.Contains(stderr, "Node count specification invalid"):
		return unproc(ErrNodeConfig, "resources: no node of the partition has that many GPUs, CPUs or that much memory ("+msg+")")
	case strings.Contains(stderr, "Invalid generic resource"), strings.Contains(stderr, "Invalid Trackable RESource"):
		return unproc(ErrInvalidGRES, "resources.gpu_type: the cluster does not offer this GPU type ("+msg+")")
	case strings.Contains(stderr, "QOS"), strings.Contains(stderr, "qos"),
		strings.Contains(stderr, "Job violates accounting"), strings.Contains(stderr, "Invalid account"),
		strings.Contains(stderr, "time limit"), strings.Contains(stderr, "AssocMax"), strings.Contains(stderr, "limit"):
		return unproc(ErrLimits, "resources: the request exceeds an account, QOS or partition limit ("+msg+")")
	case strings.Contains(stderr, "Batch job submission failed"):
		return &job.Error{Code: job.EUnprocessable, Message: "sbatch refused the job: " + msg, Err: fmt.Errorf("sbatch exited %d", status)}
	}
	return fmt.Errorf("sbatch exited %d: %s", status, msg)
}

// Submit validates req, refuses requests the partition can never run (more CPUs, GPUs
// or memory than its largest node has), renders the script and pipes it to
// `sbatch --parsable` as user.
func (c *Client) Submit(ctx context.Context, user string, req Request) (Submitted, error) {
	if req.User == "" {
		req.User = user
	}
	script, err := c.Render(req)
	if err != nil {
		return Submitted{}, err
	}
	part := req.Partition
	if part == "" {
		part = c.opts.DefaultPartition
	}
	if err := c.fits(ctx, user, part, req); err != nil {
		return Submitted{}, err
	}
	out, stderr, status, err := c.run(ctx, user, script, "sbatch", "--parsable")
	if err != nil {
		return Submitted{}, fmt.Errorf("run sbatch: %w", err)
	}
	if status != 0 {
		return Submitted{}, submitError(stderr, status)
	}
	id, cluster, err := parseSubmit(out)
	if err != nil {
		return Submitted{}, err
	}
	return Submitted{ID: id, Cluster: cluster, Script: script}, nil
}

// fits refuses, before sbatch, what sbatch would accept but the partition can never run.
func (c *Client) fits(ctx context.Context, user, part string, req Request) error {
	capy, err := c.cachedCapacity(ctx, user)
	if err != nil {
		return err
	}
	p, ok := capy.Partition(part)
	if !ok {
		return &job.Error{Code: job.EUnprocessable, Message: fmt.Sprintf("resources.partition: the cluster has no partition %q", part),
			Err: ErrUnknownPartition}
	}
	tooBig := func(field string, asked, have int, unit string) error {
		return &job.Error{Code: job.EUnprocessable,
			Message: fmt.Sprintf("resources.%s: asked for %d %s, but the largest node of partition %s has %d", field, asked, unit, part, have),
			Err:     ErrNodeConfig}
	}
	switch {
	case req.CPUs > p.MaxNodeCPUs:
		return tooBig("cpus", req.CPUs, p.MaxNodeCPUs, "CPUs")
	case req.GPUs > p.MaxNodeGPUs:
		return tooBig("gpus", req.GPUs, p.MaxNodeGPUs, "GPUs")
	case req.MemoryMB > p.MaxNodeMemoryMB:
		return tooBig("memory_mb", req.MemoryMB, p.MaxNodeMemoryMB, "MB")
	}
	return nil
}

func (c *Client) cachedCapacity(ctx context.Context, user string) (*Capacity, error) {
	c.mu.Lock()
	if c.capCache != nil && c.opts.Now().Sub(c.capAt) < capacityTTL {
		capy := c.capCache
		c.mu.Unlock()
		return capy, nil
	}
	c.mu.Unlock()
	capy, err := c.Capacity(ctx, user)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.capCache, c.capAt = capy, c.opts.Now()
	c.mu.Unlock()
	return capy, nil
}

// FindByTag returns the newest Slurm job tagged with the gateway job id (squeue first,
// then sacct from since), or nil when there is none.
func (c *Client) FindByTag(ctx context.Context, user, jobID string, since time.Time) (*Found, error) {
	if !jobIDRE.MatchString(jobID) {
		return nil, invalid("job_id", "must match %s, got %q", jobIDRE, jobID)
	}
	tag := Tag(jobID)
	out, err := c.query(ctx, user, "squeue", "-h", "-t", "all", "--name="+tag, "-O", squeueFormat)
	if err != nil {
		return nil, err
	}
	rows, err := parseSqueue(out)
	if err != nil {
		return nil, err
	}
	if f := newest(rows, ""); f != nil {
		return f, nil
	}
	start := since.Add(-time.Hour).Format("2006-01-02T15:04:05")
	out, err = c.query(ctx, user, "sacct", "-n", "-P", "-X", "--name="+tag, "-S", start, "-o", sacctFormat)
	if err != nil {
		return nil, err
	}
	rows, err = parseSacct(out)
	if err != nil {
		return nil, err
	}
	return newest(rows, tag), nil
}

// newest returns the row with the highest numeric raw id (name must equal tag when set).
func newest(rows []row, tag string) *Found {
	var best *Found
	bestN := -1
	for _, r := range rows {
		if tag != "" && r.name != tag {
			continue
		}
		n, err := strconv.Atoi(r.raw)
		if err != nil {
			continue
		}
		if n > bestN {
			bestN, best = n, &Found{ID: r.id, State: r.st.State}
		}
	}
	return best
}

func checkSlurmID(id string) error {
	if !job.SlurmIDRE.MatchString(id) {
		return invalid("slurm_job_id", "must match %s, got %q", job.SlurmIDRE, id)
	}
	return nil
}

// control runs one scontrol/scancel action and maps its errors.
func (c *Client) control(ctx context.Context, user, id string, args ...string) error {
	if err := checkSlurmID(id); err != nil {
		return err
	}
	_, stderr, status, err := c.run(ctx, user, "", append(args, id)...)
	if err != nil {
		return fmt.Errorf("run %s: %w", args[0], err)
	}
	if status == 0 {
		return nil
	}
	return controlError(args, id, stderr, status)
}

func controlError(args []string, id, stderr string, status int) error {
	what := strings.Join(args, " ")
	switch {
	case controllerDown(stderr):
		return unavailable(what, stderr)
	case strings.Contains(stderr, "Invalid job id specified"):
		return &job.Error{Code: job.ENotFound, Message: "Slurm no longer knows job " + id, Err: fmt.Errorf("%s: %w", what, ErrInvalidJob)}
	case strings.Contains(stderr, "Job is pending execution"):
		return &job.Error{Code: job.EConflict, Message: "Slurm job " + id + " has not started yet", Err: fmt.Errorf("%s: %w", what, ErrPending)}
	case strings.Contains(stderr, "presently disabled"), strings.Contains(stderr, "no longer pending"),
		strings.Contains(stderr, "already completed"), strings.Contains(stderr, "can not be altered now"),
		strings.Contains(stderr, "Job has already finished"), strings.Contains(stderr, "not suspended"):
		return &job.Error{Code: job.EConflict, Message: "Slurm job " + id + " is not in a state that allows this (" + firstLine(stderr) + ")",
			Err: fmt.Errorf("%s exited %d", what, status)}
	case strings.Contains(stderr, "Access/permission denied"), strings.Contains(stderr, "Permission denied"):
		return &job.Error{Code: job.EForbidden, Message: "not allowed to act on Slurm job " + id, Err: fmt.Errorf("%s exited %d", what, status)}
	}
	return fmt.Errorf("%s %s exited %d: %s", what, id, status, firstLine(stderr))
}

// Cancel cancels the job; cancelling a finished or unknown job is success.
func (c *Client) Cancel(ctx context.Context, user, id string) error {
	err := c.control(ctx, user, id, "scancel")
	if errors.Is(err, ErrInvalidJob) {
		return nil
	}
	return err
}

// Signal sends the cluster's checkpoint signal to the job's batch shell
// (scancel --batch --signal). It refuses PENDING jobs with job.EConflict (ErrPending):
// Slurm would retry such a signal for about 95 s and fail.
func (c *Client) Signal(ctx context.Context, user, id string) error {
	if err := checkSlurmID(id); err != nil {
		return err
	}
	st, err := c.Poll(ctx, user, []string{id})
	if err != nil {
		return err
	}
	s, ok := st[id]
	switch {
	case !ok:
		return &job.Error{Code: job.ENotFound, Message: "Slurm no longer knows job " + id, Err: ErrInvalidJob}
	case s.State == StatePending || s.State == StateRequeued || s.State == StateConfiguring:
		return &job.Error{Code: job.EConflict, Message: "Slurm job " + id + " is pending; it cannot receive a signal", Err: ErrPending}
	case s.State != StateRunning:
		return &job.Error{Code: job.EConflict, Message: fmt.Sprintf("Slurm job %s is %s; it cannot receive a signal", id, s.State)}
	}
	return c.control(ctx, user, id, "scancel", "--batch", "--signal="+c.opts.CheckpointSignal)
}

// Hold holds a pending job (scontrol hold).
func (c *Client) Hold(ctx context.Context, user, id string) error {
	return c.control(ctx, user, id, "scontrol", "hold")
}

// Release releases a held job. It does not set StartTime=now: after a requeue Slurm
// holds the job back until requeue time + cred_expire + 1 s, and starting it earlier
// fails the run at once ("Killing non-startable batch JobId=N: Job credential revoked",
// FAILED 1:0, seen on 22.05 with a resume 0.3 s after a pause). Once that time has
// passed, release alone starts the job within a scheduling pass (0.23 s measured).
func (c *Client) Release(ctx context.Context, user, id string) error {
	return c.control(ctx, user, id, "scontrol", "release")
}

// Requeue requeues a running or finished job (scontrol requeue).
func (c *Client) Requeue(ctx context.Context, user, id string) error {
	return c.control(ctx, user, id, "scontrol", "requeue")
}

// RequeueHold requeues a job in held state (scontrol requeuehold).
func (c *Client) RequeueHold(ctx context.Context, user, id string) error {
	return c.control(ctx, user, id, "scontrol", "requeuehold")
}

// sacctBatch bounds the ids of one sacct call.
const sacctBatch = 500

// Poll returns the status of each id Slurm still knows, keyed by the id as given; ids
// unknown to both squeue and sacct are absent from the map. It issues one squeue for
// all ids and sacct (with --duplicates, in batches of 500) only for those squeue no
// longer shows.
func (c *Client) Poll(ctx context.Context, user string, ids []string) (map[string]Status, error) {
	res := map[string]Status{}
	ids = dedupe(ids)
	if len(ids) == 0 {
		return res, nil
	}
	for _, id := range ids {
		if err := checkSlurmID(id); err != nil {
			return nil, err
		}
	}
	rows, err := c.squeue(ctx, user, ids)
	if err != nil {
		return nil, err
	}
	match(ids, rows, res, nil)
	var missing []string
	for _, id := range ids {
		if _, ok := res[id]; !ok {
			missing = append(missing, id)
		}
	}
	for start := 0; start < len(missing); start += sacctBatch {
		batch := missing[start:min(start+sacctBatch, len(missing))]
		out, err := c.query(ctx, user, "sacct", "-n", "-P", "-X", "-D", "-j", strings.Join(batch, ","), "-o", sacctFormat)
		if err != nil {
			return nil, err
		}
		rows, err := parseSacct(out)
		if err != nil {
			return nil, err
		}
		match(batch, rows, res, mergeRuns)
	}
	return res, nil
}

// squeue runs the one squeue of a poll. squeue fails with "Invalid job id specified"
// when it knows none of the ids; then it is asked for all jobs and the rows filtered,
// so a purged id never hides the others.
func (c *Client) squeue(ctx context.Context, user string, ids []string) ([]row, error) {
	out, stderr, status, err := c.run(ctx, user, "", "squeue", "-h", "-t", "all", "-j", strings.Join(ids, ","), "-O", squeueFormat)
	if err != nil {
		return nil, fmt.Errorf("run squeue: %w", err)
	}
	if status != 0 && strings.Contains(stderr, "Invalid job id specified") {
		if len(ids) == 1 {
			return nil, nil
		}
		out, stderr, status, err = c.run(ctx, user, "", "squeue", "-h", "-t", "all", "-O", squeueFormat)
		if err != nil {
			return nil, fmt.Errorf("run squeue: %w", err)
		}
	}
	if status != 0 {
		if controllerDown(stderr) {
			return nil, unavailable("squeue", stderr)
		}
		return nil, fmt.Errorf("squeue exited %d: %s", status, firstLine(stderr))
	}
	return parseSqueue(out)
}

// match stores the rows of each wanted id (by display id or raw id) into res; merge
// folds several rows of one id (sacct --duplicates), nil takes the first.
func match(ids []string, rows []row, res map[string]Status, merge func([]row) Status) {
	want := map[string]string{}
	for _, id := range ids {
		want[id] = id
	}
	groups := map[string][]row{}
	for _, r := range rows {
		id, ok := want[r.id]
		if !ok {
			id, ok = want[r.raw]
		}
		if ok {
			groups[id] = append(groups[id], r)
		}
	}
	for id, g := range groups {
		var s Status
		if merge != nil {
			s = merge(g)
		} else {
			s = g[0].st
		}
		s.ID = id
		res[id] = s
	}
}

func dedupe(ids []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// Capacity returns nodes and partitions with CPU, memory and GPU totals and allocations.
func (c *Client) Capacity(ctx context.Context, user string) (*Capacity, error) {
	var outs [2]string
	for i, what := range []string{"node", "partition"} {
		out, err := c.query(ctx, user, "scontrol", "show", what, "-o")
		if err != nil {
			return nil, err
		}
		outs[i] = out
	}
	return parseCapacity(outs[0], outs[1])
}

// readFilesScript prints one line per path: "F <base64 of the first $1 bytes>" or "M".
const readFilesScript = `max=$1; shift
for f in "$@"; do
  if [ -f "$f" ] && [ -r "$f" ]; then
    printf 'F '; head -c "$max" -- "$f" | base64 | tr -d '\n'; printf '\n'
  else
    printf 'M\n'
  fi
done`

// maxReadFiles bounds the paths of one ReadFiles command.
const maxReadFiles = 1000

// ReadFiles reads many small files in one remote command, at most maxEach bytes each
// (1..8 MiB). The result is in the order of paths; missing or unreadable files have
// Exists false. The framing (one base64 line per file, in order) is unambiguous
// whatever the files contain.
func (c *Client) ReadFiles(ctx context.Context, user string, paths []string, maxEach int64) ([]File, error) {
	if maxEach < 1 || maxEach > 8<<20 {
		return nil, invalid("max_each", "must be between 1 and %d, got %d", 8<<20, maxEach)
	}
	if len(paths) > maxReadFiles {
		return nil, invalid("paths", "at most %d files per call, got %d", maxReadFiles, len(paths))
	}
	for _, p := range paths {
		if err := checkPath(p); err != nil {
			return nil, err
		}
	}
	if len(paths) == 0 {
		return nil, nil
	}
	args := append([]string{"sh", "-c", readFilesScript, "ftgate-read", strconv.FormatInt(maxEach+1, 10)}, paths...)
	out, stderr, status, err := c.run(ctx, user, "", args...)
	if err != nil {
		return nil, fmt.Errorf("read files: %w", err)
	}
	if status != 0 {
		return nil, fmt.Errorf("read files exited %d: %s", status, firstLine(stderr))
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(paths) {
		return nil, fmt.Errorf("read files: %d lines for %d paths", len(lines), len(paths))
	}
	files := make([]File, len(paths))
	for i, line := range lines {
		files[i].Path = paths[i]
		switch {
		case line == "M":
		case strings.HasPrefix(line, "F "):
			b, err := base64.StdEncoding.DecodeString(line[2:])
			if err != nil {
				return nil, fmt.Errorf("read files: %s: %w", paths[i], err)
			}
			files[i].Exists = true
			if int64(len(b)) > maxEach {
				b, files[i].Truncated = b[:maxEach], true
			}
			files[i].Data = b
		default:
			return nil, fmt.Errorf("read files: bad frame %q", firstLine(line))
		}
	}
	return files, nil
}

// checkPath applies job.CheckRemotePath, as an EInvalid error.
func checkPath(p string) error {
	if err := job.CheckRemotePath(p); err != nil {
		return invalid("path", "%v", err)
	}
	return nil
}
