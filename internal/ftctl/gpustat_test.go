package ftctl

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

	"github.com/ftgate/ftgate/internal/gpustat"
)

type oneGPU struct{}

func (oneGPU) Sample() ([]gpustat.GPU, error) {
	return []gpustat.GPU{{Index: 0, Name: "Fake H200", MemoryTotalMB: 143771}}, nil
}

func TestGPUStatWithoutNVML(t *testing.T) {
	var errOut bytes.Buffer
	out := filepath.Join(t.TempDir(), "gpu.json")
	opts := &GPUStatOptions{Out: &errOut, File: out, Open: func(string) (gpustat.Source, func(), error) {
		return nil, nil, fmt.Errorf("%w: library not found", gpustat.ErrNoNVML)
	}}
	if err := runGPUStat(context.Background(), opts); err != nil {
		t.Fatalf("runGPUStat without NVML: %v (must exit 0)", err)
	}
	if got, want := errOut.String(), "ftctl gpustat: NVML not available: library not found; not sampling GPUs\n"; got != want {
		t.Fatalf("output %q, want %q", got, want)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("gpu.json written without NVML: %v", err)
	}
}

func TestGPUStatOnce(t *testing.T) {
	out := filepath.Join(t.TempDir(), "gpu.json")
	var visible string
	opts := &GPUStatOptions{Out: &bytes.Buffer{}, File: out, Once: true, Visible: "1,2",
		Open: func(v string) (gpustat.Source, func(), error) { visible = v; return oneGPU{}, func() {}, nil }}
	if err := runGPUStat(context.Background(), opts); err != nil {
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

func TestGPUStatFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "--out is required"},
		{[]string{"--out", "x", "--interval", "1ms"}, "--interval must be at least 100ms"},
		{[]string{"--out", "x", "--interval", "soon"}, "invalid argument"},
	} {
		cmd := NewCmdGPUStat(func(context.Context, *GPUStatOptions) error { return nil })
		cmd.SetArgs(tc.args)
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("args %q: error %v, want %q", tc.args, err, tc.want)
		}
	}
}
