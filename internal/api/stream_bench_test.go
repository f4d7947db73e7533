package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/benchtable"
	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/postgres"
	"github.com/ftgate/ftgate/internal/postgres/pgtest"
	"github.com/ftgate/ftgate/internal/reconcile"
	"github.com/ftgate/ftgate/internal/slurm"
)

// These benchmarks need the local stack; they print figures and assert nothing.

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func rssKiB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return -1
}

// BenchmarkProgressToSSELatency: a real Slurm job (sleep) on the stack, the real
// reconciler at the default poll interval (2s) reading progress.json over SSH, and an
// SSE subscriber on the gateway. Each iteration writes progress.json with a new step
// at a random moment and measures until the SSE client has the event.
func BenchmarkProgressToSSELatency(b *testing.B) {
	fsys, st := stackFS(b)
	pool := pgtest.Schema(b)
	rep := startReplica(b, pool, fsys, st.JobRoot, 0)
	ctx := context.Background()
	j := createJob(b, rep.store, "alice", st.JobRoot)
	remote(b, fsys, "alice", "mkdir", "-p", j.JobDir)
	b.Cleanup(func() { remote(b, fsys, "alice", "rm", "-rf", "--", j.JobDir) })
	out := remote(b, fsys, "alice", "sbatch", "--parsable", "--job-name=ftgate-bench", "-p", st.Partition, "--time=15", "--mem=100M", "-o", "/dev/null", "--wrap", "sleep 600")
	slurmID := strings.TrimSpace(strings.Split(out, ";")[0])
	b.Cleanup(func() { _, _, _ = fsys.Run(context.Background(), "alice", []string{"scancel", slurmID}, nil) })
	if _, err := rep.store.Transition(ctx, j.ID, job.Change{From: job.Submitting, To: job.Queued, SlurmID: slurmID}); err != nil {
		b.Fatal(err)
	}
	client, err := slurm.New(fsys, slurm.Options{Cluster: "dev", JobRoot: st.JobRoot, Partitions: []string{st.Partition}, DefaultPartition: st.Partition})
	if err != nil {
		b.Fatal(err)
	}
	const interval = 2 * time.Second // config default clusters[].poll_interval
	rec := &reconcile.Reconciler{Store: rep.store, Clusters: []reconcile.Cluster{{Name: "dev", Slurm: client, Interval: interval,
		Policy: reconcile.Policy{RestartBudget: 1, PauseGrace: time.Minute, LostGrace: time.Minute}}},
		Lead: func(ctx context.Context) (reconcile.Lease, error) {
			l, err := postgres.TryLead(ctx, pool, "reconcile")
			if l == nil {
				return nil, err
			}
			return l, nil
		}}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); rec.Run(rctx) }()
	b.Cleanup(func() { cancel(); <-done })

	events, stop := openSSE(b, rep.http.URL+"/api/training/"+j.ID+"/events", "alice", "")
	defer stop()
	write := func(step int) time.Time {
		p := map[string]any{"schema_version": 1, "phase": "training", "step": step, "total_steps": 1 << 30,
			"loss": 1.0 / float64(step+1), "updated_at": time.Now().UTC().Format(time.RFC3339Nano)}
		data, _ := json.Marshal(p)
		t0 := time.Now()
		if err := fsys.WriteFile(ctx, "alice", j.JobDir+"/progress.json", data, 0o644); err != nil {
			b.Fatal(err)
		}
		return t0
	}
	waitStep := func(step int, within time.Duration) time.Time {
		deadline := time.After(within)
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					b.Fatal("stream ended")
				}
				if ev.Name == "progress" && strings.Contains(ev.Data, fmt.Sprintf(`"step":%d,`, step)) {
					return ev.At
				}
			case <-deadline:
				cur, err := rep.store.Get(ctx, j.ID)
				if cur.State != job.Running {
					b.Skipf("the benchmark's Slurm job %s did not start (state %s, slurm %s): cluster busy?", slurmID, cur.State, cur.SlurmState)
				}
				b.Fatalf("step %d never arrived (job %s slurm %s %s progress %+v, %v)", step, cur.State, cur.SlurmID, cur.SlurmState, cur.Progress, err)
			}
		}
	}
	// Warm up: the job must be running and followed.
	write(0)
	waitStep(0, 60*time.Second)
	var lat []time.Duration
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		time.Sleep(time.Duration(rand.Int64N(int64(interval))))
		t0 := write(i)
		lat = append(lat, waitStep(i, 30*time.Second).Sub(t0))
	}
	b.StopTimer()
	b.ReportMetric(float64(percentile(lat, 0.5).Milliseconds()), "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Milliseconds()), "p99-ms")
	fmt.Printf("progress.json write -> SSE receipt at poll interval %v: n=%d p50=%v p99=%v max=%v\n",
		interval, len(lat), percentile(lat, 0.5).Round(time.Millisecond), percentile(lat, 0.99).Round(time.Millisecond), slices.Max(lat).Round(time.Millisecond))
}

// BenchmarkSSEWatchers1000: 1,000 concurrent SSE watchers of one job on one gateway
// (clients in the same process); each iteration commits one progress event and
// waits until every watcher has it.
func BenchmarkSSEWatchers1000(b *testing.B) {
	const watchers = 1000
	pool := pgtest.Schema(b)
	writer := startReplica(b, pool, nil, "/jobs", 0)
	gw := startReplica(b, pool, nil, "/jobs", 0)
	j := createJob(b, writer.store, "alice", "/jobs")
	ctx := context.Background()
	runtime.GC()
	rss0 := rssKiB()
	chans := make([]<-chan sseEvent, watchers)
	for i := range chans {
		var stop func()
		chans[i], stop = openSSE(b, gw.http.URL+"/api/training/"+j.ID+"/events", "alice", "1")
		defer stop()
	}
	for gw.hub.Stats().Subscribers < watchers {
		time.Sleep(10 * time.Millisecond)
	}
	runtime.GC()
	rss1 := rssKiB()
	var all, slowest []time.Duration
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		want := strconv.Itoa(i + 1)
		t0 := time.Now()
		if err := writer.store.SetProgress(ctx, j.ID, progressAt(int64(i))); err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		var worst time.Duration
		for _, ch := range chans {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ev := range ch {
					if ev.ID == want {
						d := ev.At.Sub(t0)
						mu.Lock()
						all = append(all, d)
						worst = max(worst, d)
						mu.Unlock()
						return
					}
				}
			}()
		}
		wg.Wait()
		slowest = append(slowest, worst)
	}
	b.StopTimer()
	b.ReportMetric(float64(percentile(all, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(slowest, 0.5).Microseconds())/1000, "all-delivered-ms")
	fmt.Printf("%d SSE watchers, %d events: per-delivery p50=%v p99=%v; all watchers served p50=%v max=%v; "+
		"RSS %d MiB before, %d MiB with watchers (clients and server in one process: about %d KiB per watcher pair); hub %+v\n",
		watchers, b.N, percentile(all, 0.5).Round(time.Microsecond), percentile(all, 0.99).Round(time.Microsecond),
		percentile(slowest, 0.5).Round(time.Microsecond), slices.Max(slowest).Round(time.Microsecond),
		rss0/1024, rss1/1024, (rss1-rss0)/watchers, gw.hub.Stats())
}

// writerOnly hides io.Discard's ReaderFrom (8 KiB reads) so copies use the given buffer.
type writerOnly struct{ io.Writer }

// BenchmarkDownloadThroughput: the same file downloaded through the gateway (GET
// /model?file=, the pipelined SFTP read path), read by the gateway's SFTP client alone
// (sshconn OpenStream), and fetched by OpenSSH's sftp (its defaults: 64 requests of
// 32 KiB in flight) as the reference, alternating, best of 3 each.
// FTGATE_BENCH_FILE_MIB sets the size (default 1024).
func BenchmarkDownloadThroughput(b *testing.B) {
	fsys, st := stackFS(b)
	pool := pgtest.Schema(b)
	rep := startReplica(b, pool, fsys, st.JobRoot, 0)
	ctx := context.Background()
	j := createJob(b, rep.store, "alice", st.JobRoot)
	mib := 1024
	if v, err := strconv.Atoi(os.Getenv("FTGATE_BENCH_FILE_MIB")); err == nil && v > 0 {
		mib = v
	}
	if b.N < 2 && mib >= 256 {
		return // the framework's probe run; make bench runs -benchtime 20x
	}
	sftpPath, err := exec.LookPath("sftp")
	if err != nil {
		b.Skip("no OpenSSH sftp client for the reference")
	}
	opts, host := st.OpenSSH(b, "alice")
	file := j.JobDir + "/model/big.bin"
	remote(b, fsys, "alice", "mkdir", "-p", j.JobDir+"/model")
	b.Cleanup(func() { remote(b, fsys, "alice", "rm", "-rf", "--", j.JobDir) })
	remote(b, fsys, "alice", "dd", "if=/dev/urandom", "of="+file, "bs=1M", "count="+strconv.Itoa(mib), "status=none")
	size := int64(mib) << 20
	b.SetBytes(size)
	var streamD, httpD, opensshD, connectD []time.Duration
	openssh := func(batch string) time.Duration {
		t0 := time.Now()
		cmd := exec.Command(sftpPath, append(append([]string{"-q", "-b", "-"}, opts...), host)...)
		cmd.Stdin = strings.NewReader(batch)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("OpenSSH sftp: %v: %s", err, out)
		}
		return time.Since(t0)
	}
	b.ResetTimer()
	for i := 0; i < min(b.N, 3); i++ {
		// The reference excludes sftp's process start, handshake and login (measured
		// alone), which the gateway's warm connection does not pay either.
		connectD = append(connectD, openssh("pwd\n"))
		opensshD = append(opensshD, openssh("get "+file+" /dev/null\n"))

		t0 := time.Now()
		rc, err := fsys.OpenStream(ctx, "alice", file, 0)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(writerOnly{io.Discard}, rc)
		rc.Close()
		if err != nil || n != size {
			b.Fatalf("sftp read %d bytes, %v", n, err)
		}
		streamD = append(streamD, time.Since(t0))

		t0 = time.Now()
		req, _ := http.NewRequest("GET", rep.http.URL+"/api/training/"+j.ID+"/model?file=big.bin", nil)
		req.Header.Set("Authorization", "Bearer alice")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != size {
			b.Fatalf("gateway download %d bytes, %v", n, err)
		}
		httpD = append(httpD, time.Since(t0))
	}
	b.StopTimer()
	rate := func(d time.Duration) float64 { return float64(size) / (1 << 20) / d.Seconds() }
	ref := rate(slices.Min(opensshD) - slices.Min(connectD))
	benchtable.Record(benchtable.Row{Figure: fmt.Sprintf("download %d MiB through the gateway (HTTP)", mib), Value: rate(slices.Min(httpD)),
		Unit: "MiB/s", Reference: "OpenSSH sftp get of the same file (less its connect time)", RefValue: ref, HigherIsBetter: true, Goal: 0.8})
	benchtable.Record(benchtable.Row{Figure: fmt.Sprintf("read %d MiB with sshconn OpenStream", mib), Value: rate(slices.Min(streamD)),
		Unit: "MiB/s", Reference: "OpenSSH sftp get of the same file (less its connect time)", RefValue: ref, HigherIsBetter: true})
	b.ReportMetric(rate(slices.Min(streamD)), "sftp-MiB/s")
	b.ReportMetric(rate(slices.Min(httpD)), "gateway-MiB/s")
	b.ReportMetric(ref, "openssh-MiB/s")
}
