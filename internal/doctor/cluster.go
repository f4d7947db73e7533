package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pkg/sftp"

	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/slurm"
	"github.com/ftgate/ftgate/internal/sshconn"
	"github.com/ftgate/ftgate/internal/wiring"
)

// clusterCheck holds what one cluster's checks share.
type clusterCheck struct {
	r     *run
	idx   int
	cl    *config.Cluster
	pool  *sshconn.Pool
	slurm *slurm.Client
	user  string
}

func (c *clusterCheck) key(f string) string { return fmt.Sprintf("clusters[%d].%s", c.idx, f) }

func (c *clusterCheck) result(name string) Result { return Result{Name: c.cl.Name + ": " + name} }

// argv prefixes a Slurm command with SLURM_CONF when the cluster sets one.
func (c *clusterCheck) argv(args ...string) []string {
	if c.cl.SlurmConf == "" {
		return args
	}
	return append([]string{"env", "SLURM_CONF=" + c.cl.SlurmConf}, args...)
}

// runAs runs argv as the probe user and returns stdout, stderr and the error.
func (c *clusterCheck) runAs(ctx context.Context, argv ...string) (string, string, error) {
	o, e, err := c.pool.Run(ctx, c.user, argv, nil)
	return string(o), string(e), err
}

// cluster runs the checks of one cluster in order. After a failed host key or login
// the remaining checks cannot run and print skip lines.
func (r *run) cluster(ctx context.Context, idx int, cl *config.Cluster) {
	c := &clusterCheck{r: r, idx: idx, cl: cl, user: cl.ProbeUser}
	later := []string{"login", "scontrol ping", "partitions", "gpu type", "job_root", "trainer", "signal lead"}
	skipRest := func(from int, why string) {
		for _, n := range later[from:] {
			res := c.result(n)
			res.Status, res.Detail = Skip, why
			r.add(res)
		}
	}
	scfg, err := wiring.SSHConfig(cl)
	if err == nil {
		scfg.Logger = r.o.Logger
		scfg.CommandTimeout = r.o.TrainerTimeout
		scfg.DialAttempts = 1
		c.pool, err = sshconn.New(scfg)
	}
	if err == nil {
		defer c.pool.Close()
		c.slurm, err = slurm.New(c.pool, wiring.SlurmOptions(cl))
	}
	if err != nil {
		res := c.result("host key")
		res.Status, res.Detail = Fail, errText(err)
		res.Fix = "check " + c.key("known_hosts") + ", " + c.key("user_ca_key") + " / service_key and " + c.key("template_dir")
		r.add(res)
		skipRest(0, "no SSH configuration")
		return
	}
	res := c.hostKey(ctx)
	r.add(res)
	if res.Status == Fail {
		skipRest(0, "host key not verified")
		return
	}
	res = c.login(ctx)
	r.add(res)
	if res.Status == Fail {
		skipRest(1, "cannot log in")
		return
	}
	r.add(c.ping(ctx))
	limits, lerr := c.partitionLimits(ctx)
	for _, p := range cl.Partitions {
		r.add(c.partition(ctx, p))
	}
	r.add(c.gpuType(ctx))
	r.add(c.jobRoot(ctx))
	r.add(c.trainer(ctx))
	r.add(c.signalLead(limits, lerr))
}

func (c *clusterCheck) hostKey(ctx context.Context) Result {
	res := c.result("host key")
	ctx, cancel := c.r.timeout(ctx)
	defer cancel()
	err := c.pool.CheckHostKey(ctx)
	switch {
	case err == nil:
		res.Status, res.Detail = OK, fmt.Sprintf("%s:%d presents the key pinned in %s", c.cl.Host, c.cl.Port, c.cl.KnownHosts)
	case errors.Is(err, sshconn.ErrHostKey):
		res.Status, res.Detail = Fail, errText(err)
		res.Fix = "if the login node's key really changed, replace its line in " + c.cl.KnownHosts +
			" with `ssh-keyscan -p " + strconv.Itoa(c.cl.Port) + " " + c.cl.Host + "` output verified out of band (or pin a @cert-authority)"
	default:
		res.Status, res.Detail = Fail, errText(err)
		res.Fix = "check " + c.key("host") + "/" + c.key("port") + " and that sshd listens and the firewall admits the gateway"
	}
	return res
}

func (c *clusterCheck) login(ctx context.Context) Result {
	res := c.result("login")
	if c.user == "" {
		res.Status, res.Detail = Fail, errNoProbeUser.Error()
		res.Fix = "set " + c.key("probe_user") + " to an ordinary cluster account that may run squeue/sinfo/sbatch --test-only"
		return res
	}
	ctx, cancel := c.r.timeout(ctx)
	defer cancel()
	out, _, err := c.runAs(ctx, "id", "-un")
	mode := "certificate"
	if c.cl.ServiceKey != "" {
		mode = "service key"
	}
	switch {
	case err == nil:
		res.Status, res.Detail = OK, fmt.Sprintf("%s login as %s works (remote id: %s)", mode, c.user, strings.TrimSpace(out))
	case errors.Is(err, sshconn.ErrAuth) && c.cl.ServiceKey == "":
		res.Status, res.Detail = Fail, errText(err)
		res.Fix = "put `gateway ca` output in the login node's TrustedUserCAKeys file and let principal " + c.user +
			" log in as itself (no AuthorizedPrincipalsFile entry, or one listing it); see docs/deploy.md"
	case errors.Is(err, sshconn.ErrAuth):
		res.Status, res.Detail = Fail, errText(err)
		res.Fix = "add the service key's public half to ~" + c.cl.ServiceUser + "/.ssh/authorized_keys"
	default:
		res.Status, res.Detail = Fail, errText(err)
		res.Fix = "check that " + c.user + " has a POSIX login shell on the login node"
	}
	return res
}

func (c *clusterCheck) ping(ctx context.Context) Result {
	res := c.result("scontrol ping")
	ctx, cancel := c.r.timeout(ctx)
	defer cancel()
	out, stderr, err := c.runAs(ctx, c.argv("scontrol", "ping")...)
	if err == nil && strings.Contains(out, "is UP") {
		res.Status, res.Detail = OK, oneLine(out)
		return res
	}
	res.Status = Fail
	res.Detail = firstNonEmpty(oneLine(stderr), oneLine(out), errText(err))
	res.Fix = "start slurmctld, or set " + c.key("slurm_conf") + " so the login node finds the controller"
	return res
}

// partition submits nothing: `sbatch --test-only` asks the controller whether a
// one-minute job could run in p as the probe user.
func (c *clusterCheck) partition(ctx context.Context, p string) Result {
	res := c.result("partition " + p)
	ctx, cancel := c.r.timeout(ctx)
	defer cancel()
	args := []string{"sbatch", "--test-only", "--partition=" + p, "--nodes=1", "--ntasks=1", "--time=1",
		"--job-name=ftgate-doctor", "--output=/dev/null"}
	if c.cl.Account != "" {
		args = append(args, "--account="+c.cl.Account)
	}
	_, stderr, err := c.runAs(ctx, c.argv(append(args, "--wrap=true")...)...)
	if err == nil {
		res.Status, res.Detail = OK, "sbatch --test-only accepts it: "+strings.TrimPrefix(oneLine(stderr), "sbatch: ")
		return res
	}
	res.Status, res.Detail = Fail, firstNonEmpty(oneLine(stderr), errText(err))
	switch {
	case strings.Contains(stderr, "invalid partition"):
		res.Fix = "remove " + p + " from " + c.key("partitions") + " or define it in slurm.conf"
	case strings.Contains(strings.ToLower(stderr), "account"):
		res.Fix = "give " + c.user + " (and your users) an association with " + c.key("account") + " in sacctmgr"
	default:
		res.Fix = "make the partition usable for " + c.user + " (AllowAccounts/AllowGroups, State=UP)"
	}
	return res
}

// gpuType checks that the configured GPU type exists in the GRES of the allowed
// partitions' nodes (and reports what exists when none is configured).
func (c *clusterCheck) gpuType(ctx context.Context) Result {
	res := c.result("gpu type")
	ctx, cancel := c.r.timeout(ctx)
	defer cancel()
	capa, err := c.slurm.Capacity(ctx, c.user)
	if err != nil {
		res.Status, res.Detail, res.Fix = Fail, errText(err), "check that "+c.user+" may run `scontrol show node`"
		return res
	}
	allowed := map[string]bool{}
	for _, p := range c.cl.Partitions {
		allowed[p] = true
	}
	types := map[string]int{} // type ("" untyped) -> GPUs in allowed partitions
	for _, n := range capa.Nodes {
		in := false
		for _, p := range n.Partitions {
			in = in || allowed[p]
		}
		if in && n.GPUs > 0 {
			types[n.GPUType] += n.GPUs
		}
	}
	var have []string
	for t, n := range types {
		if t == "" {
			t = "(untyped)"
		}
		have = append(have, fmt.Sprintf("%s×%d", t, n))
	}
	sort.Strings(have)
	switch {
	case c.cl.GPUType == "" && len(types) == 0:
		res.Status, res.Detail = Warn, "no node of the allowed partitions has a gpu GRES"
		res.Fix = "add Gres=gpu:<n> to the nodes and GresTypes=gpu to slurm.conf, or expect CPU-only jobs"
	case c.cl.GPUType == "":
		res.Status, res.Detail = OK, "gpu_type not set (jobs request gpu:<n>); GRES in allowed partitions: "+strings.Join(have, ", ")
	case types[c.cl.GPUType] > 0:
		res.Status, res.Detail = OK, fmt.Sprintf("gpu:%s exists (%s)", c.cl.GPUType, strings.Join(have, ", "))
	default:
		res.Status, res.Detail = Fail, fmt.Sprintf("no node of the allowed partitions has gpu:%s; found: %s", c.cl.GPUType, firstNonEmpty(strings.Join(have, ", "), "none"))
		res.Fix = "set " + c.key("gpu_type") + " to one of the types found, or leave it empty"
	}
	return res
}

// jobRoot checks that <job_root> is a directory other users cannot tamper with, and
// that the probe user's <job_root>/<user> is theirs, private, or can be created.
func (c *clusterCheck) jobRoot(ctx context.Context) Result {
	res := c.result("job_root")
	ctx, cancel := c.r.timeout(ctx)
	defer cancel()
	root := strings.TrimRight(c.cl.JobRoot, "/")
	fi, err := c.pool.Stat(ctx, c.user, root)
	if err != nil {
		res.Status, res.Detail = Fail, fmt.Sprintf("%s: %s", root, errText(err))
		res.Fix = "create " + root + " on the shared filesystem (visible on login and compute nodes), root-owned, mode 0755 or 1777"
		return res
	}
	rm := fi.Mode()
	if !fi.IsDir() {
		res.Status, res.Detail, res.Fix = Fail, root+" is not a directory", "point "+c.key("job_root")+" at a directory"
		return res
	}
	if rm.Perm()&0o002 != 0 && rm&fs.ModeSticky == 0 {
		res.Status, res.Detail = Fail, fmt.Sprintf("%s is world-writable without the sticky bit (%s): users could replace each other's directories", root, rm)
		res.Fix = "chmod 1777 " + root + " (or 0755 with one directory per user)"
		return res
	}
	dir := root + "/" + c.user
	ufi, err := c.pool.Stat(ctx, c.user, dir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) && !isNotExist(err) {
			res.Status, res.Detail, res.Fix = Fail, fmt.Sprintf("%s: %s", dir, errText(err)), "make "+dir+" readable by "+c.user
			return res
		}
		if rm.Perm()&0o002 != 0 {
			res.Status, res.Detail = OK, fmt.Sprintf("%s %s; %s does not exist yet, the first job creates it (0700)", root, rm, path.Base(dir))
			return res
		}
		res.Status, res.Detail = Fail, fmt.Sprintf("%s %s is not writable by users and %s does not exist", root, rm, dir)
		res.Fix = fmt.Sprintf("create <job_root>/<user> for every user, owned by them, mode 0700 (install -d -o %s -m 0700 %s), or chmod 1777 %s", c.user, dir, root)
		return res
	}
	um := ufi.Mode()
	owner := -1
	if st, ok := ufi.Sys().(*sftp.FileStat); ok {
		owner = int(st.UID)
	}
	uidOut, _, _ := c.runAs(ctx, "id", "-u")
	uid, _ := strconv.Atoi(strings.TrimSpace(uidOut))
	switch {
	case !ufi.IsDir():
		res.Status, res.Detail, res.Fix = Fail, dir+" is not a directory", "remove it; the gateway creates "+dir+"/<job-id>/"
	case owner >= 0 && owner != uid:
		res.Status, res.Detail = Fail, fmt.Sprintf("%s is owned by uid %d, not %s (uid %d)", dir, owner, c.user, uid)
		res.Fix = fmt.Sprintf("chown %s %s", c.user, dir)
	case um.Perm()&0o022 != 0:
		res.Status, res.Detail = Fail, fmt.Sprintf("%s is %s: others can write into it", dir, um)
		res.Fix = "chmod 0700 " + dir
	case um.Perm()&0o077 != 0:
		res.Status, res.Detail = Warn, fmt.Sprintf("%s is %s: others can read job files", dir, um)
		res.Fix = "chmod 0700 " + dir
	default:
		res.Status, res.Detail = OK, fmt.Sprintf("%s %s; %s %s owned by %s", root, rm, dir, um, c.user)
	}
	return res
}

func isNotExist(err error) bool {
	var se *sftp.StatusError
	return errors.As(err, &se) && se.FxCode() == sftp.ErrSSHFxNoSuchFile
}

// trainerCheck is what `python -m ftgate_trainer --check` prints.
type trainerCheck struct {
	OK           bool              `json:"ok"`
	Trainer      string            `json:"trainer"`
	Python       string            `json:"python"`
	Torch        *string           `json:"torch"`
	Transformers *string           `json:"transformers"`
	PEFT         *string           `json:"peft"`
	CUDADevices  []string          `json:"cuda_devices"`
	Missing      []string          `json:"missing"`
	Errors       map[string]string `json:"errors"`
}

// trainer runs `python -m ftgate_trainer --check` as a one-task job on a compute
// node of the default partition, with the PYTHONPATH the batch template sets.
func (c *clusterCheck) trainer(ctx context.Context) Result {
	res := c.result("trainer")
	ctx, cancel := context.WithTimeout(ctx, c.r.o.TrainerTimeout)
	defer cancel()
	// 2 GiB: importing torch, transformers and peft takes about 600 MB, more than a
	// small DefMemPerCPU allows.
	args := []string{"srun", "--partition=" + c.cl.DefaultPartition, "--nodes=1", "--ntasks=1", "--time=3",
		"--mem=2048", "--job-name=ftgate-doctor", "--quiet"}
	if c.cl.Account != "" {
		args = append(args, "--account="+c.cl.Account)
	}
	args = append(args, "env")
	if c.cl.TrainerDir != "" {
		args = append(args, "PYTHONPATH="+c.cl.TrainerDir)
	}
	args = append(args, c.cl.Python, "-m", "ftgate_trainer", "--check")
	out, stderr, err := c.runAs(ctx, c.argv(args...)...)
	fix := "build the trainer venv on the shared filesystem and set " + c.key("python") + " to its python and " +
		c.key("trainer_dir") + " to the directory holding ftgate_trainer/ (docs/deploy.md)"
	var rep trainerCheck
	lines := strings.Split(strings.TrimSpace(out), "\n")
	jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &rep)
	if jerr != nil {
		res.Status, res.Fix = Fail, fix
		res.Detail = fmt.Sprintf("%s -m ftgate_trainer --check on partition %s: %s", c.cl.Python, c.cl.DefaultPartition,
			firstNonEmpty(cause(stderr), errText(err), "printed no report"))
		return res
	}
	v := func(p *string) string {
		if p == nil {
			return "missing"
		}
		return *p
	}
	gpus := "no CUDA devices"
	if len(rep.CUDADevices) > 0 {
		gpus = fmt.Sprintf("%d CUDA devices (%s)", len(rep.CUDADevices), strings.Join(rep.CUDADevices, ", "))
	}
	res.Detail = fmt.Sprintf("on a %s node: python %s, torch %s, transformers %s, peft %s, %s", c.cl.DefaultPartition,
		rep.Python, v(rep.Torch), v(rep.Transformers), v(rep.PEFT), gpus)
	switch {
	case !rep.OK || err != nil:
		var errs []string
		for k, e := range rep.Errors {
			errs = append(errs, k+": "+e)
		}
		sort.Strings(errs)
		res.Status, res.Fix = Fail, fix
		res.Detail += "; " + oneLine(strings.Join(errs, "; "))
	case len(rep.Missing) > 0:
		res.Status = Warn
		if len(rep.Missing) == 1 && rep.Missing[0] == "bitsandbytes" {
			res.Fix = "optional: install bitsandbytes (the trainer's quant extra, CUDA only) in the trainer venv for 8/4-bit QLoRA"
		} else {
			res.Fix = "install " + strings.Join(rep.Missing, " and ") + " in the trainer venv: Hugging Face models need them (the tiny model runs without)"
		}
	default:
		res.Status = OK
	}
	return res
}

// partitionLimit is a partition's MaxTime (0: unlimited).
type partitionLimit struct {
	MaxTime time.Duration
	Raw     string
}

func (c *clusterCheck) partitionLimits(ctx context.Context) (map[string]partitionLimit, error) {
	ctx, cancel := c.r.timeout(ctx)
	defer cancel()
	out, stderr, err := c.runAs(ctx, c.argv("scontrol", "show", "partition", "-o")...)
	if err != nil {
		return nil, fmt.Errorf("scontrol show partition: %s", firstNonEmpty(oneLine(stderr), errText(err)))
	}
	return parsePartitionLimits(out)
}

func parsePartitionLimits(out string) (map[string]partitionLimit, error) {
	res := map[string]partitionLimit{}
	for _, line := range strings.Split(out, "\n") {
		var name, maxTime string
		for _, f := range strings.Fields(line) {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "PartitionName":
				name = v
			case "MaxTime":
				maxTime = v
			}
		}
		if name == "" {
			continue
		}
		d, err := parseSlurmTime(maxTime)
		if err != nil {
			return nil, fmt.Errorf("partition %s MaxTime: %w", name, err)
		}
		res[name] = partitionLimit{MaxTime: d, Raw: maxTime}
	}
	return res, nil
}

// parseSlurmTime parses a Slurm time limit: UNLIMITED/INFINITE (0), [D-]HH:MM:SS,
// MM:SS or minutes.
func parseSlurmTime(s string) (time.Duration, error) {
	switch s {
	case "UNLIMITED", "INFINITE", "NONE", "":
		return 0, nil
	}
	days := 0
	if d, rest, ok := strings.Cut(s, "-"); ok {
		n, err := strconv.Atoi(d)
		if err != nil {
			return 0, fmt.Errorf("bad time %q", s)
		}
		days, s = n, rest
	}
	parts := strings.Split(s, ":")
	nums := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bad time %q", s)
		}
		nums[i] = n
	}
	var h, m, sec int
	switch len(nums) {
	case 1:
		m = nums[0]
		if days > 0 {
			h, m = nums[0], 0
		}
	case 2:
		m, sec = nums[0], nums[1]
		if days > 0 {
			h, m, sec = nums[0], nums[1], 0
		}
	case 3:
		h, m, sec = nums[0], nums[1], nums[2]
	default:
		return 0, fmt.Errorf("bad time %q", s)
	}
	return time.Duration(days)*24*time.Hour + time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second, nil
}

// signalLead checks that the checkpoint signal, sent signal_lead before the limit,
// leaves time to train in every allowed partition: the lead must be under half the
// partition's MaxTime.
func (c *clusterCheck) signalLead(limits map[string]partitionLimit, err error) Result {
	res := c.result("signal lead")
	if err != nil {
		res.Status, res.Detail, res.Fix = Fail, errText(err), "check that "+c.user+" may run `scontrol show partition`"
		return res
	}
	lead := c.cl.SignalLead
	var seen, bad []string
	for _, p := range c.cl.Partitions {
		l, ok := limits[p]
		if !ok {
			continue // the partition line already failed
		}
		seen = append(seen, p+" MaxTime="+l.Raw)
		if l.MaxTime > 0 && 2*lead > l.MaxTime {
			bad = append(bad, fmt.Sprintf("%s (MaxTime %s)", p, l.Raw))
		}
	}
	switch {
	case len(bad) > 0:
		res.Status = Fail
		res.Detail = fmt.Sprintf("signal_lead %s is more than half the time limit of %s", lead, strings.Join(bad, ", "))
		res.Fix = "lower " + c.key("signal_lead") + " (it must cover one checkpoint save) or raise the partitions' MaxTime"
	case len(seen) == 0:
		res.Status, res.Detail = Skip, "no allowed partition exists"
	default:
		res.Status, res.Detail = OK, fmt.Sprintf("signal_lead %s fits %s", lead, strings.Join(seen, ", "))
	}
	return res
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// cause picks the line of a failed srun's stderr that says why: the last one that is
// not srun's own summary, else srun's last line.
func cause(stderr string) string {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" && !strings.HasPrefix(l, "srun: ") {
			return oneLine(l)
		}
	}
	return oneLine(lines[len(lines)-1])
}
