package slurm

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"text/template"
	"time"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/sshconn"
	sbatchtemplates "github.com/ftgate/ftgate/sbatch-templates"
)

// ScriptData is everything a batch template receives: validated, typed values only.
// Templates write paths and command words through the `q` function (sshconn.Quote).
type ScriptData struct {
	JobName           string // Tag(job id)
	Comment           string // Tag(job id)
	Partition         string
	Account           string // may be empty
	QOS               string // may be empty
	Nodes             int    // one torchrun agent per node
	ProcsPerNode      int    // torchrun --nproc-per-node: GPUs per node, or CPU processes (gloo)
	CPUs              int    // per node
	MemoryMB          int    // per node
	GPUs              int    // per node
	GRES              string // gpu:<n> or gpu:<type>:<n>
	TimeLimitMinutes  int
	JobDir            string // absolute, matches a strict path pattern
	Signal            string // USR1 USR2 TERM INT HUP URG
	SignalLeadSeconds int
	Python            string
	TrainerDir        string
	GPUStat           string // the ftgate-gpustat binary; may be empty
	RestartBudget     int
}

// loadTemplate parses the train template from dir, or the embedded default.
func loadTemplate(dir string) (*template.Template, error) {
	var fsys fs.FS = sbatchtemplates.FS
	if dir != "" {
		if _, err := os.Stat(filepath.Join(dir, sbatchtemplates.Train)); err != nil {
			return nil, fmt.Errorf("template_dir: %w", err)
		}
		fsys = os.DirFS(dir)
	}
	b, err := fs.ReadFile(fsys, sbatchtemplates.Train)
	if err != nil {
		return nil, fmt.Errorf("read template %s: %w", sbatchtemplates.Train, err)
	}
	t, err := template.New(sbatchtemplates.Train).
		Option("missingkey=error").
		Funcs(template.FuncMap{"q": sshconn.Quote}).
		Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("parse template %s: %w", sbatchtemplates.Train, err)
	}
	return t, nil
}

// scriptData validates req against the options and builds the template's data.
func (c *Client) scriptData(req Request) (ScriptData, error) {
	if !job.ValidID(req.JobID) {
		return ScriptData{}, invalid("job_id", "must match %s, got %q", job.IDRE, req.JobID)
	}
	if !job.UserRE.MatchString(req.User) {
		return ScriptData{}, invalid("user", "must match %s, got %q", job.UserRE, req.User)
	}
	part := req.Partition
	if part == "" {
		part = c.opts.DefaultPartition
	}
	if !job.NameRE.MatchString(part) {
		return ScriptData{}, invalid("resources.partition", "must match %s, got %q", job.NameRE, part)
	}
	if !contains(c.opts.Partitions, part) {
		return ScriptData{}, invalid("resources.partition", "%q is not one of the partitions allowed on cluster %s: %v",
			part, c.opts.Cluster, c.opts.Partitions)
	}
	if req.QOS != "" && !job.NameRE.MatchString(req.QOS) {
		return ScriptData{}, invalid("resources.qos", "must match %s, got %q", job.NameRE, req.QOS)
	}
	gpuType := req.GPUType
	if gpuType == "" {
		gpuType = c.opts.GPUType
	}
	if gpuType != "" && !job.NameRE.MatchString(gpuType) {
		return ScriptData{}, invalid("resources.gpu_type", "must match %s, got %q", job.NameRE, gpuType)
	}
	if req.GPUs < 0 || req.GPUs > 64 {
		return ScriptData{}, invalid("resources.gpus", "must be between 0 and 64, got %d", req.GPUs)
	}
	nodes, procs := req.Nodes, req.ProcsPerNode
	if nodes == 0 {
		nodes = 1
	}
	if procs == 0 {
		procs = max(req.GPUs, 1)
	}
	if nodes < 1 || nodes > 256 {
		return ScriptData{}, invalid("resources.nodes", "must be between 1 and 256, got %d", nodes)
	}
	if procs < 1 || procs > 64 {
		return ScriptData{}, invalid("distributed.processes_per_node", "must be between 1 and 64, got %d", procs)
	}
	if req.GPUs > 0 && procs != req.GPUs {
		return ScriptData{}, invalid("distributed.processes_per_node", "must equal resources.gpus (%d), got %d", req.GPUs, procs)
	}
	if req.CPUs < 1 || req.CPUs > 1024 {
		return ScriptData{}, invalid("resources.cpus", "must be between 1 and 1024, got %d", req.CPUs)
	}
	if req.MemoryMB < 1 || req.MemoryMB > 1<<24 {
		return ScriptData{}, invalid("resources.memory_mb", "must be between 1 and %d, got %d", 1<<24, req.MemoryMB)
	}
	if req.TimeLimitMinutes < 1 || req.TimeLimitMinutes > 525600 {
		return ScriptData{}, invalid("resources.time_limit_minutes", "must be between 1 and 525600, got %d", req.TimeLimitMinutes)
	}
	dir := JobDir(c.opts.JobRoot, req.User, req.JobID)
	if !safePathRE.MatchString(dir) {
		return ScriptData{}, invalid("job_root", "job directory %q must match %s", dir, safePathRE)
	}
	gres := ""
	if req.GPUs > 0 {
		gres = fmt.Sprintf("gpu:%d", req.GPUs)
		if gpuType != "" {
			gres = fmt.Sprintf("gpu:%s:%d", gpuType, req.GPUs)
		}
	}
	lead := int(c.opts.SignalLead / time.Second)
	// Never ask for the signal earlier than the job may run.
	if max := req.TimeLimitMinutes * 60 / 2; lead > max {
		lead = max
	}
	return ScriptData{
		JobName:           Tag(req.JobID),
		Comment:           Tag(req.JobID),
		Partition:         part,
		Account:           c.opts.Account,
		QOS:               req.QOS,
		Nodes:             nodes,
		ProcsPerNode:      procs,
		CPUs:              req.CPUs,
		MemoryMB:          req.MemoryMB,
		GPUs:              req.GPUs,
		GRES:              gres,
		TimeLimitMinutes:  req.TimeLimitMinutes,
		JobDir:            dir,
		Signal:            c.opts.CheckpointSignal,
		SignalLeadSeconds: lead,
		Python:            c.opts.Python,
		TrainerDir:        c.opts.TrainerDir,
		GPUStat:           c.opts.GPUStat,
		RestartBudget:     c.opts.RestartBudget,
	}, nil
}

// Render validates req and returns the batch script (the dry-run path).
func (c *Client) Render(req Request) (string, error) {
	d, err := c.scriptData(req)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := c.tmpl.Execute(&b, d); err != nil {
		return "", fmt.Errorf("render batch script: %w", err)
	}
	return b.String(), nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
