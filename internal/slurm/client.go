package slurm

import (
	"context"
	"errors"
	"fmt"
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

	mu        sync.Mutex
	capCache  *Capacity
	capAt     time.Time
	capFlight *capFlight
}

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
	return c.runArgv(ctx, user, stdin, c.argv(args...))
}

// runArgv is run without the SLURM_CONF prefix: argv sets it itself.
func (c *Client) runArgv(ctx context.Context, user string, stdin string, argv []string) (stdout, stderr string, status int, err error) {
	var in *strings.Reader
	if stdin != "" {
		in = strings.NewReader(stdin)
	}
	var o, e []byte
	if in != nil {
		o, e, err = c.r.Run(ctx, user, argv, in)
	} else {
		o, e, err = c.r.Run(ctx, user, argv, nil)
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
		return "", retryable(name, status, stderr)
	}
	return out, nil
}

// Submit validates req, refuses requests the partition can never run (Capacity.Fits),
// renders the script and pipes it to
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
	if err := c.fits(ctx, part, req); err != nil {
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

// fits refuses, before sbatch, what the partition can never run (Capacity.Fits on
// the probe account's cached capacity). Without a probe account, or when capacity
// cannot be read, sbatch alone decides (it refuses impossible requests itself).
func (c *Client) fits(ctx context.Context, part string, req Request) error {
	capy, err := c.CachedCapacity(ctx)
	if err != nil {
		return nil
	}
	return capy.Fits(part, max(req.Nodes, 1), req.CPUs, req.GPUs, req.MemoryMB)
}
