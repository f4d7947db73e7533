package root_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/stacktest"
)

// startGateway builds cmd/gateway and runs `gateway serve` with the stack's config on
// a free loopback port; it returns the gateway's URL.
func startGateway(t *testing.T, st *stacktest.Stack) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "gateway")
	build := exec.Command("go", "build", "-o", bin, "./cmd/gateway")
	build.Dir = ftctltest.RepoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build gateway: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	logf, err := os.Create(filepath.Join(dir, "gateway.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--config", st.GatewayConfig)
	cmd.Env = append(os.Environ(), "FTGATE_LISTEN="+addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("gateway log (tail):\n%s", b)
		}
	})
	url := "http://" + addr
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway did not answer /health within 60s: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// runFor runs ftctl like e.run but fails the test when it takes longer than d.
func runFor(t *testing.T, e *ftctltest.AuthEnv, d time.Duration, args ...string) (string, string, int) {
	t.Helper()
	type result struct {
		out, errOut string
		code        int
	}
	done := make(chan result, 1)
	go func() {
		out, errOut, code := e.Run(t, nil, args...)
		done <- result{out, errOut, code}
	}()
	select {
	case r := <-done:
		return r.out, r.errOut, r.code
	case <-time.After(d):
		t.Fatalf("ftctl %s did not finish within %s", strings.Join(args, " "), d)
	}
	return "", "", 0
}

// jobState reads the job through `ftctl status --json`.
func jobState(t *testing.T, e *ftctltest.AuthEnv, id string) job.Job {
	t.Helper()
	out, errOut, code := runFor(t, e, time.Minute, "status", id, "--json")
	var j job.Job
	if code != 0 || json.Unmarshal([]byte(out), &j) != nil {
		t.Fatalf("status %s: exit %d: %s", id, code, errOut)
	}
	return j
}

// waitState polls the job until ok accepts it.
func waitState(t *testing.T, e *ftctltest.AuthEnv, id string, d time.Duration, what string, ok func(j job.Job) bool) job.Job {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		j := jobState(t, e, id)
		if ok(j) {
			return j
		}
		if j.State.Terminal() || time.Now().After(deadline) {
			t.Fatalf("job %s: waiting for %s, got state %s (%s), progress %+v", id, what, j.State, j.Reason, j.Progress)
		}
		time.Sleep(time.Second)
	}
}

var submittedRE = regexp.MustCompile(`^Submitted job (\S+) `)

// TestIntegrationFtctlEndToEnd drives ftctl against the real gateway on the real
// stack: log in through Dex's device flow, submit the tiny SFT example and watch it to
// the end, download the model and check it against its manifest, pause and resume a
// running job, and the one-line failures for a bad spec and an unreachable gateway.
func TestIntegrationFtctlEndToEnd(t *testing.T) {
	st := stacktest.Require(t)
	gw := startGateway(t, st)
	e := &ftctltest.AuthEnv{CfgDir: filepath.Join(t.TempDir(), "ftctl"), Env: map[string]string{"FTCTL_SERVER": gw}}

	browser := &ftctltest.DexBrowser{Email: "alice@example.com", Password: st.Password}
	out, errOut, code := e.Run(t, &ftctltest.Approver{OnCode: browser.Approve}, "auth", "login", "--timeout", "60s")
	if berr := browser.Wait(); berr != nil {
		t.Fatalf("approving in Dex's pages: %v", berr)
	}
	if code != 0 {
		t.Fatalf("login: exit %d\n%s%s", code, out, errOut)
	}

	example := filepath.Join(ftctltest.RepoRoot(t), "examples", "sft-tiny.yaml")
	// The tiny model trains on CPU: asking for no GPU lets Slurm's backfill start the
	// jobs beside whatever else holds the node's four GPUs on a shared stack.
	noGPU := []string{"--set", "resources.gpus=0", "--set", "resources.time_limit_minutes=15"}

	t.Run("bad field", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.yaml")
		b, err := os.ReadFile(example)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bad, bytes.Replace(b, []byte("batch_size:"), []byte("batchsize:"), 1), 0o644); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := runFor(t, e, 30*time.Second, "submit", "-f", bad)
		if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "hyperparameters.batchsize: unknown field (did you mean hyperparameters.batch_size?)") {
			t.Errorf("exit %d stdout %q stderr %q; want exit 1 and one line naming hyperparameters.batchsize", code, out, errOut)
		}
	})

	t.Run("train watch download", func(t *testing.T) {
		start := time.Now()
		out, errOut, code := runFor(t, e, 8*time.Minute, append([]string{"submit", "-f", example, "--set", "hyperparameters.max_steps=60",
			"--set", "logging.save_every=20", "--watch", "--exit-status"}, noGPU...)...)
		t.Logf("submit --watch took %s:\n%s", time.Since(start).Round(time.Second), out)
		m := submittedRE.FindStringSubmatch(out)
		if code != 0 || m == nil {
			t.Fatalf("exit %d stderr %q stdout\n%s", code, errOut, out)
		}
		id := m[1]
		if !strings.Contains(out, "Job "+id+" succeeded after ") {
			t.Errorf("watch did not report success:\n%s", out)
		}
		j := jobState(t, e, id)
		wantData := filepath.Join(ftctltest.RepoRoot(t), "examples", "data", "sft-train.jsonl")
		if j.State != job.Succeeded || j.Spec.Dataset.Path != wantData || j.Spec.Hyperparameters.MaxSteps != 60 {
			t.Errorf("job %s: state %s, dataset %q, max_steps %d", id, j.State, j.Spec.Dataset.Path, j.Spec.Hyperparameters.MaxSteps)
		}
		out, errOut, code = runFor(t, e, 30*time.Second, "list")
		if code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "succeeded") {
			t.Errorf("list: exit %d stderr %q\n%s", code, errOut, out)
		}

		dir := filepath.Join(t.TempDir(), "model")
		out, errOut, code = runFor(t, e, 2*time.Minute, "download", id, "-o", dir)
		if code != 0 || !strings.Contains(out, "sha256 verified") {
			t.Fatalf("download: exit %d stdout %q stderr %q", code, out, errOut)
		}
		// Check the files against the manifest independently of ftctl.
		var man client.Manifest
		b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
		if err != nil || json.Unmarshal(b, &man) != nil || len(man.Files) == 0 {
			t.Fatalf("manifest.json: %v %q", err, b)
		}
		for name, f := range man.Files {
			data, err := os.ReadFile(filepath.Join(dir, name))
			sum := sha256.Sum256(data)
			if err != nil || int64(len(data)) != f.Size || hex.EncodeToString(sum[:]) != f.SHA256 {
				t.Errorf("%s: %v, %d bytes, sha256 %x; manifest says %d bytes, %s", name, err, len(data), sum, f.Size, f.SHA256)
			}
		}
		out, errOut, code = runFor(t, e, 30*time.Second, "logs", id, "--tail", "5")
		if code != 0 || out == "" {
			t.Errorf("logs: exit %d stdout %q stderr %q", code, out, errOut)
		}
	})

	t.Run("pause resume", func(t *testing.T) {
		out, errOut, code := runFor(t, e, time.Minute, append([]string{"submit", "-f", example, "--set", "hyperparameters.max_steps=1000000",
			"--set", "hyperparameters.epochs=1000", "--set", "logging.save_every=1000", "--set", "logging.progress_interval_seconds=1"}, noGPU...)...)
		m := submittedRE.FindStringSubmatch(out)
		if code != 0 || m == nil {
			t.Fatalf("submit: exit %d stdout %q stderr %q", code, out, errOut)
		}
		id := m[1]
		defer e.Run(t, nil, "cancel", id)
		waitState(t, e, id, 6*time.Minute, "training progress", func(j job.Job) bool { return j.State == job.Running && j.Progress.Step > 0 })

		out, errOut, code = runFor(t, e, time.Minute, "pause", id)
		if code != 0 || !strings.HasPrefix(out, "Pausing job "+id+":") {
			t.Fatalf("pause: exit %d stdout %q stderr %q", code, out, errOut)
		}
		out, _, code = runFor(t, e, time.Minute, "pause", id)
		if code != 0 || !(strings.HasPrefix(out, "Job "+id+" is already pausing") || strings.HasPrefix(out, "Job "+id+" is already paused")) {
			t.Errorf("second pause: exit %d stdout %q", code, out)
		}
		paused := waitState(t, e, id, 2*time.Minute, "paused", func(j job.Job) bool { return j.State == job.Paused })
		if paused.Progress.LatestCheckpoint == "" {
			t.Errorf("paused without a checkpoint: %+v", paused.Progress)
		}
		out, errOut, code = runFor(t, e, time.Minute, "resume", id)
		if code != 0 || !strings.HasPrefix(out, "Resumed job "+id) {
			t.Fatalf("resume: exit %d stdout %q stderr %q", code, out, errOut)
		}
		resumed := waitState(t, e, id, 2*time.Minute, "running again past the checkpoint", func(j job.Job) bool {
			return j.State == job.Running && j.Progress.Step > paused.Progress.Step
		})
		t.Logf("paused at step %d (%s), running again at step %d, restarts %d", paused.Progress.Step, paused.Progress.LatestCheckpoint, resumed.Progress.Step, resumed.RestartCount)
		out, errOut, code = runFor(t, e, time.Minute, "cancel", id)
		if code != 0 || out != "Cancelled job "+id+"\n" {
			t.Errorf("cancel: exit %d stdout %q stderr %q", code, out, errOut)
		}
	})

	t.Run("no server", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead := "http://" + l.Addr().String()
		l.Close()
		copySession(t, e.CfgDir, gw, dead)
		start := time.Now()
		out, errOut, code := runFor(t, e, 40*time.Second, "--server", dead, "list")
		want := fmt.Sprintf("ftctl: cannot reach the gateway at %s: connect: connection refused", dead)
		if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, want) {
			t.Errorf("exit %d stdout %q stderr %q; want exit 1 and one line starting %q", code, out, errOut, want)
		}
		if d := time.Since(start); d > 35*time.Second {
			t.Errorf("took %s", d)
		}
	})
}

// copySession makes the login session of from also the session of to, as if the
// gateway at to had been logged in to and then went away.
func copySession(t *testing.T, cfgDir, from, to string) {
	t.Helper()
	path := filepath.Join(cfgDir, "tokens.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Sessions map[string]map[string]any `json:"sessions"`
	}
	if err := json.Unmarshal(b, &f); err != nil || f.Sessions[from] == nil {
		t.Fatalf("token cache: %v, sessions %v", err, f.Sessions)
	}
	s := map[string]any{}
	for k, v := range f.Sessions[from] {
		s[k] = v
	}
	s["server"] = to
	f.Sessions[to] = s
	b, _ = json.Marshal(f)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
