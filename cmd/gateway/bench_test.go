package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/benchtable"
	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/postgres"
	"github.com/ftgate/ftgate/internal/slurm"
	"github.com/ftgate/ftgate/internal/sshconn"
	"github.com/ftgate/ftgate/internal/submit"
)

// submitBench is the gateway in-process plus the raw-sbatch reference over the very
// SSH pool the gateway's submitter uses.
type submitBench struct {
	e      *e2e
	pool   *sshconn.Pool
	sbatch []string // env SLURM_CONF=... sbatch --parsable (not held: Slurm schedules on submit, as for the gateway's jobs)
	script string   // the script the gateway renders for the bench spec
	spec   map[string]any
	hc     *http.Client

	mu   sync.Mutex
	raw  []string // Slurm ids of the reference jobs, cancelled at the end
	dirs []string // job directories the gateway created, removed at the end
}

func newSubmitBench(b *testing.B) *submitBench {
	e := startE2E(b, func(c *config.Config) { c.Limits.MaxActiveJobsPerUser = 1000 })
	cl := e.cfg.Clusters[0]
	pool, ok := e.app.sub.Clusters[cl.Name].Files.(*sshconn.Pool)
	if !ok {
		b.Fatalf("the submitter's files are a %T, not the SSH pool", e.app.sub.Clusters[cl.Name].Files)
	}
	spec := e.spec(2000, 0)
	spec["resources"].(map[string]any)["cpus"] = 16 // never starts while others run: queued is the end state
	script, err := e.app.sub.Clusters[cl.Name].Slurm.Render(slurm.Request{JobID: "bench-ref", User: "alice",
		Partition: cl.DefaultPartition, CPUs: 16, MemoryMB: 1024, TimeLimitMinutes: 10})
	if err != nil {
		b.Fatal(err)
	}
	s := &submitBench{e: e, pool: pool, script: script, spec: spec,
		sbatch: []string{"env", "SLURM_CONF=" + cl.SlurmConf, "sbatch", "--parsable"},
		hc:     &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	b.Cleanup(s.cancelRaw)
	// Runs before startE2E's cleanup closes the pool; the benchmarks cancel their jobs first.
	b.Cleanup(s.removeDirs)
	s.block(b)
	if _, err := s.rawSbatch(context.Background()); err != nil { // warm the connection
		b.Fatal(err)
	}
	return s
}

// block runs a job that takes the node's 16 CPUs for the benchmark, so none of the
// bench's jobs starts: a trainer started by the first gateway job took a tenth of the
// CPU while the gateway's jobs were submitted, and the raw jobs' scripts start nothing.
func (s *submitBench) block(b *testing.B) {
	cl := s.e.cfg.Clusters[0]
	ctx := context.Background()
	out, stderr, err := s.pool.Run(ctx, "alice", append(slices.Clone(s.sbatch), "-p", cl.DefaultPartition, "-c", "16",
		"-o", "/dev/null", "-J", "ftgate-bench-block", "--wrap", "sleep 900"), nil)
	if err != nil {
		b.Fatalf("blocker job: %v: %s", err, stderr)
	}
	id := strings.TrimSpace(strings.Split(string(out), ";")[0])
	b.Cleanup(func() {
		_, _, _ = s.pool.Run(context.Background(), "alice", []string{"env", "SLURM_CONF=" + cl.SlurmConf, "scancel", id}, nil)
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		st, err := s.e.slurm.Poll(ctx, "alice", []string{id})
		if err == nil && st[id].State == slurm.StateRunning {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("blocker job %s not running after 30 s: %+v %v", id, st[id], err)
		}
	}
}

// rawSbatch submits the gateway's rendered script with one sbatch over the pool.
func (s *submitBench) rawSbatch(ctx context.Context) (time.Duration, error) {
	t0 := time.Now()
	out, _, err := s.pool.Run(ctx, "alice", s.sbatch, strings.NewReader(s.script))
	d := time.Since(t0)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	s.raw = append(s.raw, strings.TrimSpace(strings.Split(string(out), ";")[0]))
	s.mu.Unlock()
	return d, nil
}

// remoteCommand is the gateway's own remote command alone (Client.SubmitInDir: job
// directory, job.json, job.sbatch and sbatch in one session), without HTTP or the
// database: the part of the gateway's latency that is the login node's.
func (s *submitBench) remoteCommand(ctx context.Context) (time.Duration, error) {
	cl := s.e.cfg.Clusters[0]
	id := postgres.NewID()
	req := slurm.Request{JobID: id, User: "alice", Partition: cl.DefaultPartition, CPUs: 16, MemoryMB: 1024, TimeLimitMinutes: 10}
	dir := slurm.JobDir(cl.JobRoot, "alice", id)
	t0 := time.Now()
	sub, err := s.e.app.sub.Clusters[cl.Name].Slurm.SubmitInDir(ctx, "alice", req, dir, []byte(`{"bench":true}`))
	d := time.Since(t0)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	s.raw = append(s.raw, sub.ID)
	s.dirs = append(s.dirs, dir)
	s.mu.Unlock()
	return d, nil
}

func (s *submitBench) cancelRaw() {
	s.mu.Lock()
	ids := s.raw
	s.raw = nil
	s.mu.Unlock()
	for len(ids) > 0 {
		n := min(len(ids), 200)
		_, _, _ = s.pool.Run(context.Background(), "alice", append([]string{"env", "SLURM_CONF=" + s.e.cfg.Clusters[0].SlurmConf, "scancel"}, ids[:n]...), nil)
		ids = ids[n:]
	}
}

// removeDirs deletes the job directories of the benchmark's gateway jobs.
func (s *submitBench) removeDirs() {
	s.mu.Lock()
	dirs := s.dirs
	s.dirs = nil
	s.mu.Unlock()
	for len(dirs) > 0 {
		n := min(len(dirs), 200)
		_, _, _ = s.pool.Run(context.Background(), "alice", append([]string{"rm", "-rf", "--"}, dirs[:n]...), nil)
		dirs = dirs[n:]
	}
}

func (s *submitBench) created(m map[string]any) {
	if d, ok := m["job_dir"].(string); ok && d != "" {
		s.mu.Lock()
		s.dirs = append(s.dirs, d)
		s.mu.Unlock()
	}
}

// submitOne POSTs the spec and returns the time until the job was queued in Slurm
// (the server's updated_at of the first non-submitting state, so polling adds nothing).
func (s *submitBench) submitOne(b *testing.B) (time.Duration, string) {
	body, _ := json.Marshal(s.spec)
	start := time.Now()
	req, _ := http.NewRequest("POST", s.e.url+"/api/training/execute", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.e.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.hc.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b.Fatalf("execute: %d %v", resp.StatusCode, m)
	}
	s.created(m)
	id := m["id"].(string)
	// The job's updated_at gives the exact time, so the first read waits: a read while
	// the remote command runs competes with it for the machine's two cores.
	time.Sleep(25 * time.Millisecond)
	for {
		req, _ := http.NewRequest("GET", s.e.url+"/api/training/status/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+s.e.token)
		resp, err := s.hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		m = nil
		_ = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if m["state"] != "submitting" {
			if m["state"] != "queued" && m["state"] != "running" {
				b.Fatalf("job %s: %v (%v)", id, m["state"], m["reason"])
			}
			seen := time.Since(start)
			if at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(m["updated_at"])); err == nil && at.After(start) && at.Sub(start) < seen {
				return at.Sub(start), id
			}
			return seen, id
		}
		if time.Since(start) > time.Minute {
			b.Fatalf("job %s still submitting after a minute", id)
		}
		time.Sleep(25 * time.Millisecond) // updated_at gives the exact time; polling must not load the gateway
	}
}

// BenchmarkSubmitLatency measures, on the real stack, POST /api/training/execute to
// queued in Slurm against one raw sbatch of the same rendered script over the same
// warm SSH pool, alternating them so all see the same load; the gateway's remote
// command alone (SubmitInDir, no HTTP or database) is the third series, so the table
// shows which part of the difference is the login node's and which the gateway's.
// Figures go to the bench table; nothing is asserted.
func BenchmarkSubmitLatency(b *testing.B) {
	s := newSubmitBench(b)
	ctx := context.Background()
	n := b.N
	var gw, raw, remote []time.Duration
	b.ResetTimer()
	for i := 0; i < n; i++ {
		d, err := s.rawSbatch(ctx)
		if err != nil {
			b.Fatal(err)
		}
		raw = append(raw, d)
		d, err = s.remoteCommand(ctx)
		if err != nil {
			b.Fatal(err)
		}
		remote = append(remote, d)
		g, id := s.submitOne(b)
		gw = append(gw, g)
		s.e.do("POST", "/api/training/cancel/"+id, nil)
	}
	b.StopTimer()
	s.cancelRaw()
	if b.N < 5 {
		return // the framework's probe run; make bench runs -benchtime 20x
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	benchtable.Record(benchtable.Row{Figure: "submit POST→queued p50", Value: ms(benchtable.Percentile(gw, 0.5)), Unit: "ms",
		Reference: "raw sbatch of the same script, same warm SSH pool", RefValue: ms(benchtable.Percentile(raw, 0.5)), Goal: 1.5})
	benchtable.Record(benchtable.Row{Figure: "submit remote command p50 (mkdir, job.json, job.sbatch, sbatch)", Value: ms(benchtable.Percentile(remote, 0.5)), Unit: "ms",
		Reference: "raw sbatch of the same script, same warm SSH pool", RefValue: ms(benchtable.Percentile(raw, 0.5))})
	benchtable.Record(benchtable.Row{Figure: "submit POST→queued p90", Value: ms(benchtable.Percentile(gw, 0.9)), Unit: "ms",
		Reference: "raw sbatch p90, same pool", RefValue: ms(benchtable.Percentile(raw, 0.9))})
	b.ReportMetric(ms(benchtable.Percentile(gw, 0.5)), "queued-p50-ms")
	b.ReportMetric(ms(benchtable.Percentile(raw, 0.5)), "raw-sbatch-p50-ms")
}

// post submits the spec and returns the job id once accepted (202).
func (s *submitBench) post(b *testing.B) string {
	body, _ := json.Marshal(s.spec)
	req, _ := http.NewRequest("POST", s.e.url+"/api/training/execute", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.e.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.hc.Do(req)
	if err != nil {
		b.Error(err)
		return ""
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	if resp.StatusCode != http.StatusAccepted {
		b.Errorf("execute: %d %v", resp.StatusCode, m)
		return ""
	}
	s.created(m)
	return m["id"].(string)
}

// get returns the job's status document.
func (s *submitBench) get(b *testing.B, id string) map[string]any {
	req, _ := http.NewRequest("GET", s.e.url+"/api/training/status/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+s.e.token)
	resp, err := s.hc.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return m
}

// BenchmarkSubmitThroughput: 32 concurrent clients submit jobs back to back; the
// figure is jobs per second from the first POST to the last job queued in Slurm (the
// server's updated_at; the clients do not poll while submitting), against 32
// concurrent raw sbatch calls over the same SSH pool.
func BenchmarkSubmitThroughput(b *testing.B) {
	s := newSubmitBench(b)
	ctx := context.Background()
	const clients = 32
	if b.N < 5 {
		return // the framework's probe run
	}
	total := max(b.N, 64)
	parallel := func(one func()) time.Duration {
		var wg sync.WaitGroup
		work := make(chan struct{}, total)
		for i := 0; i < total; i++ {
			work <- struct{}{}
		}
		close(work)
		t0 := time.Now()
		for c := 0; c < clients; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range work {
					one()
				}
			}()
		}
		wg.Wait()
		return time.Since(t0)
	}
	b.ResetTimer()
	cpu0 := busyCPU()
	rawD := parallel(func() {
		if _, err := s.rawSbatch(ctx); err != nil {
			b.Error(err)
		}
	})
	rawCPU := busyCPU() - cpu0
	s.cancelRaw()

	var mu sync.Mutex
	var ids []string
	cpu1 := busyCPU()
	start := time.Now()
	parallel(func() {
		if id := s.post(b); id != "" {
			mu.Lock()
			ids = append(ids, id)
			mu.Unlock()
		}
	})
	accepted := time.Since(start) // every POST answered 202
	var last time.Time
	deadline := time.Now().Add(3 * time.Minute)
	for i := 0; i < len(ids); {
		m := s.get(b, ids[i])
		switch m["state"] {
		case "submitting":
			if time.Now().After(deadline) {
				b.Fatalf("job %s still submitting", ids[i])
			}
			time.Sleep(50 * time.Millisecond)
			continue
		case "queued", "running":
		default:
			b.Fatalf("job %s: %v (%v)", ids[i], m["state"], m["reason"])
		}
		if at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(m["updated_at"])); err == nil && at.After(last) {
			last = at
		}
		i++
	}
	gwCPU := busyCPU() - cpu1
	b.StopTimer()
	s.e.cancelAll()
	gwRate := float64(len(ids)) / last.Sub(start).Seconds()
	if rawCPU > 0 && gwCPU > 0 {
		// Both runs keep the machine's cores busy (gateway, Postgres, sshd, Slurm and
		// the clients share them), so the rates stand in the ratio of CPU per job.
		benchtable.Record(benchtable.Row{Figure: fmt.Sprintf("busy CPU per job (whole machine), %d clients", clients),
			Value: gwCPU.Seconds() * 1000 / float64(len(ids)), Unit: "ms",
			Reference: fmt.Sprintf("%d concurrent raw sbatch, same SSH pool", clients), RefValue: rawCPU.Seconds() * 1000 / float64(total)})
	}
	rawRate := float64(total) / rawD.Seconds()
	benchtable.Record(benchtable.Row{Figure: fmt.Sprintf("submit throughput, %d clients", clients), Value: gwRate, Unit: "jobs/s",
		Reference: fmt.Sprintf("%d concurrent raw sbatch, same SSH pool", clients), RefValue: rawRate, HigherIsBetter: true, Goal: 0.8})
	benchtable.Record(benchtable.Row{Figure: fmt.Sprintf("submit accept rate (202 answers), %d clients", clients), Value: float64(len(ids)) / accepted.Seconds(), Unit: "jobs/s",
		Reference: fmt.Sprintf("%d concurrent raw sbatch, same SSH pool", clients), RefValue: rawRate, HigherIsBetter: true})
	b.ReportMetric(gwRate, "gateway-jobs/s")
	b.ReportMetric(rawRate, "raw-jobs/s")
}

// busyCPU is the machine's busy CPU time so far (all cores; /proc/stat without idle
// and iowait), 0 where it cannot be read.
func busyCPU() time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0
		}
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / 100 // USER_HZ, 100 on Linux
}

var _ submit.Files = (*sshconn.Pool)(nil)
