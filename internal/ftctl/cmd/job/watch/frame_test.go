package watch

import (
	"strings"
	"testing"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/job"
)

func TestWatchFrame(t *testing.T) {
	t.Parallel()
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

func TestReadSSE(t *testing.T) {
	t.Parallel()
	in := "retry: 3000\n\n: ping\n\nid: 4\nevent: progress\ndata: {\"a\":1}\n\ndata: x\ndata: y\n\nevent: error\ndata:{}\n"
	var got []string
	err := client.ReadSSE(strings.NewReader(in), func(e client.SSEEvent) error {
		got = append(got, e.ID+"|"+e.Event+"|"+e.Data)
		return nil
	})
	if want := `4|progress|{"a":1},4||x` + "\n" + "y"; strings.Join(got, ",") != want || err == nil {
		t.Errorf("events %q (err %v), want %q", strings.Join(got, ","), err, want)
	}
}

func ptr[T any](v T) *T { return &v }
