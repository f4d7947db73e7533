package job

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strings"
)

// Spec is a training request: the contract between gateway, ftctl and trainer. The
// gateway writes it whole as job.json; the trainer ignores Name and Resources.
type Spec struct {
	Name            string          `json:"name,omitempty"`
	Method          string          `json:"method"`
	Model           string          `json:"model"`
	Dataset         Dataset         `json:"dataset"`
	Hyperparameters Hyperparameters `json:"hyperparameters"`
	LoRA            LoRA            `json:"lora"`
	Quantization    string          `json:"quantization"`
	Logging         Logging         `json:"logging"`
	Checkpoints     Checkpoints     `json:"checkpoints"`
	Resources       Resources       `json:"resources"`
	Distributed     Distributed     `json:"distributed"`
	// Notify is who else hears of the job (absent: only the owner's registered
	// webhooks).
	Notify *Notify `json:"notify,omitempty"`
}

// Notify names a webhook for this one job, on top of the owner's registered ones.
type Notify struct {
	Webhook *NotifyWebhook `json:"webhook,omitempty"`
}

// NotifyWebhook is a job's own webhook endpoint (notify.webhook): created with the
// job, signed with its own secret (in the submission's answer only), removed with the
// job. The gateway checks URL against its webhook allowlist and Events against the
// webhook events; no events means job.succeeded, job.failed and job.cancelled.
type NotifyWebhook struct {
	URL    string   `json:"url"`
	Events []string `json:"events,omitempty"`
}

// Dataset names JSONL files on the cluster filesystem.
type Dataset struct {
	Path     string `json:"path"`
	EvalPath string `json:"eval_path,omitempty"`
}

// Hyperparameters of the training run. MaxSteps 0 means "run Epochs epochs".
type Hyperparameters struct {
	LearningRate         float64 `json:"learning_rate"`
	Epochs               int     `json:"epochs"`
	MaxSteps             int     `json:"max_steps"`
	BatchSize            int     `json:"batch_size"`
	GradientAccumulation int     `json:"gradient_accumulation"`
	MaxLength            int     `json:"max_length"`
	WarmupSteps          int     `json:"warmup_steps"`
	Seed                 int     `json:"seed"`
	DPOBeta              float64 `json:"dpo_beta"`
	WeightDecay          float64 `json:"weight_decay"`
	// GradientCheckpointing recomputes activations in the backward pass (less memory).
	GradientCheckpointing bool `json:"gradient_checkpointing"`
	// Precision is the compute dtype: auto (bf16 on GPUs that support it, else fp32), bf16, fp16, fp32.
	Precision string `json:"precision"`
	// Packing (SFT) concatenates rows into sequences of up to MaxLength tokens.
	Packing bool `json:"packing"`
}

// LoRA configures low-rank adapters.
type LoRA struct {
	Enabled       bool     `json:"enabled"`
	R             int      `json:"r"`
	Alpha         int      `json:"alpha"`
	Dropout       float64  `json:"dropout"`
	TargetModules []string `json:"target_modules"`
	// Merge also writes the adapter merged into the base weights (model/merged/).
	Merge bool `json:"merge"`
}

// Logging sets how often the trainer logs, evaluates, checkpoints and reports progress.
type Logging struct {
	LogEvery                int `json:"log_every"`
	EvalEvery               int `json:"eval_every"`
	SaveEvery               int `json:"save_every"`
	ProgressIntervalSeconds int `json:"progress_interval_seconds"`
}

// Checkpoints sets checkpoint retention.
type Checkpoints struct {
	KeepLast int `json:"keep_last"`
	KeepBest int `json:"keep_best"`
}

// Distributed sets how the trainer's processes share the work: torchrun starts
// ProcessesPerNode processes on each of Resources.Nodes nodes.
type Distributed struct {
	// Strategy is ddp (data parallel, the default) or fsdp (sharded, full fine-tuning only).
	Strategy string `json:"strategy"`
	// ProcessesPerNode defaults to Resources.GPUs (one process per GPU), or 1 without
	// GPUs; with GPUs it must equal Resources.GPUs. CPU processes use gloo.
	ProcessesPerNode int `json:"processes_per_node"`
}

// Resources is what the job asks Slurm for. Only the gateway reads it.
type Resources struct {
	Cluster   string `json:"cluster"`
	Partition string `json:"partition"`
	// Nodes is the number of nodes (default 1); GPUs, CPUs and MemoryMB are per node.
	Nodes            int    `json:"nodes"`
	GPUs             int    `json:"gpus"`
	GPUType          string `json:"gpu_type"`
	CPUs             int    `json:"cpus"`
	MemoryMB         int    `json:"memory_mb"`
	TimeLimitMinutes int    `json:"time_limit_minutes"`
	// NoWait asks the gateway to refuse the job (409, with the free GPU count) instead
	// of queueing it when its partition has no room for it now; only on clusters
	// whose admin allows it (clusters[].allow_no_wait), and only for GPU jobs.
	NoWait bool `json:"no_wait,omitempty"`
}

// TotalGPUs is the GPUs the job holds in all: per node times nodes.
func (r Resources) TotalGPUs() int { return r.GPUs * max(r.Nodes, 1) }

// Spec methods, models and quantization modes.
const (
	MethodSFT    = "sft"
	MethodDPO    = "dpo"
	BuiltinTiny  = "builtin:tiny"
	QuantNone    = "none"
	Quant8bit    = "8bit"
	Quant4bit    = "4bit"
	MaxGPUsLimit = 64
	MaxNodes     = 256
	StrategyDDP  = "ddp"
	StrategyFSDP = "fsdp"
)

// Precisions are the values of hyperparameters.precision.
var Precisions = []string{"auto", "bf16", "fp16", "fp32"}

var moduleRE = regexp.MustCompile(`^[A-Za-z0-9_.]{1,64}$`)

// DecodeSpec reads one JSON Spec strictly (DecodeJSON).
func DecodeSpec(r io.Reader) (Spec, error) {
	var s Spec
	if err := DecodeJSON(r, &s); err != nil {
		return Spec{}, err
	}
	return s, nil
}

// DecodeJSON reads one JSON value into v strictly: unknown fields, wrong types and
// trailing data are EInvalid errors naming the field.
func DecodeJSON(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Errorf(EInvalid, "body: unexpected data after the JSON object")
	}
	return nil
}

func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return &Error{Code: EInvalid, Message: fmt.Sprintf("body: malformed JSON at byte %d: %v", syn.Offset, syn), Err: err}
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "body"
		}
		return &Error{Code: EInvalid, Message: fmt.Sprintf("field %q: want %s, got %s", field, typ.Type, typ.Value), Err: err}
	case errors.Is(err, io.EOF):
		return Errorf(EInvalid, "body: empty, want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Errorf(EInvalid, "body: truncated JSON")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return &Error{Code: EInvalid, Message: "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field "), Err: err}
	}
	return &Error{Code: EInvalid, Message: "body: " + err.Error(), Err: err}
}

// Normalize fills defaults for omitted fields. Resources.Cluster and Partition are
// filled by the gateway, which knows the clusters.
func (s *Spec) Normalize() {
	setStr := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	setInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	setStr(&s.Quantization, QuantNone)
	h := &s.Hyperparameters
	if h.LearningRate == 0 {
		h.LearningRate = 1e-4
	}
	setInt(&h.Epochs, 1)
	setInt(&h.BatchSize, 8)
	setInt(&h.GradientAccumulation, 1)
	setInt(&h.MaxLength, 512)
	if s.Method == MethodDPO && h.DPOBeta == 0 {
		h.DPOBeta = 0.1
	}
	setStr(&h.Precision, "auto")
	if s.LoRA.Enabled {
		// An empty target_modules list means the trainer's default (every linear layer of
		// the blocks; plus lm_head on builtin:tiny), see trainer/README.md.
		setInt(&s.LoRA.R, 8)
		setInt(&s.LoRA.Alpha, 2*s.LoRA.R)
	}
	setStr(&s.Distributed.Strategy, StrategyDDP)
	setInt(&s.Resources.Nodes, 1)
	if s.Resources.GPUs > 0 {
		setInt(&s.Distributed.ProcessesPerNode, s.Resources.GPUs)
	}
	setInt(&s.Distributed.ProcessesPerNode, 1)
	setInt(&s.Logging.LogEvery, 10)
	setInt(&s.Logging.EvalEvery, 50)
	setInt(&s.Logging.SaveEvery, 50)
	setInt(&s.Logging.ProgressIntervalSeconds, 5)
	setInt(&s.Checkpoints.KeepLast, 2)
	setInt(&s.Resources.CPUs, 2)
	setInt(&s.Resources.MemoryMB, 4096)
	setInt(&s.Resources.TimeLimitMinutes, 60)
}

// Validate checks every field with typed rules and returns an EUnprocessable error whose
// message names each offending field.
func (s *Spec) Validate() error { return invalidSpec(s.problems()) }

// problem is one offending field of a spec and what is wrong with it.
type problem struct{ field, msg string }

// invalidSpec is the EUnprocessable error naming each problem (nil for none).
func invalidSpec(ps []problem) error {
	if len(ps) == 0 {
		return nil
	}
	msgs := make([]string, len(ps))
	for i, p := range ps {
		msgs[i] = p.field + ": " + p.msg
	}
	return Errorf(EUnprocessable, "invalid spec: %s", strings.Join(msgs, "; "))
}

// problems lists every field that breaks the typed rules, in Validate's order.
func (s *Spec) problems() []problem {
	var ps []problem
	bad := func(field, format string, a ...any) {
		ps = append(ps, problem{field, fmt.Sprintf(format, a...)})
	}
	intIn := func(field string, v, lo, hi int) {
		if v < lo || v > hi {
			bad(field, "must be between %d and %d, got %d", lo, hi, v)
		}
	}
	floatIn := func(field string, v, lo, hi float64, openLo bool) {
		if math.IsNaN(v) || v < lo || v > hi || (openLo && v == lo) {
			op := ">="
			if openLo {
				op = ">"
			}
			bad(field, "must be %s %g and <= %g, got %g", op, lo, hi, v)
		}
	}
	if s.Name != "" && !NameRE.MatchString(s.Name) {
		bad("name", "must match %s", NameRE)
	}
	switch s.Method {
	case MethodSFT, MethodDPO:
	case "":
		bad("method", "is required (sft or dpo)")
	default:
		bad("method", "must be sft or dpo, got %q", s.Method)
	}
	if s.Model != BuiltinTiny {
		if err := CheckPath(s.Model); err != nil {
			bad("model", "must be %q or an absolute path to a model directory: %v", BuiltinTiny, err)
		}
	}
	if err := CheckPath(s.Dataset.Path); err != nil {
		bad("dataset.path", "%v", err)
	}
	if s.Dataset.EvalPath != "" {
		if err := CheckPath(s.Dataset.EvalPath); err != nil {
			bad("dataset.eval_path", "%v", err)
		}
	}
	h := s.Hyperparameters
	floatIn("hyperparameters.learning_rate", h.LearningRate, 0, 1, true)
	intIn("hyperparameters.epochs", h.Epochs, 1, 1000)
	intIn("hyperparameters.max_steps", h.MaxSteps, 0, 10_000_000)
	intIn("hyperparameters.batch_size", h.BatchSize, 1, 4096)
	intIn("hyperparameters.gradient_accumulation", h.GradientAccumulation, 1, 1024)
	intIn("hyperparameters.max_length", h.MaxLength, 1, 131072)
	intIn("hyperparameters.warmup_steps", h.WarmupSteps, 0, 10_000_000)
	intIn("hyperparameters.seed", h.Seed, 0, math.MaxInt32)
	if s.Method == MethodDPO {
		floatIn("hyperparameters.dpo_beta", h.DPOBeta, 0, 100, true)
	} else {
		floatIn("hyperparameters.dpo_beta", h.DPOBeta, 0, 100, false)
	}
	floatIn("hyperparameters.weight_decay", h.WeightDecay, 0, 1, false)
	if !slices.Contains(Precisions, h.Precision) {
		bad("hyperparameters.precision", "must be one of %s, got %q", strings.Join(Precisions, ", "), h.Precision)
	}
	if h.Packing && s.Method == MethodDPO {
		bad("hyperparameters.packing", "only for method sft")
	}
	// LoRA fields are validated whether or not LoRA is enabled: they reach job.json.
	// While disabled, r and alpha may stay 0 (unset).
	loraMin := 1
	if !s.LoRA.Enabled {
		loraMin = 0
	}
	{
		intIn("lora.r", s.LoRA.R, loraMin, 1024)
		intIn("lora.alpha", s.LoRA.Alpha, loraMin, 4096)
		floatIn("lora.dropout", s.LoRA.Dropout, 0, 0.99, false)
		if len(s.LoRA.TargetModules) > 64 {
			bad("lora.target_modules", "at most 64 modules")
		}
		for i, m := range s.LoRA.TargetModules {
			if !moduleRE.MatchString(m) {
				bad(fmt.Sprintf("lora.target_modules[%d]", i), "must match %s, got %q", moduleRE, m)
			}
		}
	}
	switch s.Quantization {
	case QuantNone:
	case Quant8bit, Quant4bit:
		if !s.LoRA.Enabled {
			bad("quantization", "%s needs lora.enabled: true (quantized weights are frozen)", s.Quantization)
		}
	default:
		bad("quantization", "must be none, 8bit or 4bit, got %q", s.Quantization)
	}
	intIn("logging.log_every", s.Logging.LogEvery, 1, 1_000_000)
	intIn("logging.eval_every", s.Logging.EvalEvery, 1, 1_000_000)
	intIn("logging.save_every", s.Logging.SaveEvery, 1, 1_000_000)
	intIn("logging.progress_interval_seconds", s.Logging.ProgressIntervalSeconds, 1, 3600)
	intIn("checkpoints.keep_last", s.Checkpoints.KeepLast, 1, 100)
	intIn("checkpoints.keep_best", s.Checkpoints.KeepBest, 0, 100)
	r := s.Resources
	if r.Cluster != "" && !NameRE.MatchString(r.Cluster) {
		bad("resources.cluster", "must match %s", NameRE)
	}
	if r.Partition != "" && !NameRE.MatchString(r.Partition) {
		bad("resources.partition", "must match %s", NameRE)
	}
	intIn("resources.nodes", r.Nodes, 1, MaxNodes)
	intIn("resources.gpus", r.GPUs, 0, MaxGPUsLimit)
	d := s.Distributed
	switch d.Strategy {
	case StrategyDDP:
	case StrategyFSDP:
		if s.LoRA.Enabled {
			bad("distributed.strategy", "fsdp is for full fine-tuning; use ddp with lora.enabled")
		}
	default:
		bad("distributed.strategy", "must be ddp or fsdp, got %q", d.Strategy)
	}
	intIn("distributed.processes_per_node", d.ProcessesPerNode, 1, MaxGPUsLimit)
	if r.GPUs > 0 && d.ProcessesPerNode != r.GPUs {
		bad("distributed.processes_per_node", "must equal resources.gpus (one process per GPU), got %d for %d GPUs",
			d.ProcessesPerNode, r.GPUs)
	}
	if r.GPUType != "" && !NameRE.MatchString(r.GPUType) {
		bad("resources.gpu_type", "must match %s", NameRE)
	}
	intIn("resources.cpus", r.CPUs, 1, 1024)
	intIn("resources.memory_mb", r.MemoryMB, 1, 16*1024*1024)
	intIn("resources.time_limit_minutes", r.TimeLimitMinutes, 1, 60*24*30)
	if r.NoWait && r.GPUs == 0 {
		bad("resources.no_wait", "needs resources.gpus > 0 (it refuses a job when its partition has no free GPU)")
	}
	if s.Notify != nil && s.Notify.Webhook == nil {
		bad("notify.webhook", "is required in notify (or leave notify out)")
	}
	if s.Notify != nil && s.Notify.Webhook != nil && s.Notify.Webhook.URL == "" {
		bad("notify.webhook.url", "is required")
	}
	return ps
}

// Hash is a stable digest of the normalized spec, used to compare idempotent retries.
func (s *Spec) Hash() string {
	b, _ := json.Marshal(s)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// JSON renders the spec as job.json.
func (s *Spec) JSON() []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	_ = enc.Encode(s)
	return buf.Bytes()
}
