// Package gpustat samples the GPUs visible to a job and writes them atomically as the
// job's gpu.json, for the gateway to read beside progress.json.
package gpustat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ftgate/ftgate/internal/atomicfile"
	"github.com/ftgate/ftgate/internal/job"
)

// SchemaVersion is the version of the gpu.json format.
const SchemaVersion = 1

// ErrNoNVML means the NVIDIA management library is not available on this node.
var ErrNoNVML = errors.New("NVML not available")

// GPU is one device's sample; the gateway carries it in job progress.
type GPU = job.GPU

// Sample is the content of gpu.json.
type Sample struct {
	SchemaVersion int       `json:"schema_version"`
	Time          time.Time `json:"time"`
	GPUs          []GPU     `json:"gpus"`
	Error         string    `json:"error,omitempty"`
}

// Source reads the current state of the GPUs.
type Source interface {
	Sample() ([]GPU, error)
}

// Run samples src every interval and replaces out with each sample until ctx ends.
// A failed sample is written with its error and does not stop the loop; only a file
// that cannot be written does.
func Run(ctx context.Context, src Source, out string, interval time.Duration) error {
	if interval <= 0 {
		return fmt.Errorf("gpustat: interval must be positive, got %s", interval)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := WriteSample(src, out, time.Now()); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// WriteSample takes one sample from src and writes it to out atomically.
func WriteSample(src Source, out string, now time.Time) error {
	s := Sample{SchemaVersion: SchemaVersion, Time: now.UTC()}
	gpus, err := src.Sample()
	if err != nil {
		s.Error = err.Error()
	}
	s.GPUs = gpus
	if s.GPUs == nil {
		s.GPUs = []GPU{}
	}
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode sample: %w", err)
	}
	return atomicfile.Write(out, append(b, '\n'), 0o644)
}
