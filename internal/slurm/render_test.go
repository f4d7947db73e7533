package slurm

import (
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
)

var update = flag.Bool("update", false, "rewrite golden files")

func testOptions() Options {
	return Options{
		Cluster:          "dev",
		JobRoot:          "/srv/jobs",
		Partitions:       []string{"gpu", "urgent"},
		Python:           "/usr/bin/python3",
		TrainerDir:       "/opt/ftgate/trainer",
		CheckpointSignal: "USR2",
		SignalLead:       90 * time.Second,
		RestartBudget:    3,
	}
}

func testRequest() Request {
	return Request{JobID: "j-0123abcd", User: "alice", GPUs: 1, CPUs: 2, MemoryMB: 4096, TimeLimitMinutes: 60}
}

func newTestClient(t *testing.T, r Runner, mod func(*Options)) *Client {
	t.Helper()
	o := testOptions()
	if mod != nil {
		mod(&o)
	}
	if r == nil {
		r = &fakeRunner{}
	}
	c, err := New(r, o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from golden file (go test -update to accept):\n%s", name, got)
	}
}

func TestRenderGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts func(*Options)
		req  func(*Request)
	}{
		{"default.sbatch", nil, nil},
		{"no-gpu.sbatch", nil, func(r *Request) { r.GPUs = 0 }},
		{"typed-gpu-account-qos.sbatch", func(o *Options) { o.Account = "research"; o.GPUType = "a100" },
			func(r *Request) { r.GPUs = 2; r.QOS = "high"; r.Partition = "urgent" }},
		{"gpustat-term-signal.sbatch", func(o *Options) {
			o.GPUStat = "/opt/ftgate/bin/ftgate-gpustat"
			o.CheckpointSignal = "TERM"
			o.Python = "/opt/py env/bin/python3" // a path with a space is quoted
		}, func(r *Request) { r.TimeLimitMinutes = 2 }},
		{"two-nodes-two-cpu-ranks.sbatch", nil, func(r *Request) { r.GPUs = 0; r.Nodes = 2; r.ProcsPerNode = 2 }},
		{"four-gpus.sbatch", nil, func(r *Request) { r.GPUs = 4 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestClient(t, nil, tc.opts)
			req := testRequest()
			if tc.req != nil {
				tc.req(&req)
			}
			got, err := c.Render(req)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, got)
		})
	}
}

func TestRenderRefusesBadInput(t *testing.T) {
	c := newTestClient(t, nil, nil)
	for _, tc := range []struct {
		field string
		mod   func(*Request)
	}{
		{"job_id", func(r *Request) { r.JobID = "x; rm -rf /" }},
		{"job_id", func(r *Request) { r.JobID = "" }},
		{"user", func(r *Request) { r.User = "Alice" }},
		{"user", func(r *Request) { r.User = "../bob" }},
		{"resources.partition", func(r *Request) { r.Partition = "debug" }},
		{"resources.partition", func(r *Request) { r.Partition = "gpu --wrap=x" }},
		{"resources.qos", func(r *Request) { r.QOS = "high\n#SBATCH --uid=0" }},
		{"resources.gpu_type", func(r *Request) { r.GPUType = "a100:9" }},
		{"resources.gpus", func(r *Request) { r.GPUs = -1 }},
		{"resources.gpus", func(r *Request) { r.GPUs = 65 }},
		{"resources.cpus", func(r *Request) { r.CPUs = 0 }},
		{"resources.memory_mb", func(r *Request) { r.MemoryMB = 0 }},
		{"resources.time_limit_minutes", func(r *Request) { r.TimeLimitMinutes = 0 }},
		{"resources.time_limit_minutes", func(r *Request) { r.TimeLimitMinutes = 600000 }},
		{"resources.nodes", func(r *Request) { r.Nodes = -1 }},
		{"resources.nodes", func(r *Request) { r.Nodes = 257 }},
		{"distributed.processes_per_node", func(r *Request) { r.ProcsPerNode = 65 }},
		{"distributed.processes_per_node", func(r *Request) { r.GPUs = 2; r.ProcsPerNode = 3 }},
	} {
		req := testRequest()
		tc.mod(&req)
		_, err := c.Render(req)
		if job.ErrorCode(err) != job.EInvalid || !strings.Contains(err.Error(), tc.field+":") {
			t.Errorf("%+v: err = %v, want invalid naming %s", req, err, tc.field)
		}
	}
}

func TestSubmitRefusesBadInputBeforeSSH(t *testing.T) {
	r := &fakeRunner{}
	c := newTestClient(t, r, nil)
	req := testRequest()
	req.CPUs = -3
	if _, err := c.Submit(context.Background(), "alice", req); job.ErrorCode(err) != job.EInvalid {
		t.Fatalf("err = %v", err)
	}
	for _, f := range []func() error{
		func() error { return c.Cancel(context.Background(), "alice", "12; reboot") },
		func() error { return c.Signal(context.Background(), "alice", "") },
		func() error { _, err := c.Poll(context.Background(), "alice", []string{"1", "2,3"}); return err },
		func() error {
			_, err := c.ReadFiles(context.Background(), "alice", []string{"rel/path"}, 10)
			return err
		},
		func() error { _, err := c.FindByTag(context.Background(), "alice", "a b", time.Now()); return err },
	} {
		if err := f(); job.ErrorCode(err) != job.EInvalid {
			t.Errorf("err = %v, want invalid", err)
		}
	}
	if len(r.calls) != 0 {
		t.Errorf("remote calls made: %v", r.calls)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	for _, tc := range []struct {
		field string
		mod   func(*Options)
	}{
		{"checkpoint_signal", func(o *Options) { o.CheckpointSignal = "KILL" }},
		{"job_root", func(o *Options) { o.JobRoot = "relative" }},
		{"job_root", func(o *Options) { o.JobRoot = "/with space" }},
		{"partitions", func(o *Options) { o.Partitions = nil }},
		{"restart_budget", func(o *Options) { o.RestartBudget = -1 }},
		{"python", func(o *Options) { o.Python = "py\nthon" }},
	} {
		o := testOptions()
		tc.mod(&o)
		if _, err := New(&fakeRunner{}, o); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: err = %v", tc.field, err)
		}
	}
}

func TestTemplateOverrideDir(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "train.sbatch.tmpl"), []byte("#!/bin/sh\n#SBATCH --partition={{.Partition}}\nexec {{q .Python}} -m ftgate_trainer --job-dir {{q .JobDir}}\n"), 0o644)
	c := newTestClient(t, nil, func(o *Options) { o.TemplateDir = dir })
	got, err := c.Render(testRequest())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "exec /usr/bin/python3 -m ftgate_trainer --job-dir /srv/jobs/alice/j-0123abcd") {
		t.Errorf("override not used:\n%s", got)
	}
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "train.sbatch.tmpl"), []byte("{{.NoSuchField}}"), 0o644)
	if _, err := New(&fakeRunner{}, func() Options { o := testOptions(); o.TemplateDir = bad; return o }()); err == nil {
		t.Error("a broken override template was accepted")
	}
	if _, err := New(&fakeRunner{}, func() Options { o := testOptions(); o.TemplateDir = t.TempDir(); return o }()); err == nil {
		t.Error("an empty override dir was accepted")
	}
}

var _ = io.EOF
