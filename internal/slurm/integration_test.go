package slurm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/sshconn"
	"github.com/ftgate/ftgate/internal/stacktest"
)

// fakeTrainerRemote stands in for the cluster's python in the integration tests that
// check the batch script and Slurm rather than training. The template launches it as
// `python -m torch.distributed.run ... -m ftgate_trainer --job-dir DIR --checkpoint-signal
// SIG`; it finds its options by name and behaves as DIR/mode says. wait-signal follows the
// real contract: the batch shell turns the checkpoint signal into DIR/stop.json.
const fakeTrainerRemote = `#!/bin/sh
dir=; sig=
while [ $# -gt 0 ]; do
  case $1 in
  --job-dir) dir=$2; shift ;;
  --checkpoint-signal) sig=$2; shift ;;
  esac
  shift
done
[ -n "$dir" ] && [ -n "$sig" ] || { echo "fake trainer: no --job-dir or --checkpoint-signal" >&2; exit 2; }
mode=$(cat "$dir/mode" 2>/dev/null || echo exit0)
echo "${SLURM_RESTART_COUNT:-0}" >> "$dir/runs"
case $mode in
exit0) exit 0 ;;
sleep) sleep 120; exit 0 ;;
wait-signal)
  touch "$dir/ready"
  while [ ! -s "$dir/stop.json" ]; do sleep 0.1; done
  grep -q "\"$sig\"" "$dir/stop.json" && echo "signalled $sig" > "$dir/marker"
  exit 0 ;;
esac
exit 1
`

// countingRunner counts the commands run through it, by program name.
type countingRunner struct {
	r     Runner
	count map[string]*atomic.Int64
}

func newCounting(r Runner) *countingRunner {
	c := &countingRunner{r: r, count: map[string]*atomic.Int64{}}
	for _, n := range []string{"squeue", "sacct", "sbatch", "scontrol", "scancel", "sh"} {
		c.count[n] = &atomic.Int64{}
	}
	return c
}

func (c *countingRunner) Run(ctx context.Context, user string, argv []string, stdin io.Reader) ([]byte, []byte, error) {
	name := argv[0]
	if name == "env" {
		name = argv[2]
	}
	if n := c.count[name]; n != nil {
		n.Add(1)
	}
	return c.r.Run(ctx, user, argv, stdin)
}

type itEnv struct {
	st   *stacktest.Stack
	pool *sshconn.Pool
	opts Options
}

func setupIntegration(t testing.TB) *itEnv {
	t.Helper()
	st := stacktest.Require(t)
	ca, err := sshconn.LoadSigner(st.UserCAKey)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := sshconn.New(sshconn.Config{Addr: st.SSHAddr, KnownHostsFile: st.KnownHosts, UserCA: ca, MaxSessions: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	trainerDir := st.Env["STACK_TRAINER_DIR"]
	if trainerDir == "" {
		trainerDir = filepath.Join(filepath.Dir(st.Dir), "trainer")
	}
	part := st.Partition
	if part == "" {
		part = "gpu"
	}
	return &itEnv{st: st, pool: pool, opts: Options{
		Cluster: "dev", SlurmConf: st.SlurmConf, JobRoot: st.JobRoot,
		Partitions: []string{part, "urgent"}, DefaultPartition: part,
		Python: st.Python, TrainerDir: trainerDir,
		CheckpointSignal: "USR2", SignalLead: 60 * time.Second, RestartBudget: 3,
		ProbeUser: "bob", // capacity (the pre-sbatch check) is read as another account than the submitter
	}}
}

// client returns a Client whose "python" is the fake trainer in user's job root.
func (e *itEnv) fakeClient(t testing.TB, users ...string) (*Client, *countingRunner) {
	t.Helper()
	ctx := context.Background()
	for _, u := range users {
		f := filepath.Join(e.st.JobRoot, u, "fake-trainer.sh")
		if err := e.pool.WriteFile(ctx, u, f, []byte(fakeTrainerRemote), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	o := e.opts
	// Every user has the same fake at <root>/<user>/fake-trainer.sh; the script names
	// one path, so each user's jobs use a client made for that user.
	o.Python = filepath.Join(e.st.JobRoot, users[0], "fake-trainer.sh")
	cr := newCounting(e.pool)
	c, err := New(cr, o)
	if err != nil {
		t.Fatal(err)
	}
	return c, cr
}

var itSeq atomic.Int64

func newJobID(prefix string) string {
	return fmt.Sprintf("%s-%x-%d", prefix, time.Now().UnixNano()&0xffffffffff, itSeq.Add(1))
}

// prepare creates the job directory as user and writes mode for the fake trainer.
func (e *itEnv) prepare(t testing.TB, user, jobID, mode string) string {
	t.Helper()
	ctx := context.Background()
	dir := JobDir(e.st.JobRoot, user, jobID)
	if err := e.pool.MkdirAll(ctx, user, dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if mode != "" {
		if err := e.pool.WriteFile(ctx, user, dir+"/mode", []byte(mode+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// queueWait bounds waits that include queueing: the stack is shared with other tests.
const queueWait = 4 * time.Minute

// submit submits req and cancels the job when the test ends, whatever happens.
func submit(t testing.TB, c *Client, user string, req Request) Submitted {
	t.Helper()
	sub, err := c.Submit(context.Background(), user, req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Cancel(context.Background(), user, sub.ID) })
	return sub
}

func smallRequest(user, jobID string) Request {
	return Request{JobID: jobID, User: user, CPUs: 1, MemoryMB: 200, TimeLimitMinutes: 10}
}

// waitFor polls id until cond holds or timeout passes.
func waitFor(t testing.TB, c *Client, user, id string, timeout time.Duration, what string, cond func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last Status
	for time.Now().Before(deadline) {
		st, err := c.Poll(context.Background(), user, []string{id})
		if err != nil {
			t.Fatal(err)
		}
		last = st[id]
		if cond(last) {
			return last
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("job %s: %s not reached in %v; last %+v", id, what, timeout, last)
	return last
}

func terminal(s Status) bool { return s.State.Terminal() }

func TestIntegrationSubmitCompletesAndFindByTag(t *testing.T) {
	e := setupIntegration(t)
	c, _ := e.fakeClient(t, "alice")
	ctx := context.Background()
	id := newJobID("it-ok")
	dir := e.prepare(t, "alice", id, "exit0")
	before := time.Now()
	sub := submit(t, c, "alice", smallRequest("alice", id))
	st := waitFor(t, c, "alice", sub.ID, queueWait, "terminal", terminal)
	if st.State != StateCompleted || st.ExitCode != 0 {
		t.Fatalf("state %+v", st)
	}
	f, err := c.FindByTag(ctx, "alice", id, before)
	if err != nil || f == nil || f.ID != sub.ID {
		t.Fatalf("FindByTag = %+v, %v; want %s", f, err, sub.ID)
	}
	if f, err := c.FindByTag(ctx, "alice", newJobID("never"), before); err != nil || f != nil {
		t.Errorf("FindByTag of an unknown tag = %+v, %v", f, err)
	}
	files, err := c.ReadFiles(ctx, "alice", []string{dir + "/slurm-" + sub.ID + ".out", dir + "/runs", dir + "/nope"}, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	if !files[0].Exists || !strings.Contains(string(files[0].Data), "ftgate: job "+sub.ID+" run 0") {
		t.Errorf("output file: %+v", files[0])
	}
	if string(files[1].Data) != "0\n" || files[2].Exists {
		t.Errorf("runs %q, missing file exists=%v", files[1].Data, files[2].Exists)
	}
}

func TestIntegrationTooManyGPUsIsTyped(t *testing.T) {
	e := setupIntegration(t)
	c, cr := e.fakeClient(t, "alice")
	ctx := context.Background()
	id := newJobID("it-gpu5")
	e.prepare(t, "alice", id, "exit0")
	req := smallRequest("alice", id)
	req.GPUs = 5

	// Refused before sbatch: the partition's largest node has 4 GPUs.
	_, err := c.Submit(ctx, "alice", req)
	if job.ErrorCode(err) != job.EUnprocessable || !errors.Is(err, ErrNodeConfig) || cr.count["sbatch"].Load() != 0 {
		t.Fatalf("pre-check: %v (sbatch calls %d)", err, cr.count["sbatch"].Load())
	}
	// And sbatch's own answer maps to the same typed error: pretend the node is bigger.
	capy, err := c.Capacity(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	for i := range capy.Partitions {
		capy.Partitions[i].MaxNodeGPUs = 8
	}
	c.mu.Lock()
	c.capCache, c.capAt = capy, time.Now()
	c.mu.Unlock()
	_, err = c.Submit(ctx, "alice", req)
	if job.ErrorCode(err) != job.EUnprocessable || !errors.Is(err, ErrNodeConfig) || cr.count["sbatch"].Load() != 1 {
		t.Fatalf("sbatch: %v", err)
	}
	// An unknown partition, straight from sbatch.
	o := c.opts
	o.Partitions = append(o.Partitions, "nosuch")
	c2, err := New(e.pool, o)
	if err != nil {
		t.Fatal(err)
	}
	c2.capCache = &Capacity{Partitions: []Partition{{Name: "nosuch", MaxNodeCPUs: 16, MaxNodeGPUs: 4, MaxNodeMemoryMB: 16000}}}
	c2.capAt = time.Now()
	req.GPUs, req.Partition = 0, "nosuch"
	if _, err := c2.Submit(ctx, "alice", req); !errors.Is(err, ErrUnknownPartition) || job.ErrorCode(err) != job.EUnprocessable {
		t.Fatalf("partition: %v", err)
	}
}

func TestIntegrationCheckpointSignalReachesTrainer(t *testing.T) {
	e := setupIntegration(t)
	c, _ := e.fakeClient(t, "alice")
	ctx := context.Background()
	id := newJobID("it-sig")
	dir := e.prepare(t, "alice", id, "wait-signal")
	req := smallRequest("alice", id)
	sub := submit(t, c, "alice", req)
	waitFor(t, c, "alice", sub.ID, queueWait, "RUNNING", func(s Status) bool { return s.State == StateRunning })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := e.pool.Stat(ctx, "alice", dir+"/ready"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("fake trainer never became ready")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := c.Signal(ctx, "alice", sub.ID); err != nil {
		t.Fatal(err)
	}
	st := waitFor(t, c, "alice", sub.ID, 20*time.Second, "terminal", terminal)
	if st.State != StateCompleted {
		t.Fatalf("after signal: %+v", st)
	}
	b, err := e.pool.ReadFile(ctx, "alice", dir+"/marker", 100)
	if err != nil || strings.TrimSpace(string(b)) != "signalled USR2" {
		t.Fatalf("marker %q, %v", b, err)
	}
	// A finished job refuses the signal with a conflict.
	if err := c.Signal(ctx, "alice", sub.ID); job.ErrorCode(err) != job.EConflict {
		t.Errorf("signal to a completed job: %v", err)
	}
}

func TestIntegrationRequeueHoldThenReleaseRunsAgain(t *testing.T) {
	e := setupIntegration(t)
	c, _ := e.fakeClient(t, "alice")
	ctx := context.Background()
	id := newJobID("it-rqh")
	dir := e.prepare(t, "alice", id, "exit0")
	sub := submit(t, c, "alice", smallRequest("alice", id))
	waitFor(t, c, "alice", sub.ID, queueWait, "COMPLETED", func(s Status) bool { return s.State == StateCompleted })
	if err := c.RequeueHold(ctx, "alice", sub.ID); err != nil {
		t.Fatal(err)
	}
	held := waitFor(t, c, "alice", sub.ID, 30*time.Second, "requeued-held", func(s Status) bool { return s.RequeuedHeld })
	if held.State != StatePending || !held.Held {
		t.Errorf("held: %+v", held)
	}
	if err := c.Signal(ctx, "alice", sub.ID); !errors.Is(err, ErrPending) {
		t.Errorf("signal to a pending job: %v", err)
	}
	start := time.Now()
	if err := c.Release(ctx, "alice", sub.ID); err != nil {
		t.Fatal(err)
	}
	st := waitFor(t, c, "alice", sub.ID, queueWait, "COMPLETED again",
		func(s Status) bool { return s.State == StateCompleted && s.Restarts == 1 })
	t.Logf("release -> completed again in %v (%+v)", time.Since(start).Round(time.Millisecond), st)
	b, err := e.pool.ReadFile(ctx, "alice", dir+"/runs", 100)
	if err != nil || string(b) != "0\n1\n" {
		t.Fatalf("runs %q, %v (want SLURM_RESTART_COUNT unset then 1)", b, err)
	}
}

func TestIntegrationCancelTwice(t *testing.T) {
	e := setupIntegration(t)
	c, _ := e.fakeClient(t, "alice")
	ctx := context.Background()
	id := newJobID("it-cancel")
	e.prepare(t, "alice", id, "sleep")
	sub := submit(t, c, "alice", smallRequest("alice", id))
	for i := 0; i < 2; i++ {
		if err := c.Cancel(ctx, "alice", sub.ID); err != nil {
			t.Fatalf("cancel %d: %v", i+1, err)
		}
	}
	st := waitFor(t, c, "alice", sub.ID, queueWait, "terminal", terminal)
	if st.State != StateCancelled {
		t.Errorf("state %+v", st)
	}
	if err := c.Cancel(ctx, "alice", "999999"); err != nil {
		t.Errorf("cancel unknown: %v", err)
	}
}

func TestIntegrationPoll50InOneSqueue(t *testing.T) {
	e := setupIntegration(t)
	ctx := context.Background()
	ids := submitHeld(t, e, "alice", 50)
	defer cancelAll(e, "alice", ids)
	cr := newCounting(e.pool)
	c, err := New(cr, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	st, err := c.Poll(ctx, "alice", ids)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("poll of %d jobs: %v, squeue %d, sacct %d", len(ids), time.Since(start), cr.count["squeue"].Load(), cr.count["sacct"].Load())
	if len(st) != 50 || cr.count["squeue"].Load() != 1 || cr.count["sacct"].Load() != 0 {
		t.Fatalf("%d states, %d squeue, %d sacct", len(st), cr.count["squeue"].Load(), cr.count["sacct"].Load())
	}
	for _, id := range ids {
		if s := st[id]; s.State != StatePending || !s.Held {
			t.Errorf("%s: %+v", id, s)
		}
	}
	// An id squeue does not know does not hide the others.
	st, err = c.Poll(ctx, "alice", append([]string{"999999"}, ids[:3]...))
	if err != nil || len(st) != 3 {
		t.Errorf("with an unknown id: %d states, %v", len(st), err)
	}
}

// submitHeld submits n held one-CPU jobs directly with sbatch (they never run) and
// returns their ids.
func submitHeld(t testing.TB, e *itEnv, user string, n int) []string {
	t.Helper()
	ctx := context.Background()
	var ids []string
	for i := 0; i < n; i++ {
		out, _, err := e.pool.Run(ctx, user, []string{"env", "SLURM_CONF=" + e.st.SlurmConf, "sbatch", "--parsable", "--hold",
			"-J", "ftgate-it-held", "-o", "/dev/null", "--mem=10", "--wrap", "true"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		id, _, err := parseSubmit(string(out))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func cancelAll(e *itEnv, user string, ids []string) {
	for start := 0; start < len(ids); start += 100 {
		batch := ids[start:min(start+100, len(ids))]
		_, _, _ = e.pool.Run(context.Background(), user, append([]string{"env", "SLURM_CONF=" + e.st.SlurmConf, "scancel"}, batch...), nil)
	}
}

func TestIntegrationCertificateAuthAsAliceAndBob(t *testing.T) {
	e := setupIntegration(t)
	ctx := context.Background()
	got := map[string]string{}
	for _, user := range []string{"alice", "bob"} {
		c, _ := e.fakeClient(t, user)
		id := newJobID("it-user")
		e.prepare(t, user, id, "exit0")
		sub := submit(t, c, user, smallRequest(user, id))
		waitFor(t, c, user, sub.ID, queueWait, "terminal", terminal)
		// sacct shows a placeholder user (root) for a few seconds; wait for the real row.
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			out, _, err := e.pool.Run(ctx, user, []string{"env", "SLURM_CONF=" + e.st.SlurmConf, "sacct", "-n", "-P", "-X", "-j", sub.ID, "-o", "User,JobName"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			line := strings.TrimSpace(string(out))
			if strings.HasSuffix(line, "|"+Tag(id)) {
				got[user] = strings.Split(line, "|")[0]
				break
			}
			time.Sleep(300 * time.Millisecond)
		}
		who, _, err := e.pool.Run(ctx, user, []string{"id", "-un"}, nil)
		if err != nil || strings.TrimSpace(string(who)) != user {
			t.Errorf("logged in as %q, want %s (%v)", who, user, err)
		}
	}
	if got["alice"] != "alice" || got["bob"] != "bob" {
		t.Fatalf("sacct users: %v", got)
	}
	// Per-user isolation: bob cannot read or write alice's job root.
	if _, err := e.pool.ReadDir(ctx, "bob", filepath.Join(e.st.JobRoot, "alice")); err == nil {
		t.Error("bob listed alice's job root")
	}
	if err := e.pool.WriteFile(ctx, "bob", filepath.Join(e.st.JobRoot, "alice", "x"), []byte("x"), 0o600); err == nil {
		t.Error("bob wrote into alice's job root")
	}
}

func TestIntegrationSFTPAndReads(t *testing.T) {
	e := setupIntegration(t)
	ctx := context.Background()
	dir := e.prepare(t, "alice", newJobID("it-sftp"), "")
	f := dir + "/job.json"
	for _, body := range []string{`{"v":1}`, `{"v":2,"name":"longer body"}`} {
		if err := e.pool.WriteFile(ctx, "alice", f, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if b, err := e.pool.ReadFile(ctx, "alice", f, 1024); err != nil || string(b) != body {
			t.Fatalf("read back %q %v", b, err)
		}
	}
	fi, err := e.pool.Stat(ctx, "alice", f)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stat %v %v", fi, err)
	}
	ents, err := e.pool.ReadDir(ctx, "alice", dir)
	if err != nil || len(ents) != 1 {
		t.Fatalf("dir has %d entries (temp files left?): %v", len(ents), err)
	}
	r, err := e.pool.Open(ctx, "alice", f, 7)
	if err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(r)
	r.Close()
	if string(rest) != `"name":"longer body"}` {
		t.Errorf("open at 7: %q", rest)
	}
	root, err := e.pool.RealPath(ctx, "alice", dir+"/./job.json")
	if err != nil || root != f {
		t.Errorf("realpath %q %v", root, err)
	}
}

func TestIntegrationCapacity(t *testing.T) {
	e := setupIntegration(t)
	c, err := New(e.pool, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	capy, err := c.Capacity(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	p, ok := capy.Partition(e.opts.DefaultPartition)
	if !ok || p.MaxNodeGPUs != e.st.NodeGPUs || p.MaxNodeCPUs != 16 || len(capy.Nodes) != 1 || !capy.Nodes[0].Available {
		t.Fatalf("capacity %+v", capy)
	}
}

// TestIntegrationDefaultTemplateRunsRealTrainer renders the embedded template and runs
// trainer/ftgate_trainer on the cluster with a tiny SFT job.
func TestIntegrationDefaultTemplateRunsRealTrainer(t *testing.T) {
	e := setupIntegration(t)
	if _, err := os.Stat(filepath.Join(e.opts.TrainerDir, "ftgate_trainer", "__main__.py")); err != nil {
		stacktest.Skip(t, "no trainer at %s", e.opts.TrainerDir)
	}
	c, err := New(e.pool, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id := newJobID("it-train")
	dir := e.prepare(t, "alice", id, "")
	var rows strings.Builder
	for i := 0; i < 32; i++ {
		fmt.Fprintf(&rows, "{\"prompt\":\"upper: w%d\\n\",\"completion\":\"W%d\"}\n", i, i)
	}
	if err := e.pool.WriteFile(ctx, "alice", dir+"/train.jsonl", []byte(rows.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	spec := fmt.Sprintf(`{"name":"it","method":"sft","model":"builtin:tiny","dataset":{"path":%q},
"hyperparameters":{"learning_rate":0.003,"max_steps":4,"batch_size":4,"max_length":32,"warmup_steps":1,"seed":7},
"lora":{"enabled":false},"quantization":"none",
"logging":{"log_every":1,"eval_every":1000,"save_every":1000,"progress_interval_seconds":0.1},
"checkpoints":{"keep_last":1,"keep_best":1},"resources":{"gpus":1}}`, dir+"/train.jsonl")
	if err := e.pool.WriteFile(ctx, "alice", dir+"/job.json", []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	req := smallRequest("alice", id)
	req.CPUs, req.MemoryMB = 1, 2000
	sub := submit(t, c, "alice", req)
	if err := e.pool.WriteFile(ctx, "alice", dir+"/job.sbatch", []byte(sub.Script), 0o600); err != nil {
		t.Fatal(err)
	}
	st := waitFor(t, c, "alice", sub.ID, queueWait, "terminal", terminal)
	files, err := c.ReadFiles(ctx, "alice", []string{dir + "/progress.json", dir + "/slurm-" + sub.ID + ".out"}, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != StateCompleted {
		t.Fatalf("trainer job %+v\nprogress: %s\nlog:\n%s", st, files[0].Data, files[1].Data)
	}
	if !strings.Contains(string(files[0].Data), `"completed"`) {
		t.Errorf("progress.json: %s", files[0].Data)
	}
}
