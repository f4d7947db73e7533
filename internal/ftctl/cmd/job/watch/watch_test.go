package watch_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
	"github.com/ftgate/ftgate/internal/job"
)

// waitGets waits until the store served more than n Get calls.
func waitGets(e *ftctltest.Env, n int) bool {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if e.Store.Gets() > n {
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
	t.Parallel()
	e := ftctltest.NewEnv(t)
	e.Seed("j1", "alice", job.Running, func(j *job.Job) {
		j.SlurmState = "RUNNING"
		j.Progress = job.Progress{Phase: "training", Step: 100, TotalSteps: 300, Loss: ftctltest.Ptr(1.5)}
	})
	writeMetrics(t, filepath.Join(e.Root, "alice", "j1"), 3, 2.5, 2, 1.5)
	conns := make(chan string, 4)
	e.SetEvents(func(w http.ResponseWriter, r *http.Request) {
		conns <- r.Header.Get("Last-Event-ID")
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		fmt.Fprint(w, "retry: 3000\n\n: ping\n\n")
		fl.Flush()
		send := func(id int, mod func(j *job.Job), data string) {
			n := e.Store.Gets()
			e.Store.Update("j1", mod)
			fmt.Fprintf(w, "id: %d\nevent: progress\ndata: %s\n\n", id, data)
			fl.Flush()
			if !waitGets(e, n) {
				t.Errorf("event %d: ftctl did not re-read the job", id)
			}
		}
		switch r.Header.Get("Last-Event-ID") {
		case "":
			send(1, func(j *job.Job) { j.Progress.Step, j.Progress.Loss = 200, ftctltest.Ptr(1.0) },
				`{"job_id":"j1","id":1,"kind":"progress","data":{"step":200,"gpus":[{"index":0,"utilization_percent":87,"memory_used_mb":2048,"memory_total_mb":81920}]}}`)
			// Drop the connection.
		case "1":
			send(2, func(j *job.Job) {
				j.State, j.SlurmState, j.EndedAt = job.Succeeded, "COMPLETED", ftctltest.Ptr(ftctltest.T0)
				j.StartedAt = ftctltest.Ptr(ftctltest.T0.Add(-5 * time.Minute))
				j.Progress.Phase, j.Progress.Step, j.Progress.Loss = "completed", 300, ftctltest.Ptr(0.8)
			}, `{"job_id":"j1","id":2,"kind":"state","state":"succeeded"}`)
			<-r.Context().Done()
		default:
			t.Errorf("unexpected Last-Event-ID %q", r.Header.Get("Last-Event-ID"))
		}
	})
	code, out, errOut := e.Run("watch", "j1", "--exit-status", "--interval", "1h")
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
	t.Parallel()
	e := ftctltest.NewEnv(t)
	e.Seed("j2", "alice", job.Failed, func(j *job.Job) {
		j.Reason = "OUT_OF_MEMORY"
		j.Progress = job.Progress{Phase: "failed", Error: "CUDA out of memory"}
	})
	code, out, errOut := e.Run("watch", "j2", "--exit-status")
	want := "failed (Slurm 1002): OUT_OF_MEMORY\nJob j2 failed: OUT_OF_MEMORY: CUDA out of memory; see `ftctl logs j2`\n"
	if code != cmdutil.ExitJobFailed || out != want || errOut != "" {
		t.Errorf("exit %d stdout %q stderr %q; want 8 and %q", code, out, errOut, want)
	}
	if code, _, _ := e.Run("watch", "j2"); code != 0 {
		t.Errorf("without --exit-status: exit %d, want 0", code)
	}
	code, out, _ = e.Run("watch", "j2", "--json", "--exit-status")
	var j job.Job
	if code != cmdutil.ExitJobFailed || strings.Count(out, "\n") != 1 || json.Unmarshal([]byte(out), &j) != nil || j.State != job.Failed {
		t.Errorf("--json: exit %d, stdout %q; want one JSON line of the failed job and exit 8", code, out)
	}
}

// TestWatchPollsWithoutStreams: the gateway without event streaming answers 503; watch
// polls instead and ends when the job pauses.
func TestWatchPollsWithoutStreams(t *testing.T) {
	t.Parallel()
	e := ftctltest.NewEnv(t)
	e.Seed("j3", "alice", job.Running, func(j *job.Job) { j.Progress = job.Progress{Phase: "training", Step: 50, TotalSteps: 100} })
	go func() {
		if waitGets(e, 2) {
			e.Store.Update("j3", func(j *job.Job) {
				j.State, j.Progress.Phase, j.Progress.LatestCheckpoint = job.Paused, "paused", "step-50"
			})
		}
	}()
	code, out, errOut := e.Run("watch", "j3", "--interval", "100ms", "--exit-status")
	if code != 0 || errOut != "" || !strings.HasSuffix(out, "Job j3 paused at checkpoint step-50; resume it with `ftctl resume j3`\n") {
		t.Errorf("exit %d stderr %q stdout\n%s", code, errOut, out)
	}
}
