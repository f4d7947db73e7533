package slurm

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/sshconn"
)

// shellRunner, unlike localRunner, runs the quoted command line with the local /bin/sh, as sshd would run
// it with the user's login shell, with a fake sbatch first on PATH.
type shellRunner struct{ path string }

func (r shellRunner) Run(ctx context.Context, user string, argv []string, stdin io.Reader) ([]byte, []byte, error) {
	line, err := sshconn.Command(argv)
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", line)
	cmd.Env = append(os.Environ(), "PATH="+r.path+":"+os.Getenv("PATH"))
	cmd.Stdin = stdin
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return []byte(out.String()), []byte(errb.String()), &sshconn.ExitError{Status: ee.ExitCode(), Stderr: []byte(errb.String())}
	}
	return []byte(out.String()), []byte(errb.String()), err
}

// fakeSbatch records its arguments and the sha256 of its stdin next to the job root,
// prints "4242;dev", or fails like sbatch does when FAKE_SBATCH_FAIL is set.
const fakeSbatch = `#!/bin/sh
log=$FAKE_SBATCH_LOG
printf '%s\n' "$@" > "$log.args"
printf '%s' "${SLURM_CONF-unset}" > "$log.conf"
sha256sum | cut -d' ' -f1 > "$log.stdin"
if [ -n "${FAKE_SBATCH_FAIL:-}" ]; then echo "sbatch: error: invalid partition specified: nope" >&2; exit 1; fi
echo "4242;dev"
`

func TestSubmitInDirOneCommand(t *testing.T) {
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin")
	root := filepath.Join(tmp, "jobs")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "sbatch"), []byte(fakeSbatch), 0o755); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(tmp, "sbatch")
	t.Setenv("FAKE_SBATCH_LOG", log)
	t.Setenv("SLURM_CONF", "") // restored after the test
	os.Unsetenv("SLURM_CONF")
	r := newCounting(shellRunner{path: bin})
	c, err := New(r, Options{Cluster: "dev", JobRoot: root, Partitions: []string{"gpu"}, Python: "/usr/bin/python3",
		TrainerDir: "/opt/trainer it's", Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	c.capCache, c.capAt = &Capacity{Partitions: []Partition{{Name: "gpu", MaxNodeCPUs: 16, MaxNodeGPUs: 4, MaxNodeMemoryMB: 16000}}}, time.Now()
	req := Request{JobID: "job-1", User: "alice", CPUs: 2, MemoryMB: 512, TimeLimitMinutes: 5}
	// job.json is user data: quotes, $(...) and newlines must arrive byte for byte.
	spec := []byte("{\"name\":\"it's $(touch /tmp/pwned) `id`\",\n\"x\":\"\\\\\"}\n")
	if _, err := c.SubmitInDir(context.Background(), "alice", req, "/elsewhere", spec); job.ErrorCode(err) != job.EInternal {
		t.Errorf("a job dir the script does not name: %v", err)
	}
	sub, err := c.SubmitInDir(context.Background(), "alice", req, JobDir(root, "alice", "job-1"), spec)
	if err != nil {
		t.Fatal(err)
	}
	if sub.ID != "4242" || sub.Cluster != "dev" {
		t.Errorf("submitted %+v", sub)
	}
	for name, n := range r.count {
		if want := map[string]int64{"sh": 1}[name]; n.Load() != want {
			t.Errorf("%d %s commands, want %d: the submission is one remote command", n.Load(), name, want)
		}
	}
	dir := JobDir(root, "alice", "job-1")
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("job dir: %v %v", fi, err)
	}
	for name, want := range map[string]string{"job.json": string(spec), "job.sbatch": sub.Script} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", name, b, err, want)
		}
		if fi, _ := os.Stat(filepath.Join(dir, name)); fi.Mode().Perm() != 0o644 {
			t.Errorf("%s mode %v", name, fi.Mode())
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	args, _ := os.ReadFile(log + ".args")
	stdin, _ := os.ReadFile(log + ".stdin")
	if strings.TrimSpace(string(args)) != "--parsable" {
		t.Errorf("sbatch args %q", args)
	}
	if strings.TrimSpace(string(stdin)) != fmt.Sprintf("%x", sha256.Sum256([]byte(sub.Script))) {
		t.Errorf("sbatch did not read the script on stdin")
	}
	if _, err := os.Stat("/tmp/pwned"); err == nil {
		t.Fatal("job.json content was executed")
	}

	// A job.json too large for a command line travels on stdin.
	big := []byte(`{"pad":"` + strings.Repeat("x'$", MaxInlineScript) + `"}`)
	req4 := Request{JobID: "job-4", User: "alice", CPUs: 1, MemoryMB: 1, TimeLimitMinutes: 1}
	if _, err := c.SubmitInDir(context.Background(), "alice", req4, JobDir(root, "alice", "job-4"), big); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(JobDir(root, "alice", "job-4"), "job.json")); string(b) != string(big) {
		t.Errorf("large job.json: %d bytes written, want %d", len(b), len(big))
	}

	// sbatch refusing the job: typed like Submit's errors.
	t.Setenv("FAKE_SBATCH_FAIL", "1")
	_, err = c.SubmitInDir(context.Background(), "alice", Request{JobID: "job-2", User: "alice", CPUs: 1, MemoryMB: 1, TimeLimitMinutes: 1},
		JobDir(root, "alice", "job-2"), []byte("{}"))
	if job.ErrorCode(err) != job.EUnprocessable {
		t.Errorf("sbatch refusal: %v, want unprocessable", err)
	}
	t.Setenv("FAKE_SBATCH_FAIL", "")

	// Without a slurm_conf the user's environment decides; with one, the script sets
	// it for sbatch (no `env` process in front: still one command).
	if b, _ := os.ReadFile(log + ".conf"); string(b) != "unset" {
		t.Errorf("SLURM_CONF without slurm_conf: %q, want it unset", b)
	}
	conf := filepath.Join(tmp, "it's a $(conf)", "slurm.conf")
	r2 := newCounting(shellRunner{path: bin})
	c2, err := New(r2, Options{Cluster: "dev", JobRoot: root, Partitions: []string{"gpu"}, Python: "/usr/bin/python3",
		TrainerDir: "/opt/trainer", SlurmConf: conf, Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	c2.capCache, c2.capAt = c.capCache, time.Now()
	if _, err := c2.SubmitInDir(context.Background(), "alice", Request{JobID: "job-5", User: "alice", CPUs: 1, MemoryMB: 1, TimeLimitMinutes: 1},
		JobDir(root, "alice", "job-5"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(log + ".conf"); string(b) != conf {
		t.Errorf("SLURM_CONF with slurm_conf: %q, want %q", b, conf)
	}
	for name, n := range r2.count {
		if want := map[string]int64{"sh": 1}[name]; n.Load() != want {
			t.Errorf("with slurm_conf: %d %s commands, want %d", n.Load(), name, want)
		}
	}

	// A job directory that cannot be created: a plain, retryable error naming it.
	if err := os.WriteFile(filepath.Join(root, "bob"), []byte("a file"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = c.SubmitInDir(context.Background(), "bob", Request{JobID: "job-3", User: "bob", CPUs: 1, MemoryMB: 1, TimeLimitMinutes: 1},
		JobDir(root, "bob", "job-3"), []byte("{}"))
	if err == nil || job.ErrorCode(err) == job.EUnprocessable || job.ErrorCode(err) == job.EInvalid ||
		!strings.Contains(err.Error(), "prepare job directory: ftgate: cannot create "+JobDir(root, "bob", "job-3")) {
		t.Errorf("unwritable dir: %v", err)
	}
}

// TestIntegrationSubmitInDir: one remote command on the real login node creates the job
// directory, writes both files and submits; the batch job runs (the fake trainer) and
// completes; the files are the user's.
func TestIntegrationSubmitInDir(t *testing.T) {
	e := setupIntegration(t)
	c, cr := e.fakeClient(t, "alice")
	ctx := context.Background()
	id := newJobID("it-dir")
	dir := JobDir(e.st.JobRoot, "alice", id)
	t.Cleanup(func() { _, _, _ = e.pool.Run(context.Background(), "alice", []string{"rm", "-rf", "--", dir}, nil) })
	spec := []byte(`{"name":"it's $(id)"}` + "\n")
	before := cr.count["sh"].Load()
	sub, err := c.SubmitInDir(ctx, "alice", smallRequest("alice", id), dir, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Cancel(context.Background(), "alice", sub.ID) })
	if n := cr.count["sh"].Load() - before; n != 1 || cr.count["sbatch"].Load() != 0 {
		t.Errorf("%d sh and %d separate sbatch commands, want one sh", n, cr.count["sbatch"].Load())
	}
	st := waitFor(t, c, "alice", sub.ID, queueWait, "terminal", terminal)
	if st.State != StateCompleted {
		t.Fatalf("state %+v", st)
	}
	got, err := e.pool.ReadFile(ctx, "alice", dir+"/job.json", 1<<20)
	if err != nil || string(got) != string(spec) {
		t.Errorf("job.json %q, %v", got, err)
	}
	got, err = e.pool.ReadFile(ctx, "alice", dir+"/job.sbatch", 1<<20)
	if err != nil || string(got) != sub.Script {
		t.Errorf("job.sbatch differs from the submitted script: %v", err)
	}
	fi, err := e.pool.Stat(ctx, "alice", dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("job dir mode %v, %v", fi.Mode(), err)
	}
	files, err := c.ReadFiles(ctx, "alice", []string{dir + "/runs"}, 1<<10)
	if err != nil || string(files[0].Data) != "0\n" {
		t.Errorf("the fake trainer did not run in the job directory: %+v %v", files, err)
	}
}
