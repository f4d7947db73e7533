package job

// The job directory's layout: the files the gateway, the sbatch script and the
// trainer share. trainer/ftgate_trainer/layout.py mirrors these names (a test reads
// both).
const (
	// JobJSON is the job's Spec, written by the submitter.
	JobJSON = "job.json"
	// ControlJSON asks the trainer to act ({"action":"pause"} or {"action":"run"}).
	ControlJSON = "control.json"
	// ControlHandledJSON is control.json after the trainer acted on it.
	ControlHandledJSON = "control.handled.json"
	// ProgressJSON is the trainer's latest progress, replaced atomically.
	ProgressJSON = "progress.json"
	// MetricsJSONL is the trainer's metrics, one JSON object per line.
	MetricsJSONL = "metrics.jsonl"
	// GPUJSON is the node-side sampler's latest GPU sample.
	GPUJSON = "gpu.json"
	// CheckpointsDir holds one step-<N> directory per checkpoint.
	CheckpointsDir = "checkpoints"
	// ModelDir holds the final model (or adapter) and its manifest.json.
	ModelDir = "model"
)

// Control file contents.
var (
	// ControlPause asks a running trainer to checkpoint and exit.
	ControlPause = []byte(`{"action":"pause"}` + "\n")
	// ControlRun clears an earlier pause request before a resume.
	ControlRun = []byte(`{"action":"run"}` + "\n")
)
