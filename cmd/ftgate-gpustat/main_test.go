package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/gpustat"
)

type oneGPU struct{}

func (oneGPU) Sample() ([]gpustat.GPU, error) {
	return []gpustat.GPU{{Index: 0, Name: "Fake H200", MemoryTotalMB: 143771}}, nil
}

func TestWithoutNVML(t *testing.T) {
	t.Parallel()
	var errOut bytes.Buffer
	out := filepath.Join(t.TempDir(), "gpu.json")
	opts := &Options{Out: &errOut, File: out, Open: func(string) (gpustat.Source, func(), error) {
		return nil, nil, fmt.Errorf("%w: library not found", gpustat.ErrNoNVML)
	}}
	if err := runSample(context.Background(), opts); err != nil {
		t.Fatalf("runSample without NVML: %v (must exit 0)", err)
	}
	if got, want := errOut.String(), "ftgate-gpustat: NVML not available: library not found; not sampling GPUs\n"; got != want {
		t.Fatalf("output %q, want %q", got, want)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("gpu.json written without NVML: %v", err)
	}
}

func TestOnce(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "gpu.json")
	var visible string
	opts := &Options{Out: &bytes.Buffer{}, File: out, Once: true, Visible: "1,2",
		Open: func(v string) (gpustat.Source, func(), error) { visible = v; return oneGPU{}, func() {}, nil }}
	if err := runSample(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if visible != "1,2" {
		t.Fatalf("source opened for %q, want CUDA_VISIBLE_DEVICES 1,2", visible)
	}
	var s gpustat.Sample
	b, _ := os.ReadFile(out)
	if err := json.Unmarshal(b, &s); err != nil || len(s.GPUs) != 1 || s.GPUs[0].Name != "Fake H200" {
		t.Fatalf("gpu.json = %s (%v)", b, err)
	}
}

// TestFlags parses the command line through the runF seam: what the batch script
// passes reaches the sampler, and mistakes exit 2 with one line.
func TestFlags(t *testing.T) {
	t.Setenv("CUDA_VISIBLE_DEVICES", "3")
	for _, tc := range []struct {
		args []string
		code int
		want string // stderr
		opts Options
	}{
		{args: []string{"--interval", "5s", "--out", "/j/gpu.json"}, opts: Options{Interval: 5 * time.Second, File: "/j/gpu.json", Visible: "3"}},
		{args: []string{"--out", "x", "--once"}, opts: Options{Interval: 5 * time.Second, File: "x", Once: true, Visible: "3"}},
		{args: []string{}, code: 2, want: "ftgate-gpustat: --out is required\n"},
		{args: []string{"--out", "x", "--interval", "1ms"}, code: 2, want: "ftgate-gpustat: --interval must be at least 100ms, got 1ms\n"},
		{args: []string{"--out", "x", "--interval", "5"}, code: 2, want: "ftgate-gpustat: invalid argument \"5\" for \"--interval\" flag: time: missing unit in duration \"5\"\n"},
		{args: []string{"gpustat", "--out", "x"}, code: 2, want: "ftgate-gpustat: takes no arguments, got \"gpustat\" (the old `ftctl gpustat` is now this command)\n"},
	} {
		var errOut bytes.Buffer
		var got *Options
		code := run(tc.args, &errOut, func(_ context.Context, o *Options) error { got = o; return nil })
		if code != tc.code || errOut.String() != tc.want {
			t.Errorf("args %q: exit %d stderr %q, want %d %q", tc.args, code, errOut.String(), tc.code, tc.want)
		}
		if tc.code == 0 && (got == nil || got.Interval != tc.opts.Interval || got.File != tc.opts.File || got.Once != tc.opts.Once || got.Visible != tc.opts.Visible) {
			t.Errorf("args %q: options %+v, want %+v", tc.args, got, tc.opts)
		}
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"--version"}, &out, nil); code != 0 || !strings.HasPrefix(out.String(), "ftgate-gpustat dev (commit ") {
		t.Errorf("--version: exit %d, %q", code, out.String())
	}
}
