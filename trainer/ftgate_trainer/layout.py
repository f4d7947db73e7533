"""The job directory's layout, shared with the gateway (internal/job/layout.go; a Go
test compares the two)."""

JOB_JSON = "job.json"
CONTROL_JSON = "control.json"
CONTROL_HANDLED_JSON = "control.handled.json"
PROGRESS_JSON = "progress.json"
METRICS_JSONL = "metrics.jsonl"
GPU_JSON = "gpu.json"
CHECKPOINTS_DIR = "checkpoints"
MODEL_DIR = "model"
