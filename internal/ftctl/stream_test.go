package ftctl

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
)

// waitGets waits until the store served more than n Get calls.
func waitGets(e *env, n int) bool {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if e.store.getCount() > n {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

func writeMetrics(t *testing.T, dir string, losses ...float64) {
	t.Helper()
	var b strings.Builder
	for i, l := range losses {
		fmt.Fprintf(&b, `{"step": %d, "loss": %g, "learning_rate": 0.001}`+"\n", (i+1)*10, l)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "metrics.jsonl"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestWatchEventsReconnect follows a job through its event stream (a handler that
// follows the SSE contract: the gateway's own streams need Postgres' LISTEN). The
// first connection drops after one event; the second must resume with Last-Event-ID.
func TestWatchEventsReconnect(t *testing.T) {
	e := newEnv(t)
	e.seed("j1", "alice", job.Running, func(j *job.Job) {
		j.SlurmState = "RUNNING"
		j.Progress = job.Progress{Phase: "training", Step: 100, TotalSteps: 300, Loss: ptr(1.5)}
	})
	writeMetrics(t, filepath.Join(e.root, "alice", "j1"), 3, 2.5, 2, 1.5)
	conns := make(chan string, 4)
	e.events = func(w http.ResponseWriter, r *http.Request) {
		conns <- r.Header.Get("Last-Event-ID")
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		fmt.Fprint(w, "retry: 3000\n\n: ping\n\n")
		fl.Flush()
		send := func(id int, mod func(j *job.Job), data string) {
			n := e.store.getCount()
			e.store.update("j1", mod)
			fmt.Fprintf(w, "id: %d\nevent: progress\ndata: %s\n\n", id, data)
			fl.Flush()
			if !waitGets(e, n) {
				t.Errorf("event %d: ftctl did not re-read the job", id)
			}
		}
		switch r.Header.Get("Last-Event-ID") {
		case "":
			send(1, func(j *job.Job) { j.Progress.Step, j.Progress.Loss = 200, ptr(1.0) },
				`{"job_id":"j1","id":1,"kind":"progress","data":{"step":200,"gpus":[{"index":0,"utilization_percent":87,"memory_used_mb":2048,"memory_total_mb":81920}]}}`)
			// Drop the connection.
		case "1":
			send(2, func(j *job.Job) {
				j.State, j.SlurmState, j.EndedAt = job.Succeeded, "COMPLETED", ptr(t0)
				j.StartedAt = ptr(t0.Add(-5 * time.Minute))
				j.Progress.Phase, j.Progress.Step, j.Progress.Loss = "completed", 300, ptr(0.8)
			}, `{"job_id":"j1","id":2,"kind":"state","state":"succeeded"}`)
			<-r.Context().Done()
		default:
			t.Errorf("unexpected Last-Event-ID %q", r.Header.Get("Last-Event-ID"))
		}
	}
	code, out, errOut := e.run("watch", "j1", "--exit-status", "--interval", "1h")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d stderr %q; stdout\n%s", code, errOut, out)
	}
	want := "running (Slurm 1001 RUNNING)  training  [######..............] 100/300 33%  loss 1.5\n" +
		"running (Slurm 1001 RUNNING)  training  [#############.......] 200/300 66%  loss 1\n" +
		"succeeded (Slurm 1001 COMPLETED)  [####################] 300/300 100%  loss 0.8\n" +
		"Job j1 succeeded after 5m00s; download the model with `ftctl download j1`\n"
	if out != want {
		t.Errorf("stdout\n%s\nwant\n%s", out, want)
	}
	if a, b := <-conns, <-conns; a != "" || b != "1" {
		t.Errorf("Last-Event-ID of the two connections %q, %q; want none, then 1", a, b)
	}
}

func TestWatchExitStatus(t *testing.T) {
	e := newEnv(t)
	e.seed("j2", "alice", job.Failed, func(j *job.Job) {
		j.Reason = "OUT_OF_MEMORY"
		j.Progress = job.Progress{Phase: "failed", Error: "CUDA out of memory"}
	})
	code, out, errOut := e.run("watch", "j2", "--exit-status")
	want := "failed (Slurm 1002): OUT_OF_MEMORY\nJob j2 failed: OUT_OF_MEMORY: CUDA out of memory; see `ftctl logs j2`\n"
	if code != ExitJobFailed || out != want || errOut != "" {
		t.Errorf("exit %d stdout %q stderr %q; want 8 and %q", code, out, errOut, want)
	}
	if code, _, _ := e.run("watch", "j2"); code != 0 {
		t.Errorf("without --exit-status: exit %d, want 0", code)
	}
	code, out, _ = e.run("watch", "j2", "--json", "--exit-status")
	var j job.Job
	if code != ExitJobFailed || strings.Count(out, "\n") != 1 || json.Unmarshal([]byte(out), &j) != nil || j.State != job.Failed {
		t.Errorf("--json: exit %d, stdout %q; want one JSON line of the failed job and exit 8", code, out)
	}
}

// TestWatchPollsWithoutStreams: the gateway without event streaming answers 503; watch
// polls instead and ends when the job pauses.
func TestWatchPollsWithoutStreams(t *testing.T) {
	e := newEnv(t)
	e.seed("j3", "alice", job.Running, func(j *job.Job) { j.Progress = job.Progress{Phase: "training", Step: 50, TotalSteps: 100} })
	go func() {
		if waitGets(e, 2) {
			e.store.update("j3", func(j *job.Job) {
				j.State, j.Progress.Phase, j.Progress.LatestCheckpoint = job.Paused, "paused", "step-50"
			})
		}
	}()
	code, out, errOut := e.run("watch", "j3", "--interval", "100ms", "--exit-status")
	if code != 0 || errOut != "" || !strings.HasSuffix(out, "Job j3 paused at checkpoint step-50; resume it with `ftctl resume j3`\n") {
		t.Errorf("exit %d stderr %q stdout\n%s", code, errOut, out)
	}
}

func TestWatchFrame(t *testing.T) {
	w := &watcher{o: &WatchOptions{}, losses: []float64{3, 2.5, 2, 1.5, 1, 0.8},
		gpus: []job.GPU{{Index: 0, UtilizationPercent: 87, MemoryUsedMB: 2048, MemoryTotalMB: 81920}}}
	j := job.Job{ID: "j1", State: job.Running, SlurmID: "1001", SlurmState: "RUNNING", RestartCount: 1, Spec: job.Spec{Name: "tiny-sft"},
		Progress: job.Progress{Phase: "training", Step: 150, TotalSteps: 300, Loss: ptr(0.8), TokensPerSecond: 2400, ETASeconds: ptr(80.0), LatestCheckpoint: "step-100"}}
	want := "Job j1 tiny-sft: running (Slurm 1001 RUNNING)\n" +
		"phase training, restarts 1, checkpoint step-100\n" +
		"[##########..........] 150/300 50%  loss 0.8  2400 tokens/s  ETA 1m20s\n" +
		"loss 0.8  █▆▅▃▂▁\n" +
		"GPU 0:  87% util, 2.0 GiB / 80.0 GiB\n"
	if got := w.frame(j); got != want {
		t.Errorf("frame\n%s\nwant\n%s", got, want)
	}
	if g := findGPUs([]byte(`{"kind":"progress","data":{"gpus":[{"index":2,"utilization_percent":5}]}}`)); len(g) != 1 || g[0].Index != 2 {
		t.Errorf("findGPUs: %+v", g)
	}
}

func TestLogs(t *testing.T) {
	e := newEnv(t)
	e.seed("j1", "alice", job.Succeeded, nil)
	log := "line 1\nline 2\nline 3\nline 4\n"
	dir := filepath.Join(e.root, "alice", "j1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "slurm-1001.out"), []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"logs", "j1"}, log},
		{[]string{"logs", "j1", "--tail", "2"}, "line 3\nline 4\n"},
		{[]string{"logs", "j1", "-f"}, log},
		{[]string{"logs", "j1", "-f", "-n", "1"}, "line 4\n"},
	} {
		code, out, errOut := e.run(tc.args...)
		if code != 0 || out != tc.want || errOut != "" {
			t.Errorf("%v: exit %d stdout %q stderr %q, want %q", tc.args, code, out, errOut, tc.want)
		}
	}
	if code, _, errOut := e.run("logs", "j1", "--tail", "-5"); code != 2 || !strings.Contains(errOut, "--tail must be between 0 and 100000") {
		t.Errorf("--tail -5: exit %d stderr %q", code, errOut)
	}
}

func TestDownloadModel(t *testing.T) {
	e := newEnv(t)
	e.seed("j1", "alice", job.Succeeded, nil)
	model := filepath.Join(e.root, "alice", "j1", "model")
	big := strings.Repeat("0123456789abcdef", 4096)
	writeManifestDir(t, model, 300, map[string]string{"model.pt": big, "config.json": `{"d":64}`, "tok/vocab.json": `["a"]`})
	out1 := filepath.Join(t.TempDir(), "m")
	code, out, errOut := e.run("download", "j1", "-o", out1)
	want := fmt.Sprintf("Downloaded the model of job j1 to %s: 3 files, 64.0 KiB, sha256 verified\n", out1)
	if code != 0 || out != want || errOut != "" {
		t.Fatalf("exit %d stdout %q stderr %q, want %q", code, out, errOut, want)
	}
	for name, body := range map[string]string{"model.pt": big, "tok/vocab.json": `["a"]`} {
		if b, err := os.ReadFile(filepath.Join(out1, name)); err != nil || string(b) != body {
			t.Errorf("%s: %d bytes, %v", name, len(b), err)
		}
	}
	// An interrupted download: half of model.pt in model.pt.part resumes with a Range.
	os.Remove(filepath.Join(out1, "model.pt"))
	if err := os.WriteFile(filepath.Join(out1, "model.pt.part"), []byte(big[:30000]), 0o644); err != nil {
		t.Fatal(err)
	}
	e.requests = nil
	code, out, errOut = e.run("download", "j1", "-o", out1)
	if code != 0 || !strings.HasSuffix(out, "sha256 verified, 1 file resumed\n") || errOut != "" {
		t.Errorf("resume: exit %d stdout %q stderr %q", code, out, errOut)
	}
	var ranges []string
	for _, r := range e.requests {
		if h := r.Header.Get("Range"); h != "" {
			ranges = append(ranges, r.URL.Query().Get("file")+" "+h)
		}
	}
	if strings.Join(ranges, ",") != "model.pt bytes=30000-" {
		t.Errorf("range requests %q, want only model.pt from byte 30000", ranges)
	}
	if b, _ := os.ReadFile(filepath.Join(out1, "model.pt")); string(b) != big {
		t.Errorf("resumed model.pt differs")
	}
	// A file that does not match the manifest is refused and removed.
	if err := os.WriteFile(filepath.Join(model, "config.json"), []byte(`{"d":65}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out2 := filepath.Join(t.TempDir(), "m2")
	code, out, errOut = e.run("download", "j1", "-o", out2)
	if code != 1 || out != "" || !strings.HasPrefix(errOut, "ftctl: config.json: sha256 ") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("corrupt file: exit %d stdout %q stderr %q", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(out2, "config.json")); err == nil {
		t.Errorf("a file failing its checksum was kept")
	}
}

func TestDownloadCheckpointAndLogs(t *testing.T) {
	e := newEnv(t)
	e.seed("j1", "alice", job.Paused, nil)
	dir := filepath.Join(e.root, "alice", "j1")
	writeManifestDir(t, filepath.Join(dir, "checkpoints", "step-50"), 50, map[string]string{"model.pt": "w50", "optimizer.pt": "o50"})
	if err := os.WriteFile(filepath.Join(dir, "slurm-1001.out"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	to := t.TempDir()
	code, out, errOut := e.run("download", "j1", "--checkpoint", "step-50", "-o", filepath.Join(to, "ck"))
	if want := fmt.Sprintf("Downloaded the checkpoint step-50 of job j1 to %s: 2 files, 6 B, sha256 verified\n", filepath.Join(to, "ck")); code != 0 || out != want || errOut != "" {
		t.Errorf("checkpoint: exit %d stdout %q stderr %q, want %q", code, out, errOut, want)
	}
	if b, _ := os.ReadFile(filepath.Join(to, "ck", "optimizer.pt")); string(b) != "o50" {
		t.Errorf("optimizer.pt = %q", b)
	}
	for i, want := range []string{"(6 B, 6 B new)", "(6 B, 0 B new)"} {
		code, out, errOut = e.run("download", "j1", "--logs", "-o", to)
		if code != 0 || out != fmt.Sprintf("Downloaded the log of job j1 to %s %s\n", filepath.Join(to, "j1.log"), want) || errOut != "" {
			t.Errorf("logs #%d: exit %d stdout %q stderr %q", i, code, out, errOut)
		}
	}
	code, _, errOut = e.run("download", "j1", "--checkpoint", "../x")
	if code != 2 || !strings.Contains(errOut, `--checkpoint "../x": want a checkpoint name like step-100`) {
		t.Errorf("bad checkpoint: exit %d stderr %q", code, errOut)
	}
	code, _, errOut = e.run("download", "j1", "--checkpoint", "step-7", "-o", filepath.Join(to, "none"))
	if code != 1 || strings.Count(errOut, "\n") != 1 {
		t.Errorf("missing checkpoint: exit %d stderr %q", code, errOut)
	}
}
