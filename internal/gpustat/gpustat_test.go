package gpustat

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"
	"time"
)

type fakeSource struct {
	calls atomic.Int32
	fail  bool
}

func (f *fakeSource) Sample() ([]GPU, error) {
	n := int(f.calls.Add(1))
	if f.fail {
		return nil, errors.New("device lost")
	}
	return []GPU{{Index: 0, Name: "Fake", UtilizationPercent: n, MemoryUsedMB: 100 * n, MemoryTotalMB: 1000, PowerWatts: 50.5, TemperatureC: 40}}, nil
}

func readSample(t *testing.T, path string) Sample {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s Sample
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("gpu.json is not JSON: %v: %s", err, b)
	}
	return s
}

func TestWriteSample(t *testing.T) {
	out := filepath.Join(t.TempDir(), "gpu.json")
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	if err := WriteSample(&fakeSource{}, out, now); err != nil {
		t.Fatal(err)
	}
	got := readSample(t, out)
	want := Sample{SchemaVersion: 1, Time: now, GPUs: []GPU{{Index: 0, Name: "Fake", UtilizationPercent: 1, MemoryUsedMB: 100, MemoryTotalMB: 1000, PowerWatts: 50.5, TemperatureC: 40}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("sample = %+v, want %+v", got, want)
	}
	entries, _ := os.ReadDir(filepath.Dir(out))
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func TestWriteSampleError(t *testing.T) {
	out := filepath.Join(t.TempDir(), "gpu.json")
	if err := WriteSample(&fakeSource{fail: true}, out, time.Now()); err != nil {
		t.Fatal(err)
	}
	got := readSample(t, out)
	if got.Error != "device lost" || got.GPUs == nil || len(got.GPUs) != 0 {
		t.Fatalf("sample = %+v, want the error and an empty GPU list", got)
	}
}

func TestRunSamplesUntilCancelled(t *testing.T) {
	out := filepath.Join(t.TempDir(), "gpu.json")
	src := &fakeSource{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, src, out, 5*time.Millisecond) }()
	deadline := time.After(5 * time.Second)
	for src.calls.Load() < 3 {
		select {
		case <-deadline:
			t.Fatal("Run did not sample three times in 5 s")
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s := readSample(t, out); s.GPUs[0].UtilizationPercent < 3 {
		t.Fatalf("file holds an old sample: %+v", s)
	}
}

func TestRunUnwritableDir(t *testing.T) {
	err := Run(context.Background(), &fakeSource{}, filepath.Join(t.TempDir(), "missing", "gpu.json"), time.Second)
	if err == nil {
		t.Fatal("Run into a missing directory succeeded")
	}
}

func TestSplitVisible(t *testing.T) {
	for in, want := range map[string][]string{
		"":               nil,
		"0":              {"0"},
		"1, 2":           {"1", "2"},
		"GPU-abc,GPU-de": {"GPU-abc", "GPU-de"},
	} {
		if got := splitVisible(in); !reflect.DeepEqual(got, want) {
			t.Errorf("splitVisible(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestOpenNVML runs the real library: on a node without NVML (or a build without cgo)
// it must fail with ErrNoNVML; on a GPU node it must sample every device. The GPU
// case runs on a GPU machine (trainer/gpu-check.sh); the fake-library tests in
// sampler_test.go cover the sampler's logic everywhere.
func TestOpenNVML(t *testing.T) {
	n, err := OpenNVML("")
	if err != nil {
		if !errors.Is(err, ErrNoNVML) {
			t.Fatalf("OpenNVML error %v does not wrap ErrNoNVML", err)
		}
		return
	}
	defer n.Close()
	gpus, err := n.Sample()
	if err != nil || len(gpus) == 0 {
		t.Fatalf("NVML opened but sampled %d GPUs: %v", len(gpus), err)
	}
	for i, g := range gpus {
		if g.Index != i || g.Name == "" || g.UUID == "" || g.MemoryTotalMB <= 0 || g.MemoryUsedMB > g.MemoryTotalMB {
			t.Errorf("GPU %d: implausible sample %+v", i, g)
		}
	}
	t.Logf("sampled %d GPUs through NVML: %+v", len(gpus), gpus)
}
