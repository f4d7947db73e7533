package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/sshconn"
	"github.com/ftgate/ftgate/internal/stacktest"
	"github.com/ftgate/ftgate/internal/wiring"
)

// The fault suite (make test-faults) runs against the real dev stack and prints one
// table of figures. FTGATE_FAULTS selects the cells: "safe" (default: only this test's
// own gateway process and its LISTEN connection are hurt), "all" (also stops
// slurmctld, Postgres and sshd of the stack, and restores each with `dev/stack up`,
// which restarts only what is down) or "daemons" (only the latter). FTGATE_FAULT_SUBMISSIONS sets the submissions of
// the kill -9 cell (default 200).

type faultRow struct{ cell, figures, verdict string }

type faultTable struct {
	mu   sync.Mutex
	rows []faultRow
}

func (f *faultTable) add(cell, verdict, format string, a ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rows = append(f.rows, faultRow{cell, fmt.Sprintf(format, a...), verdict})
}

func (f *faultTable) print(t *testing.T) {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-28s %-6s %s\n", "fault", "result", "figures")
	for _, r := range f.rows {
		fmt.Fprintf(&b, "%-28s %-6s %s\n", r.cell, r.verdict, r.figures)
	}
	t.Log(b.String())
	fmt.Fprint(os.Stderr, b.String())
}

// faultMinKills is the fewest gateway kills, each with submissions in flight, that the
// kill -9 cell accepts as having tested anything.
const faultMinKills = 5

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "FAIL"
}

func TestFaults(t *testing.T) {
	st := stacktest.Require(t)
	mode := os.Getenv("FTGATE_FAULTS")
	if mode == "" {
		mode = "safe"
	}
	tab := &faultTable{}
	t.Cleanup(func() { tab.print(t) })
	if mode != "daemons" {
		t.Run("gateway kill -9 during submissions", func(t *testing.T) { faultGatewayKill(t, st, tab) })
		t.Run("LISTEN connection killed", func(t *testing.T) { faultListenKill(t, st, tab) })
	}
	if mode == "safe" {
		tab.add("slurmctld/postgres/sshd", "skip", "FTGATE_FAULTS=all runs the cells that stop stack daemons")
		return
	}
	t.Run("slurmctld stopped 60s", func(t *testing.T) { faultSlurmctld(t, st, tab) })
	t.Run("second cluster's slurmctld stopped", func(t *testing.T) { faultSecondCluster(t, st, tab) })
	t.Run("slurmd and job steps killed", func(t *testing.T) { faultSlurmd(t, st, tab) })
	t.Run("postgres restarted", func(t *testing.T) { faultDaemonRestart(t, st, tab, "postgres") })
	t.Run("sshd restarted", func(t *testing.T) { faultDaemonRestart(t, st, tab, "sshd") })
}

// faultSpec is a job that queues behind others (16 CPUs: one at a time on the node)
// and is cancelled as soon as Slurm has it.
func faultSpec(steps int) map[string]any {
	s := (&e2e{}).spec(steps, 0)
	s["resources"].(map[string]any)["cpus"] = 16
	return s
}

// callTimed sends one request with a deadline; hung reports a request that got no
// answer within it.
func (g *gatewayProc) callTimed(method, path string, body any, header map[string]string, d time.Duration) (code int, m map[string]any, hung bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var rd *strings.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	} else {
		rd = strings.NewReader("")
	}
	req, _ := http.NewRequestWithContext(ctx, method, "http://"+g.addr+path, rd)
	req.Header.Set("Authorization", "Bearer "+g.token)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, ctx.Err() != nil, err
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m, false, nil
}

// slurmNames counts this user's Slurm jobs by name since start (sacct sees cancelled
// and finished jobs too).
func slurmNames(t *testing.T, st *stacktest.Stack, since time.Time) map[string]int {
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
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, _, err := sp.Run(ctx, "alice", []string{"env", "SLURM_CONF=" + cfg.Clusters[0].SlurmConf, "sacct", "-n", "-X", "-P", "-D", "-u", "alice",
		"-S", since.Add(-time.Minute).Format("2006-01-02T15:04:05"), "-o", "JobName"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, name := range strings.Fields(string(out)) {
		n[name]++
	}
	return n
}

// faultGatewayKill: retrying clients submit N jobs (Idempotency-Key each) while the
// gateway is killed with SIGKILL and restarted on a schedule tied to progress, not to
// the clock (on an idle machine 200 submissions can finish before any timer fires):
// the submissions run in batches of N/10, kill k comes once k batches are accepted,
// with the next batch's requests in flight, and batch k+1 starts only after kill k.
// So every kill lands during submissions, however fast they go; the cell fails with
// fewer than faultMinKills kills that found requests in flight.
func faultGatewayKill(t *testing.T, st *stacktest.Stack, tab *faultTable) {
	n := 200
	if v, err := strconv.Atoi(os.Getenv("FTGATE_FAULT_SUBMISSIONS")); err == nil && v > 0 {
		n = max(v, 2*faultMinKills) // fewer submissions cannot hold faultMinKills batches
	}
	start := time.Now()
	gp := newGatewayProc(t, st, fmt.Sprintf("FTGATE_LIMITS_MAX_ACTIVE_JOBS_PER_USER=%d", n+10))
	var gwMu sync.Mutex
	gw := gp.start()
	t.Cleanup(func() { gwMu.Lock(); _ = gw.Process.Kill(); _, _ = gw.Process.Wait(); gwMu.Unlock() })
	spec := faultSpec(2000)
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	every := max(1, n/10) // submissions per batch
	batches := (n + every - 1) / every
	var accepted sync.Map // key -> job id
	// resolved: submissions accepted or refused; inFlight: requests sent and not answered.
	var hung, retries, bad, resolved, inFlight, killsDone atomic.Int64
	var stop atomic.Bool // releases waiting workers once the killer is done (or gave up)
	defer stop.Store(true)
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for w := 0; w < 10; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				// Batch b waits for kill b-1: the killer is never more than a batch
				// behind, so the clients cannot finish before the kills.
				for b := i / int64(every); b-1 > killsDone.Load() && !stop.Load(); {
					time.Sleep(2 * time.Millisecond)
				}
				key := fmt.Sprintf("fault-%s-%d", run, i)
				for attempt := 0; ; attempt++ {
					inFlight.Add(1)
					code, m, h, err := gp.callTimed("POST", "/api/training/execute", spec, map[string]string{"Idempotency-Key": key}, 15*time.Second)
					inFlight.Add(-1)
					if h {
						hung.Add(1)
					}
					if err == nil && (code == http.StatusAccepted || code == http.StatusOK) {
						accepted.Store(key, m["id"])
						resolved.Add(1)
						break
					}
					if err == nil && code < 500 && code != http.StatusTooManyRequests {
						bad.Add(1)
						resolved.Add(1)
						t.Errorf("execute %s: %d %v", key, code, m)
						break
					}
					retries.Add(1)
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	// The killer: kill k once k batches are accepted and some request is in flight
	// (waiting at most 2 s for one), then restart and release batch k+1.
	kills, busyKills, submittingAtKills := 0, 0, 0
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
loop:
	for k := 1; k < batches; k++ {
		for resolved.Load() < int64(k*every) {
			select {
			case <-done:
				break loop
			case <-time.After(2 * time.Millisecond):
			}
		}
		for wait := time.Now().Add(2 * time.Second); inFlight.Load() == 0 && time.Now().Before(wait); {
			time.Sleep(time.Millisecond)
		}
		busy := inFlight.Load() > 0
		var submitting int
		_ = gp.pool.QueryRow(context.Background(), `SELECT count(*) FROM jobs WHERE state = 'submitting'`).Scan(&submitting)
		gwMu.Lock()
		_ = gw.Process.Signal(syscall.SIGKILL)
		_, _ = gw.Process.Wait()
		kills++
		if busy {
			busyKills++
		}
		submittingAtKills += submitting
		gw = gp.start()
		gwMu.Unlock()
		killsDone.Store(int64(kills))
	}
	stop.Store(true) // no batch waits for a kill that will not come
	<-done
	var ids []string
	accepted.Range(func(_, v any) bool { ids = append(ids, v.(string)); return true })
	// Cancel each job as soon as Slurm has it (they would hold the node), and wait until
	// none is still submitting (jobs leased by a killed process wait out their lease).
	deadline := time.Now().Add(5 * time.Minute)
	pending := map[string]bool{}
	for _, id := range ids {
		pending[id] = true
	}
	failed := 0
	for len(pending) > 0 && time.Now().Before(deadline) {
		for id := range pending {
			code, m, _, err := gp.callTimed("GET", "/api/training/status/"+id, nil, nil, 15*time.Second)
			if err != nil || code != 200 {
				continue
			}
			switch m["state"] {
			case "submitting":
				continue
			case "failed":
				failed++
				t.Errorf("job %s failed: %v", id, m["reason"])
			case "queued", "running":
				_, _, _, _ = gp.callTimed("POST", "/api/training/cancel/"+id, nil, nil, 15*time.Second)
			}
			delete(pending, id)
		}
		if len(pending) > 0 {
			time.Sleep(time.Second)
		}
	}
	var dbJobs, distinctKeys int
	if err := gp.pool.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT idempotency_key) FROM jobs`).Scan(&dbJobs, &distinctKeys); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // slurmdbd records submissions asynchronously
	names := slurmNames(t, st, start)
	lost, dup := 0, 0
	for _, id := range ids {
		switch c := names["ftgate-"+id]; {
		case c == 0:
			lost++
			var state, slurmID, reason string
			_ = gp.pool.QueryRow(context.Background(), `SELECT state, slurm_id, coalesce(reason,'') FROM jobs WHERE id = $1`, id).Scan(&state, &slurmID, &reason)
			t.Errorf("job %s has no Slurm job named ftgate-%s: state %s, slurm id %q, reason %q", id, id, state, slurmID, reason)
		case c > 1:
			dup++
		}
	}
	ok := len(ids) == n && lost == 0 && dup == 0 && dbJobs == n && failed == 0 && hung.Load() == 0 && len(pending) == 0 && busyKills >= faultMinKills
	tab.add("gateway kill -9", verdict(ok), "%d submissions, %d kills (%d with requests in flight, want >= %d; %d jobs submitting at the kills), %d client retries; accepted %d, gateway jobs %d (keys %d), Slurm jobs by tag: lost %d, duplicated %d; failed %d, hung requests %d, still submitting %d (%s)",
		n, kills, busyKills, faultMinKills, submittingAtKills, retries.Load(), len(ids), dbJobs, distinctKeys, lost, dup, failed, hung.Load(), len(pending), time.Since(start).Round(time.Second))
	if busyKills < faultMinKills {
		t.Errorf("gateway kill -9: %d kills with requests in flight (of %d), want at least %d", busyKills, kills, faultMinKills)
	}
	if !ok {
		t.Errorf("gateway kill -9: see the table")
	}
}

// faultListenKill: the hub's LISTEN connection is terminated; events of a job created
// after it still reach an /api/events subscriber.
func faultListenKill(t *testing.T, st *stacktest.Stack, tab *faultTable) {
	gp := newGatewayProc(t, st)
	// Name this gateway's connections, so only its LISTEN connection is killed (other
	// tests' gateways share the Postgres).
	app := "ftgate-fault-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	for i, kv := range gp.env {
		if strings.HasPrefix(kv, "FTGATE_DATABASE_URL=") {
			gp.env[i] = kv + "&application_name=" + app
		}
	}
	gw := gp.start()
	t.Cleanup(func() { _ = gw.Process.Kill(); _, _ = gw.Process.Wait() })
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+gp.addr+"/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+gp.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("events: %v %v", resp, err)
	}
	defer resp.Body.Close()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	time.Sleep(time.Second)
	var killed int
	if err := gp.pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE query ILIKE 'LISTEN%' AND application_name = $1`, app).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	code, m, _, err := gp.callTimed("POST", "/api/training/execute", faultSpec(50), nil, 15*time.Second)
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("execute: %d %v %v", code, m, err)
	}
	id := m["id"].(string)
	t.Cleanup(func() { _, _, _, _ = gp.callTimed("POST", "/api/training/cancel/"+id, nil, nil, 15*time.Second) })
	var gotAfter time.Duration
	for l := range lines {
		if strings.Contains(l, id) {
			gotAfter = time.Since(killedAt)
			break
		}
	}
	ok := gotAfter > 0 && killed == 1
	tab.add("LISTEN connection killed", verdict(ok), "%d LISTEN backends terminated; first event of a new job reached /api/events after %s", killed, gotAfter.Round(time.Millisecond))
	if !ok {
		t.Errorf("no event after the LISTEN connection was killed")
	}
}

// stackDaemon returns the PID dev/stack recorded for name.
func stackDaemon(t *testing.T, st *stacktest.Stack, name string) int {
	b, err := os.ReadFile(filepath.Join(st.Dir, "run", "pids", name+".pid"))
	if err != nil {
		t.Fatalf("pid of %s: %v", name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// stopDaemon stops a stack daemon (SIGTERM, SIGKILL after 15 s) and registers its
// restoration (`dev/stack up` of the repository that owns the stack directory).
func stopDaemon(t *testing.T, st *stacktest.Stack, name string) {
	pid := stackDaemon(t, st, name)
	t.Cleanup(func() { restoreStack(t, st) })
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 150; i++ {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); strings.Contains(string(b), ") Z ") {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

var restoreMu sync.Mutex

// restoreStack runs dev/stack up (idempotent: starts only what is down).
func restoreStack(t *testing.T, st *stacktest.Stack) time.Duration {
	restoreMu.Lock()
	defer restoreMu.Unlock()
	start := time.Now()
	script := filepath.Join(filepath.Dir(st.Dir), "dev", "stack")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, "up")
	cmd.Env = append(os.Environ(), "FTGATE_STACK_DIR="+st.Dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("restore the stack (%s up): %v\n%s", script, err, out)
	}
	return time.Since(start)
}

// faultSlurmctld: slurmctld stopped for 60 s while a job runs; a submission and a
// pause during the outage; progress must keep flowing and nothing may fail wrongly.
func faultSlurmctld(t *testing.T, st *stacktest.Stack, tab *faultTable) {
	gp := newGatewayProc(t, st)
	gw := gp.start()
	t.Cleanup(func() { _ = gw.Process.Kill(); _, _ = gw.Process.Wait() })
	submit := func(steps int) string {
		code, m, _, err := gp.callTimed("POST", "/api/training/execute", (&e2e{}).spec(steps, 0), nil, 15*time.Second)
		if err != nil || code != http.StatusAccepted {
			t.Fatalf("execute: %d %v %v", code, m, err)
		}
		return m["id"].(string)
	}
	status := func(id string) map[string]any {
		_, m, _, _ := gp.callTimed("GET", "/api/training/status/"+id, nil, nil, 15*time.Second)
		return m
	}
	runA, runB := submit(4000), submit(4000)
	ids := []string{runA, runB}
	t.Cleanup(func() {
		for _, id := range ids {
			_, _, _, _ = gp.callTimed("POST", "/api/training/cancel/"+id, nil, nil, 15*time.Second)
		}
	})
	for _, id := range []string{runA, runB} {
		deadline := time.Now().Add(3 * time.Minute)
		for step(status(id)) < 10 {
			if time.Now().After(deadline) {
				t.Fatalf("job %s did not progress: %v", id, status(id))
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	stopDaemon(t, st, "slurmctld")
	down := time.Now()
	stepAtStop := step(status(runA))
	subCode, subM, subHung, _ := gp.callTimed("POST", "/api/training/execute", (&e2e{}).spec(20, 0), nil, 15*time.Second)
	if id, ok := subM["id"].(string); ok {
		ids = append(ids, id)
	}
	pauseCode, _, pauseHung, _ := gp.callTimed("POST", "/api/training/pause/"+runB, nil, nil, 40*time.Second)
	degraded := false
	var hungN int
	for time.Since(down) < 60*time.Second {
		_, m, h, _ := gp.callTimed("GET", "/api/system/status", nil, nil, 20*time.Second)
		if h {
			hungN++
		}
		if cl, ok := m["clusters"].([]any); ok && len(cl) > 0 {
			if d, _ := cl[0].(map[string]any)["degraded"].(bool); d {
				degraded = true
			}
		}
		time.Sleep(2 * time.Second)
	}
	stepBeforeRestore := step(status(runA))
	restoreIn := restoreStack(t, st)
	// After the outage: nothing failed; the submission reaches Slurm.
	deadline := time.Now().Add(2 * time.Minute)
	wrong := 0
	submitted := false
	for time.Now().Before(deadline) {
		submitted = true
		for _, id := range ids[2:] {
			if s := status(id)["state"]; s == "submitting" {
				submitted = false
			}
		}
		if submitted {
			break
		}
		time.Sleep(time.Second)
	}
	for _, id := range ids {
		if s := status(id)["state"]; s == "failed" {
			wrong++
			t.Errorf("job %s failed after the controller outage: %v", id, status(id)["reason"])
		}
	}
	progressed := stepBeforeRestore > stepAtStop
	ok := progressed && degraded && wrong == 0 && !subHung && !pauseHung && hungN == 0 && submitted && subCode/100 == 2
	tab.add("slurmctld stopped 60s", verdict(ok), "progress during the outage: step %.0f -> %.0f; degraded shown: %v; submit during outage: %d (reached Slurm after: %v); pause during outage: %d; hung requests: %d; wrongly failed: %d; restore %s",
		stepAtStop, stepBeforeRestore, degraded, subCode, submitted, pauseCode, hungN+btoi(subHung)+btoi(pauseHung), wrong, restoreIn.Round(time.Second))
	if !ok {
		t.Errorf("slurmctld outage: see the table")
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// faultDaemonRestart: postgres or sshd is stopped for 5 s and restored; requests during
// the outage answer within their deadline, and the gateway works again afterwards (a
// job submitted during the outage reaches Slurm).
func faultDaemonRestart(t *testing.T, st *stacktest.Stack, tab *faultTable, name string) {
	gp := newGatewayProc(t, st)
	gw := gp.start()
	t.Cleanup(func() { _ = gw.Process.Kill(); _, _ = gw.Process.Wait() })
	stopDaemon(t, st, name)
	codes := map[int]int{}
	hungN := 0
	var id string
	for i := 0; i < 5; i++ {
		c, m, h, _ := gp.callTimed("GET", "/api/jobs?limit=1", nil, nil, 15*time.Second)
		codes[c]++
		if h {
			hungN++
		}
		if id == "" && name == "sshd" {
			c, m, h, _ = gp.callTimed("POST", "/api/training/execute", faultSpec(20), nil, 15*time.Second)
			if h {
				hungN++
			}
			if s, ok := m["id"].(string); ok {
				id = s
			}
		}
		time.Sleep(time.Second)
	}
	restoreIn := restoreStack(t, st)
	back := time.Now()
	recovered := time.Duration(0)
	for time.Since(back) < 60*time.Second {
		if c, _, _, _ := gp.callTimed("GET", "/api/jobs?limit=1", nil, nil, 10*time.Second); c == 200 {
			recovered = time.Since(back)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if id == "" {
		c, m, _, _ := gp.callTimed("POST", "/api/training/execute", faultSpec(20), nil, 15*time.Second)
		if c != http.StatusAccepted {
			t.Errorf("execute after %s restart: %d %v", name, c, m)
		}
		id, _ = m["id"].(string)
	}
	reached := false
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline) && id != ""; time.Sleep(time.Second) {
		_, m, _, _ := gp.callTimed("GET", "/api/training/status/"+id, nil, nil, 10*time.Second)
		if s := m["state"]; s == "queued" || s == "running" || s == "succeeded" {
			reached = true
			break
		} else if s == "failed" {
			t.Errorf("job failed after %s restart: %v", name, m["reason"])
			break
		}
	}
	if id != "" {
		_, _, _, _ = gp.callTimed("POST", "/api/training/cancel/"+id, nil, nil, 15*time.Second)
	}
	ok := hungN == 0 && recovered > 0 && reached && codes[500] == 0
	tab.add(name+" restarted", verdict(ok), "answers during the outage %v; hung %d; API back %s after restore (restore %s); a job then reached Slurm: %v",
		codes, hungN, recovered.Round(time.Millisecond), restoreIn.Round(time.Second), reached)
	if !ok {
		t.Errorf("%s restart: see the table", name)
	}
}

// killSteps SIGKILLs every slurmstepd on this machine and all their descendants (the
// batch shells and trainers), as a crashing node would lose them.
func killSteps() int {
	parent := map[int]int{}
	steps := map[int]bool{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		l, r := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if l < 0 || r < 0 {
			continue
		}
		f := strings.Fields(s[r+1:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		parent[pid] = ppid
		if s[l+1:r] == "slurmstepd" {
			steps[pid] = true
		}
	}
	n := 0
	for pid := range parent {
		for p := pid; p > 1; p = parent[p] {
			if steps[p] {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				n++
				break
			}
		}
	}
	return n
}

// faultSlurmd: slurmd and every job step killed while a job runs past a checkpoint;
// the node fails, the job is requeued (NODE_FAIL) and, once slurmd is back, resumes
// from its checkpoint (not from step 0).
func faultSlurmd(t *testing.T, st *stacktest.Stack, tab *faultTable) {
	gp := newGatewayProc(t, st)
	gw := gp.start()
	t.Cleanup(func() { _ = gw.Process.Kill(); _, _ = gw.Process.Wait() })
	status := func(id string) map[string]any {
		_, m, _, _ := gp.callTimed("GET", "/api/training/status/"+id, nil, nil, 15*time.Second)
		return m
	}
	code, m, _, err := gp.callTimed("POST", "/api/training/execute", (&e2e{}).spec(4000, 0), nil, 15*time.Second)
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("execute: %d %v %v", code, m, err)
	}
	id := m["id"].(string)
	t.Cleanup(func() { _, _, _, _ = gp.callTimed("POST", "/api/training/cancel/"+id, nil, nil, 15*time.Second) })
	ckpt := func(m map[string]any) string {
		p, _ := m["progress"].(map[string]any)
		s, _ := p["latest_checkpoint"].(string)
		return s
	}
	deadline := time.Now().Add(3 * time.Minute)
	for ckpt(status(id)) == "" || step(status(id)) < 45 {
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint: %v", status(id))
		}
		time.Sleep(500 * time.Millisecond)
	}
	before := status(id)
	stepAtKill, ckptAtKill := step(before), ckpt(before)
	restartsBefore, _ := before["restart_count"].(float64)
	stopDaemon(t, st, "slurmd")
	killed := killSteps()
	// The node is declared down after SlurmdTimeout; then dev/stack up brings slurmd back.
	time.Sleep(25 * time.Second)
	restoreIn := restoreStack(t, st)
	var states []string
	minStepAfter := -1.0
	resumed := false
	deadline = time.Now().Add(4 * time.Minute)
	for time.Now().Before(deadline) {
		m := status(id)
		s := fmt.Sprint(m["state"], "/", m["slurm_state"])
		if len(states) == 0 || states[len(states)-1] != s {
			states = append(states, s)
		}
		if m["state"] == "failed" || m["state"] == "cancelled" {
			break
		}
		if r, _ := m["restart_count"].(float64); r > restartsBefore && m["state"] == "running" {
			if p, _ := m["progress"].(map[string]any); p != nil && p["phase"] == "training" {
				if minStepAfter < 0 || step(m) < minStepAfter {
					minStepAfter = step(m)
				}
				if step(m) > stepAtKill {
					resumed = true
					break
				}
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	ckptStep, _ := strconv.ParseFloat(strings.TrimPrefix(ckptAtKill, "checkpoints/step-"), 64)
	ok := resumed && minStepAfter >= ckptStep
	tab.add("slurmd + steps killed", verdict(ok), "killed at step %.0f (checkpoint %s), %d step processes; states %s; first step after the restart %.0f, past the kill point: %v; restore %s",
		stepAtKill, ckptAtKill, killed, strings.Join(states, " > "), minStepAfter, resumed, restoreIn.Round(time.Second))
	if !ok {
		t.Errorf("slurmd kill: see the table")
	}
}

// faultSecondCluster: the second cluster's controller is stopped. /ready names that
// cluster only, a job for it waits (submitting, not failed) and reaches its Slurm once
// the controller is back, and the first cluster's jobs run to the end meanwhile.
func faultSecondCluster(t *testing.T, st *stacktest.Stack, tab *faultTable) {
	gp := newGatewayProc(t, st, "FTGATE_CLUSTERS_1_POLL_INTERVAL=1s")
	gw := gp.start()
	t.Cleanup(func() { _ = gw.Process.Kill(); _, _ = gw.Process.Wait() })
	cfg, err := config.Load(st.GatewayConfig, nil)
	if err != nil {
		t.Fatal(err)
	}
	second := secondCluster(t, st, cfg).Name
	status := func(id string) map[string]any {
		_, m, _, _ := gp.callTimed("GET", "/api/training/status/"+id, nil, nil, 15*time.Second)
		return m
	}
	execute := func(cluster string, steps int) string {
		spec := (&e2e{}).spec(steps, 0)
		if cluster != "" {
			spec["resources"].(map[string]any)["cluster"] = cluster
		}
		code, m, _, err := gp.callTimed("POST", "/api/training/execute", spec, nil, 15*time.Second)
		if err != nil || code != http.StatusAccepted {
			t.Fatalf("execute on %q: %d %v %v", cluster, code, m, err)
		}
		return m["id"].(string)
	}
	var ids []string
	t.Cleanup(func() {
		for _, id := range ids {
			_, _, _, _ = gp.callTimed("POST", "/api/training/cancel/"+id, nil, nil, 15*time.Second)
		}
	})

	stopDaemon(t, st, "slurmctld2")
	var failed []any
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		code, m, _, _ := gp.callTimed("GET", "/ready", nil, nil, 20*time.Second)
		if f, _ := m["failed"].([]any); code == http.StatusServiceUnavailable && len(f) > 0 {
			failed = f
			break
		}
	}
	readyOK := len(failed) == 1 && failed[0] == "cluster "+second
	waiting := execute(second, 20)
	firstJob := execute("", 20)
	ids = append(ids, waiting, firstJob)
	var firstState, waitingState any
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		firstState = status(firstJob)["state"]
		if firstState == "succeeded" || firstState == "failed" {
			break
		}
	}
	waitingState = status(waiting)["state"]
	degraded := map[string]bool{}
	if _, m, _, _ := gp.callTimed("GET", "/api/system/status", nil, nil, 20*time.Second); m != nil {
		cls, _ := m["clusters"].([]any)
		for _, c := range cls {
			c, _ := c.(map[string]any)
			name, _ := c["name"].(string)
			degraded[name], _ = c["degraded"].(bool)
		}
	}
	restoreIn := restoreStack(t, st)
	var after any
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		after = status(waiting)["state"]
		if after != "submitting" {
			break
		}
	}
	ok := readyOK && firstState == "succeeded" && waitingState == "submitting" && degraded[second] && !degraded[cfg.Clusters[0].Name] &&
		(after == "queued" || after == "running" || after == "succeeded")
	tab.add("second cluster's slurmctld stopped", verdict(ok), "/ready failed %v; first cluster's job %v during the outage; second cluster's job %v, then %v after restore; degraded %v; restore %s",
		failed, firstState, waitingState, after, degraded, restoreIn.Round(time.Second))
	if !ok {
		t.Errorf("second cluster outage: see the table")
	}
}
