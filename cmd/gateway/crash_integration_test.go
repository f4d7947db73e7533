package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/deliver"
	"github.com/ftgate/ftgate/internal/postgres/pgtest"
	"github.com/ftgate/ftgate/internal/slurm"
	"github.com/ftgate/ftgate/internal/sshconn"
	"github.com/ftgate/ftgate/internal/stacktest"
	"github.com/ftgate/ftgate/internal/submit"
	"github.com/ftgate/ftgate/internal/webhook"
	"github.com/ftgate/ftgate/internal/wiring"
)

// TestMain lets the crash test run this test binary as the gateway process. With
// FTGATE_TEST_CRASH_AFTER_SBATCH=1 (read only here, in the test build) that process
// kills itself with SIGKILL right after its first successful sbatch, before the result
// is recorded: the window in which only the job's tag can tell that it was submitted.
// With FTGATE_TEST_CRASH_AFTER_WEBHOOK_CLAIM=1 it kills itself right after its webhook
// worker claims a delivery, before sending it.
func TestMain(m *testing.M) {
	if os.Getenv("FTGATE_TEST_SERVE") == "1" {
		if os.Getenv("FTGATE_TEST_CRASH_AFTER_SBATCH") == "1" {
			submit.AfterSbatch = func(jobID, slurmID string) {
				fmt.Fprintf(os.Stderr, "test hook: crashing after sbatch of job %s as Slurm job %s\n", jobID, slurmID)
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {}
			}
		}
		if os.Getenv("FTGATE_TEST_CRASH_AFTER_WEBHOOK_CLAIM") == "1" {
			deliver.AfterClaim = func(o webhook.Outgoing) {
				fmt.Fprintf(os.Stderr, "test hook: crashing after claiming webhook delivery %s (attempt %d)\n", o.ID, o.Attempt)
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {}
			}
		}
		root := newRoot()
		root.SetArgs([]string{"serve"})
		if err := root.Execute(); err != nil {
			fmt.Fprintln(os.Stderr, "gateway:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// gatewayProc runs this test binary as `gateway serve` in its own process, on its own
// schema and address, so tests can SIGKILL and restart it.
type gatewayProc struct {
	t       *testing.T
	addr    string
	logPath string
	env     []string
	token   string
	pool    *pgxpool.Pool
}

func newGatewayProc(t *testing.T, st *stacktest.Stack, extraEnv ...string) *gatewayProc {
	pool, schema := pgtest.Open(t, st.PGURL, true)
	sep := "?"
	if strings.Contains(st.PGURL, "?") {
		sep = "&"
	}
	g := &gatewayProc{t: t, addr: freeAddr(t), logPath: filepath.Join(t.TempDir(), "gateway.log"), pool: pool,
		token: dexToken(t, st, "alice")}
	g.env = append(os.Environ(), "FTGATE_TEST_SERVE=1", "FTGATE_CONFIG="+st.GatewayConfig,
		"FTGATE_DATABASE_URL="+st.PGURL+sep+"search_path="+schema+",public", "FTGATE_LISTEN="+g.addr,
		"FTGATE_CLUSTERS_0_POLL_INTERVAL=1s")
	g.env = append(g.env, extraEnv...)
	return g
}

// start starts the gateway and waits for /health.
func (g *gatewayProc) start() *exec.Cmd {
	t := g.t
	logf, err := os.OpenFile(g.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env, cmd.Stdout, cmd.Stderr = g.env, logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if resp, err := http.Get("http://" + g.addr + "/health"); err == nil {
			resp.Body.Close()
			return cmd
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(g.logPath)
	t.Fatalf("gateway did not start:\n%s", b)
	return nil
}

// call sends an authenticated request as alice.
func (g *gatewayProc) call(method, path string, body any) (int, map[string]any, error) {
	var buf bytes.Buffer
	if body != nil {
		_ = json.NewEncoder(&buf).Encode(body)
	}
	req, _ := http.NewRequest(method, "http://"+g.addr+path, &buf)
	req.Header.Set("Authorization", "Bearer "+g.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m, nil
}

// TestIntegrationCrashSafety kills the gateway with SIGKILL while 50 jobs are being
// submitted, restarts it, and checks that every job reaches Slurm exactly once.
func TestIntegrationCrashSafety(t *testing.T) {
	st := stacktest.Require(t)
	if testing.Short() {
		stacktest.Skip(t, "slow: waits out the submit lease of the crashed process (-short)")
	}
	gp := newGatewayProc(t, st, "FTGATE_LIMITS_MAX_ACTIVE_JOBS_PER_USER=100")
	pool, call := gp.pool, gp.call
	gw := gp.start()
	t.Cleanup(func() { _ = gw.Process.Kill(); _, _ = gw.Process.Wait() })
	// One job at a time fits the node (16 CPUs each), so the crash test does not load
	// the shared machine; the others stay queued until cancelled.
	spec := (&e2e{}).spec(2000, 0)
	spec["resources"].(map[string]any)["cpus"] = 16
	var mu sync.Mutex
	var ids []string
	var wg sync.WaitGroup
	killed := make(chan struct{})
	for w := 0; w < 5; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				code, m, err := call("POST", "/api/training/execute", spec)
				if err != nil {
					return // the gateway died under us
				}
				if code != http.StatusAccepted {
					t.Errorf("execute: %d %v", code, m)
					return
				}
				mu.Lock()
				ids = append(ids, m["id"].(string))
				n := len(ids)
				mu.Unlock()
				if n == 30 {
					_ = gw.Process.Signal(syscall.SIGKILL)
					close(killed)
				}
			}
		}()
	}
	wg.Wait()
	select {
	case <-killed:
	default:
		t.Fatal("never reached 30 accepted jobs")
	}
	_, _ = gw.Process.Wait()
	var leased, unclaimed int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE submit_attempts > 0),
		count(*) FILTER (WHERE submit_attempts = 0) FROM jobs WHERE state = 'submitting'`).Scan(&leased, &unclaimed); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed the gateway with %d jobs accepted; %d were mid-submission (leased), %d not yet claimed", len(ids), leased, unclaimed)
	gw = gp.start()
	// Submit the rest after the restart.
	for len(ids) < 50 {
		code, m, err := call("POST", "/api/training/execute", spec)
		if err != nil || code != http.StatusAccepted {
			t.Fatalf("execute after restart: %d %v %v", code, m, err)
		}
		ids = append(ids, m["id"].(string))
	}
	t.Cleanup(func() {
		// Every unfinished job of this gateway, not only ids: a POST whose answer the
		// kill cut off made a job the clients never heard of, and left queued it would
		// take the node from the tests that follow.
		_, m, _ := call("GET", "/api/jobs?limit=200&status=submitting,queued,running,pausing,paused", nil)
		jobs, _ := m["jobs"].([]any)
		for _, j := range jobs {
			if id, _ := j.(map[string]any)["id"].(string); id != "" {
				_, _, _ = call("POST", "/api/training/cancel/"+id, nil)
			}
		}
		for _, id := range ids {
			_, _, _ = call("POST", "/api/training/cancel/"+id, nil)
		}
	})
	// Jobs leased by the dead process are retried once their lease (2 min) ends.
	deadline := time.Now().Add(4 * time.Minute)
	pending := ids
	for len(pending) > 0 && time.Now().Before(deadline) {
		var still []string
		for _, id := range pending {
			code, m, err := call("GET", "/api/training/status/"+id, nil)
			if err != nil || code != 200 {
				t.Fatalf("status %s: %d %v", id, code, err)
			}
			if m["state"] == "submitting" {
				still = append(still, id)
			} else if m["state"] == "failed" {
				t.Errorf("job %s failed: %v", id, m["reason"])
			}
		}
		pending = still
		if len(pending) > 0 {
			time.Sleep(2 * time.Second)
		}
	}
	if len(pending) > 0 {
		t.Fatalf("%d jobs still submitting after the restart", len(pending))
	}
	// Exactly one Slurm job per gateway job.
	cfg, err := config.Load(st.GatewayConfig, nil)
	if err != nil {
		t.Fatal(err)
	}
	scfg, err := wiring.SSHConfig(&cfg.Clusters[0])
	if err != nil {
		t.Fatal(err)
	}
	sp, err := sshconn.New(scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, _, err := sp.Run(ctx, "alice", []string{"squeue", "-h", "-t", "all", "-u", "alice", "-o", "%j"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, name := range strings.Fields(string(out)) {
		count[name]++
	}
	for _, id := range ids {
		if n := count["ftgate-"+id]; n != 1 {
			t.Errorf("job %s has %d Slurm jobs, want exactly 1", id, n)
		}
	}
}

// stackSlurm returns a Slurm client of the stack's cluster, on its own SSH pool.
func stackSlurm(t *testing.T, st *stacktest.Stack) (*sshconn.Pool, *slurm.Client) {
	t.Helper()
	cfg, err := config.Load(st.GatewayConfig, nil)
	if err != nil {
		t.Fatal(err)
	}
	scfg, err := wiring.SSHConfig(&cfg.Clusters[0])
	if err != nil {
		t.Fatal(err)
	}
	sp, err := sshconn.New(scfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sp.Close() })
	sc, err := slurm.New(sp, wiring.SlurmOptions(&cfg.Clusters[0]))
	if err != nil {
		t.Fatal(err)
	}
	return sp, sc
}

// TestIntegrationCrashAfterSbatch kills the gateway at the exact point where sbatch has
// created the Slurm job and the gateway has not recorded it (a test hook in this
// binary), restarts it, and checks that the job is found again by its tag: recorded
// with the Slurm id the crashed process created, and never submitted a second time.
func TestIntegrationCrashAfterSbatch(t *testing.T) {
	st := stacktest.Require(t)
	gp := newGatewayProc(t, st, "FTGATE_TEST_CRASH_AFTER_SBATCH=1")
	sp, sc := stackSlurm(t, st)
	gw := gp.start()
	t.Cleanup(func() { _ = gw.Process.Kill(); _, _ = gw.Process.Wait() })
	code, m, err := gp.call("POST", "/api/training/execute", (&e2e{}).spec(50, 0))
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("execute: %d %v %v", code, m, err)
	}
	id := m["id"].(string)
	t.Cleanup(func() { _, _, _ = gp.call("POST", "/api/training/cancel/"+id, nil) })
	exited := make(chan *os.ProcessState, 1)
	go func() { ps, _ := gw.Process.Wait(); exited <- ps }()
	select {
	case ps := <-exited:
		if ws, ok := ps.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			b, _ := os.ReadFile(gp.logPath)
			t.Fatalf("gateway exited with %v, want killed by its hook:\n%s", ps, b)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the gateway did not reach sbatch")
	}
	log, _ := os.ReadFile(gp.logPath)
	var hookJob, created string
	for _, line := range strings.Split(string(log), "\n") {
		if _, err := fmt.Sscanf(line, "test hook: crashing after sbatch of job %s as Slurm job %s", &hookJob, &created); err == nil {
			break
		}
	}
	if hookJob != id || created == "" {
		t.Fatalf("no hook line for job %s in the gateway log:\n%s", id, log)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var state, slurmID string
	var attempts int
	if err := gp.pool.QueryRow(ctx, `SELECT state, slurm_id, submit_attempts FROM jobs WHERE id = $1`, id).Scan(&state, &slurmID, &attempts); err != nil {
		t.Fatal(err)
	}
	if state != "submitting" || slurmID != "" || attempts != 1 {
		t.Fatalf("after the crash: state %s slurm_id %q attempts %d; want submitting, none, 1 (the sbatch unrecorded)", state, slurmID, attempts)
	}
	if f, err := sc.FindByTag(ctx, "alice", id, time.Now().Add(-10*time.Minute)); err != nil || f == nil || f.ID != created {
		t.Fatalf("FindByTag before the restart: %+v, %v; want Slurm job %s", f, err, created)
	}
	// End the dead process's submit lease (2 minutes) instead of waiting it out; that
	// leases expire is TestIntegrationCrashSafety's concern.
	if _, err := gp.pool.Exec(ctx, `UPDATE jobs SET next_attempt_at = now() WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	env := gp.env[:0:0]
	for _, kv := range gp.env {
		if !strings.HasPrefix(kv, "FTGATE_TEST_CRASH_AFTER_SBATCH=") {
			env = append(env, kv)
		}
	}
	gp.env = env
	gw = gp.start()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(300 * time.Millisecond) {
		code, m, err = gp.call("GET", "/api/training/status/"+id, nil)
		if err != nil || code != 200 {
			t.Fatalf("status: %d %v", code, err)
		}
		if m["state"] != "submitting" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job still submitting a minute after the restart: %v", m["reason"])
		}
	}
	if m["slurm_id"] != created || m["state"] == "failed" {
		t.Fatalf("after the restart: state %v slurm_id %v (%v); want Slurm job %s found by its tag", m["state"], m["slurm_id"], m["reason"], created)
	}
	out, _, err := sp.Run(ctx, "alice", []string{"squeue", "-h", "-t", "all", "-n", "ftgate-" + id, "-o", "%i"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ids := strings.Fields(string(out)); len(ids) != 1 || ids[0] != created {
		t.Fatalf("Slurm jobs tagged ftgate-%s: %v, want exactly %s", id, ids, created)
	}
	t.Logf("killed after sbatch created Slurm job %s; the restarted gateway found it by its tag", created)
}

// TestIntegrationCrashWhileRunning kills the gateway with SIGKILL while one job runs and
// another is paused, restarts it, and checks that the new process takes over: the running
// job is followed to success and the paused one resumes from its checkpoint and succeeds.
func TestIntegrationCrashWhileRunning(t *testing.T) {
	st := stacktest.Require(t)
	gp := newGatewayProc(t, st)
	gw := gp.start()
	t.Cleanup(func() { _ = gw.Process.Kill(); _, _ = gw.Process.Wait() })
	status := func(id string) map[string]any {
		code, m, err := gp.call("GET", "/api/training/status/"+id, nil)
		if err != nil || code != 200 {
			t.Fatalf("status %s: %d %v", id, code, err)
		}
		return m
	}
	waitFor := func(id, what string, d time.Duration, cond func(map[string]any) bool) map[string]any {
		deadline := time.Now().Add(d)
		for {
			m := status(id)
			if cond(m) {
				return m
			}
			if time.Now().After(deadline) {
				b, _ := os.ReadFile(gp.logPath)
				t.Fatalf("job %s: no %s within %s: state=%v reason=%v progress=%v\ngateway log:\n%s", id, what, d, m["state"], m["reason"], m["progress"], b)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	submit := func(steps int) string {
		code, m, err := gp.call("POST", "/api/training/execute", (&e2e{}).spec(steps, 0))
		if err != nil || code != http.StatusAccepted {
			t.Fatalf("execute: %d %v %v", code, m, err)
		}
		return m["id"].(string)
	}
	running, paused := submit(400), submit(400)
	t.Cleanup(func() {
		for _, id := range []string{running, paused} {
			_, _, _ = gp.call("POST", "/api/training/cancel/"+id, nil)
		}
	})
	for _, id := range []string{running, paused} {
		waitFor(id, "progress", 2*time.Minute, func(m map[string]any) bool { return m["state"] == "running" && step(m) >= 20 })
	}
	if code, m, err := gp.call("POST", "/api/training/pause/"+paused, nil); err != nil || code != http.StatusAccepted {
		t.Fatalf("pause: %d %v %v", code, m, err)
	}
	waitFor(paused, "paused", time.Minute, stateIs("paused"))

	// The running job is running in Slurm, short of its end, when the gateway dies, and
	// goes on running while no gateway runs.
	_, sc := stackSlurm(t, st)
	sid, _ := status(running)["slurm_id"].(string)
	slurmState := func(id string) slurm.State {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := sc.Poll(ctx, "alice", []string{sid})
		if err != nil {
			t.Fatalf("poll Slurm job %q of %s: %v", sid, id, err)
		}
		return res[sid].State
	}
	if s := slurmState(running); s != slurm.StateRunning {
		t.Fatalf("job %s is %s in Slurm before the kill, want RUNNING", running, s)
	}
	killedAt := step(status(running))
	_ = gw.Process.Signal(syscall.SIGKILL)
	_, _ = gw.Process.Wait()
	if killedAt >= 400 {
		t.Fatalf("job %s was at step %v of 400 at the kill: nothing left to follow", running, killedAt)
	}
	if s := slurmState(running); s != slurm.StateRunning {
		t.Fatalf("job %s is %s in Slurm right after the kill, want RUNNING", running, s)
	}
	time.Sleep(2 * time.Second) // the job goes on in Slurm while no gateway runs
	gw = gp.start()

	if code, m, err := gp.call("POST", "/api/training/resume/"+paused, nil); err != nil || code != 200 {
		t.Fatalf("resume after restart: %d %v %v", code, m, err)
	}
	for _, id := range []string{running, paused} {
		m := waitFor(id, "success", 6*time.Minute, func(m map[string]any) bool {
			if m["state"] == "failed" || m["state"] == "cancelled" {
				t.Fatalf("job %s ended %v: %v", id, m["state"], m["reason"])
			}
			return m["state"] == "succeeded"
		})
		if step(m) != 400 {
			t.Errorf("job %s succeeded at step %v, want 400", id, step(m))
		}
	}
	t.Logf("killed the gateway while job %s ran at step %v and job %s was paused; the restarted gateway followed both to success", running, killedAt, paused)
}
