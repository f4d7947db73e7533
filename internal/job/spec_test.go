package job

import (
	"strings"
	"testing"
)

const validSpec = `{"name":"tiny-sft","method":"sft","model":"builtin:tiny",
 "dataset":{"path":"/data/train.jsonl","eval_path":"/data/eval.jsonl"},
 "hyperparameters":{"learning_rate":0.001,"epochs":1,"max_steps":200,"batch_size":8,"gradient_accumulation":1,
   "max_length":128,"warmup_steps":10,"seed":42,"dpo_beta":0.1,"weight_decay":0.0},
 "lora":{"enabled":true,"r":8,"alpha":16,"dropout":0.0,"target_modules":["q_proj","v_proj"]},
 "quantization":"none",
 "logging":{"log_every":10,"eval_every":50,"save_every":50,"progress_interval_seconds":5},
 "checkpoints":{"keep_last":2,"keep_best":1},
 "resources":{"cluster":"dev","partition":"gpu","gpus":1,"gpu_type":"","cpus":2,"memory_mb":4096,"time_limit_minutes":60}}`

func TestDecodeSpecErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body, code, want string
	}{
		{"valid", validSpec, "", ""},
		{"empty", ``, EInvalid, "empty"},
		{"malformed", `{"method":`, EInvalid, "truncated"},
		{"syntax", `{"method" "sft"}`, EInvalid, "malformed JSON"},
		{"unknown field", `{"method":"sft","bogus":1}`, EInvalid, `unknown field "bogus"`},
		{"wrong type", `{"hyperparameters":{"epochs":"one"}}`, EInvalid, `"hyperparameters.epochs"`},
		{"float for int", `{"hyperparameters":{"epochs":1.5}}`, EInvalid, `"hyperparameters.epochs"`},
		{"trailing", `{"method":"sft"} {}`, EInvalid, "after the JSON object"},
		{"array", `[]`, EInvalid, "want job.Spec"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeSpec(strings.NewReader(tt.body))
			if ErrorCode(err) != tt.code {
				t.Fatalf("code = %q (%v), want %q", ErrorCode(err), err, tt.code)
			}
			if err != nil && !strings.Contains(ErrorMessage(err), tt.want) {
				t.Errorf("message %q does not contain %q", ErrorMessage(err), tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Spec)
		want   string // substring of the error; "" = valid
	}{
		{"valid", func(s *Spec) {}, ""},
		{"notify webhook", func(s *Spec) { s.Notify = &Notify{Webhook: &NotifyWebhook{URL: "https://h.example/x"}} }, ""},
		{"notify without webhook", func(s *Spec) { s.Notify = &Notify{} }, "notify.webhook: is required in notify"},
		{"notify webhook without url", func(s *Spec) { s.Notify = &Notify{Webhook: &NotifyWebhook{Events: []string{"job.failed"}}} }, "notify.webhook.url: is required"},
		{"bad name", func(s *Spec) { s.Name = "-x" }, "name:"},
		{"no method", func(s *Spec) { s.Method = "" }, "method: is required"},
		{"bad method", func(s *Spec) { s.Method = "ppo" }, "method: must be sft or dpo"},
		{"relative model", func(s *Spec) { s.Model = "models/x" }, "model:"},
		{"model path escape", func(s *Spec) { s.Model = "/models/../etc" }, "model:"},
		{"local model", func(s *Spec) { s.Model = "/models/llama" }, ""},
		{"no dataset", func(s *Spec) { s.Dataset.Path = "" }, "dataset.path: is required"},
		{"dataset newline", func(s *Spec) { s.Dataset.Path = "/a\nb" }, "dataset.path: must not contain control"},
		{"eval relative", func(s *Spec) { s.Dataset.EvalPath = "eval.jsonl" }, "dataset.eval_path"},
		{"lr zero after normalize", func(s *Spec) { s.Hyperparameters.LearningRate = -1 }, "hyperparameters.learning_rate"},
		{"epochs", func(s *Spec) { s.Hyperparameters.Epochs = 5000 }, "hyperparameters.epochs"},
		{"max_steps negative", func(s *Spec) { s.Hyperparameters.MaxSteps = -1 }, "hyperparameters.max_steps"},
		{"batch", func(s *Spec) { s.Hyperparameters.BatchSize = -3 }, "hyperparameters.batch_size"},
		{"seed", func(s *Spec) { s.Hyperparameters.Seed = -1 }, "hyperparameters.seed"},
		{"weight decay", func(s *Spec) { s.Hyperparameters.WeightDecay = 2 }, "hyperparameters.weight_decay"},
		{"dpo beta", func(s *Spec) { s.Method = MethodDPO; s.Hyperparameters.DPOBeta = -1 }, "hyperparameters.dpo_beta"},
		{"lora r", func(s *Spec) { s.LoRA.R = 5000 }, "lora.r"},
		{"lora dropout", func(s *Spec) { s.LoRA.Dropout = 1 }, "lora.dropout"},
		{"lora module", func(s *Spec) { s.LoRA.TargetModules = []string{"q_proj", "$(rm -rf /)"} }, "lora.target_modules[1]"},
		{"quantization", func(s *Spec) { s.Quantization = "2bit" }, "quantization: must be"},
		{"quantization without lora", func(s *Spec) { s.Quantization = "4bit"; s.LoRA.Enabled = false }, "quantization: 4bit needs lora"},
		{"log_every", func(s *Spec) { s.Logging.LogEvery = -1 }, "logging.log_every"},
		{"progress interval", func(s *Spec) { s.Logging.ProgressIntervalSeconds = 7200 }, "logging.progress_interval_seconds"},
		{"keep_last", func(s *Spec) { s.Checkpoints.KeepLast = 1000 }, "checkpoints.keep_last"},
		{"keep_best", func(s *Spec) { s.Checkpoints.KeepBest = -1 }, "checkpoints.keep_best"},
		{"cluster", func(s *Spec) { s.Resources.Cluster = "a b" }, "resources.cluster"},
		{"partition", func(s *Spec) { s.Resources.Partition = "gpu;rm" }, "resources.partition"},
		{"gpus", func(s *Spec) { s.Resources.GPUs = -1 }, "resources.gpus"},
		{"gpu type", func(s *Spec) { s.Resources.GPUType = "a100 x" }, "resources.gpu_type"},
		{"cpus", func(s *Spec) { s.Resources.CPUs = -2 }, "resources.cpus"},
		{"memory", func(s *Spec) { s.Resources.MemoryMB = -1 }, "resources.memory_mb"},
		{"time", func(s *Spec) { s.Resources.TimeLimitMinutes = 1 << 30 }, "resources.time_limit_minutes"},
		{"nodes", func(s *Spec) { s.Resources.Nodes = -1 }, "resources.nodes"},
		{"too many nodes", func(s *Spec) { s.Resources.Nodes = MaxNodes + 1 }, "resources.nodes"},
		{"two nodes", func(s *Spec) { s.Resources.Nodes = 2 }, ""},
		{"precision", func(s *Spec) { s.Hyperparameters.Precision = "fp8" }, "hyperparameters.precision: must be one of auto, bf16, fp16, fp32"},
		{"precision bf16", func(s *Spec) { s.Hyperparameters.Precision = "bf16" }, ""},
		{"packing dpo", func(s *Spec) { s.Method = MethodDPO; s.Hyperparameters.Packing = true }, "hyperparameters.packing: only for method sft"},
		{"packing sft", func(s *Spec) { s.Hyperparameters.Packing = true; s.Hyperparameters.GradientCheckpointing = true }, ""},
		{"strategy", func(s *Spec) { s.Distributed.Strategy = "zero3" }, "distributed.strategy: must be ddp or fsdp"},
		{"fsdp with lora", func(s *Spec) { s.Distributed.Strategy = StrategyFSDP }, "distributed.strategy: fsdp is for full fine-tuning"},
		{"fsdp full", func(s *Spec) { s.Distributed.Strategy = StrategyFSDP; s.LoRA.Enabled = false }, ""},
		{"processes", func(s *Spec) { s.Distributed.ProcessesPerNode = 100 }, "distributed.processes_per_node: must be between 1 and 64"},
		{"processes vs gpus", func(s *Spec) { s.Resources.GPUs = 2; s.Distributed.ProcessesPerNode = 3 }, "distributed.processes_per_node: must equal resources.gpus"},
		{"cpu processes", func(s *Spec) { s.Resources.GPUs = 0; s.Distributed.ProcessesPerNode = 2 }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := DecodeSpec(strings.NewReader(validSpec))
			if err != nil {
				t.Fatal(err)
			}
			tt.mutate(&s)
			s.Normalize()
			err = s.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if ErrorCode(err) != EUnprocessable || !strings.Contains(ErrorMessage(err), tt.want) {
				t.Fatalf("Validate() = %v, want EUnprocessable containing %q", err, tt.want)
			}
		})
	}
}

func TestNormalizeDefaults(t *testing.T) {
	t.Parallel()
	s := Spec{Method: MethodDPO, Model: BuiltinTiny, Dataset: Dataset{Path: "/d.jsonl"}, LoRA: LoRA{Enabled: true}}
	s.Normalize()
	if err := s.Validate(); err != nil {
		t.Fatalf("minimal spec after Normalize: %v", err)
	}
	if s.Quantization != QuantNone || s.Hyperparameters.DPOBeta != 0.1 || s.LoRA.R != 8 || s.LoRA.Alpha != 16 ||
		s.Resources.TimeLimitMinutes != 60 || s.Checkpoints.KeepLast != 2 || len(s.LoRA.TargetModules) != 0 ||
		s.Hyperparameters.Precision != "auto" || s.Resources.Nodes != 1 || s.Distributed.Strategy != StrategyDDP ||
		s.Distributed.ProcessesPerNode != 1 {
		t.Errorf("defaults not applied: %+v", s)
	}
	g := Spec{Method: MethodSFT, Model: BuiltinTiny, Dataset: Dataset{Path: "/d.jsonl"}, Resources: Resources{GPUs: 4}}
	g.Normalize()
	if g.Distributed.ProcessesPerNode != 4 {
		t.Errorf("processes_per_node with 4 GPUs = %d, want 4", g.Distributed.ProcessesPerNode)
	}
	a, b := s, s
	b.Hyperparameters.Seed = 7
	if a.Hash() == b.Hash() || a.Hash() != s.Hash() {
		t.Error("Hash must differ for different specs and match for equal ones")
	}
}

// TestLoRAFieldsValidatedWhileDisabled: hostile LoRA values are refused even with
// lora.enabled false (they would reach job.json verbatim).
func TestLoRAFieldsValidatedWhileDisabled(t *testing.T) {
	for _, tc := range []struct{ field, json string }{
		{"lora.target_modules[0]", `{"enabled":false,"target_modules":["q_proj; rm -rf /"]}`},
		{"lora.r", `{"enabled":false,"r":-5}`},
		{"lora.alpha", `{"enabled":false,"alpha":100000}`},
		{"lora.dropout", `{"enabled":false,"dropout":7}`},
	} {
		body := `{"method":"sft","model":"` + BuiltinTiny + `","dataset":{"path":"/data/x.jsonl"},"lora":` + tc.json + `}`
		s, err := DecodeSpec(strings.NewReader(body))
		if err == nil {
			s.Normalize()
			err = s.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: err = %v", tc.json, err)
		}
	}
}

// TestTotalGPUs: GPUs per node times nodes; an unset node count is one node.
func TestTotalGPUs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ gpus, nodes, want int }{{2, 0, 2}, {2, 1, 2}, {4, 3, 12}, {0, 5, 0}} {
		if got := (Resources{GPUs: tc.gpus, Nodes: tc.nodes}).TotalGPUs(); got != tc.want {
			t.Errorf("%d GPUs on %d nodes: %d, want %d", tc.gpus, tc.nodes, got, tc.want)
		}
	}
}
