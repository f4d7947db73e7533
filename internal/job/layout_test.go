package job

import (
	"os"
	"regexp"
	"testing"
)

// TestTrainerLayoutMatches: the trainer's layout.py names the same files.
func TestTrainerLayoutMatches(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../trainer/ftgate_trainer/layout.py")
	if err != nil {
		t.Fatal(err)
	}
	py := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^([A-Z_]+)\s*=\s*"([^"]*)"\s*$`).FindAllStringSubmatch(string(b), -1) {
		py[m[1]] = m[2]
	}
	want := map[string]string{
		"JOB_JSON": JobJSON, "CONTROL_JSON": ControlJSON, "CONTROL_HANDLED_JSON": ControlHandledJSON,
		"PROGRESS_JSON": ProgressJSON, "METRICS_JSONL": MetricsJSONL, "GPU_JSON": GPUJSON,
		"CHECKPOINTS_DIR": CheckpointsDir, "MODEL_DIR": ModelDir,
	}
	for name, v := range want {
		got, ok := py[name]
		if !ok {
			t.Errorf("layout.py has no %s (Go: %q)", name, v)
		} else if got != v {
			t.Errorf("layout.py %s = %q, Go has %q", name, got, v)
		}
	}
}
