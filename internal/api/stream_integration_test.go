package api

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/event"
	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/postgres"
	"github.com/ftgate/ftgate/internal/postgres/pgtest"
	"github.com/ftgate/ftgate/internal/quota"
	"github.com/ftgate/ftgate/internal/sshconn"
	"github.com/ftgate/ftgate/internal/stacktest"
)

// replicaServer is one gateway replica: its own pool, hub and HTTP server on the
// shared test schema.
type replicaServer struct {
	store *postgres.Store
	hub   *event.Hub
	http  *httptest.Server
	srv   *Server
}

func startReplica(t testing.TB, pool *pgxpool.Pool, files Files, jobRoot string, buffer int) *replicaServer {
	return startReplicaOn(t, pool, files, jobRoot, buffer, nil)
}

// smallBuffers makes accepted connections' kernel send buffers tiny, so a client that
// does not read blocks the server's writes after a few KiB.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

func startReplicaOn(t testing.TB, pool *pgxpool.Pool, files Files, jobRoot string, buffer int, wrap func(net.Listener) net.Listener) *replicaServer {
	t.Helper()
	p, err := pgxpool.NewWithConfig(context.Background(), pool.Config())
	if err != nil {
		t.Fatal(err)
	}
	store := postgres.New(p)
	hub := event.New(p, store, event.Config{Buffer: buffer})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = hub.Run(ctx) }()
	select {
	case <-hub.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("hub did not start")
	}
	srv := &Server{Auth: tokenAuth{}, Store: store, Version: "test",
		Clusters: []*Cluster{{Config: config.Cluster{Name: "dev", JobRoot: jobRoot, Partitions: []string{"gpu"}}, Files: files}},
		Streams:  Streams{Hub: hub, Events: store, Heartbeat: 500 * time.Millisecond}}
	hs := httptest.NewUnstartedServer(srv.Handler())
	if wrap != nil {
		hs.Listener = wrap(hs.Listener)
	}
	hs.Start()
	t.Cleanup(func() {
		hs.CloseClientConnections()
		hs.Close()
		cancel()
		<-done
		p.Close()
	})
	return &replicaServer{store: store, hub: hub, http: hs, srv: srv}
}

func createJob(t testing.TB, store *postgres.Store, user, jobRoot string) job.Job {
	t.Helper()
	s := job.Spec{Method: "sft", Model: "builtin:tiny", Dataset: job.Dataset{Path: "/d/train.jsonl"}}
	s.Normalize()
	id := postgres.NewID()
	j, _, err := store.Create(context.Background(), job.Job{ID: id, OwnerSubject: "sub-" + user, User: user, Cluster: "dev",
		Spec: s, SpecHash: s.Hash(), JobDir: jobRoot + "/" + user + "/" + id}, quota.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func progressAt(step int64) job.Progress {
	now := time.Now().UTC()
	loss := 2.0 / float64(step+1)
	return job.Progress{Phase: "training", Step: step, TotalSteps: 1000, Loss: &loss, UpdatedAt: &now}
}

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	ID, Name, Data string
	At             time.Time
}

// openSSE connects and returns a channel of events (closed at EOF) and a closer.
func openSSE(t testing.TB, url, user, lastID string) (<-chan sseEvent, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+user)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", url, err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		cancel()
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	ch := make(chan sseEvent, 256)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 4096), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.Data != "" {
					ev.At = time.Now()
					ch <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.ID = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.Name = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.Data = line[6:]
			}
		}
	}()
	return ch, func() { cancel() }
}

// nextEvent returns the next event that is not a log or heartbeat.
func nextEvent(t testing.TB, ch <-chan sseEvent, within time.Duration) sseEvent {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("stream ended")
			}
			if ev.Name == "log" {
				continue
			}
			return ev
		case <-deadline:
			t.Fatalf("no event within %v", within)
		}
	}
}

func TestIntegrationSSEAcrossReplicasAndResume(t *testing.T) {
	pool := pgtest.Schema(t)
	a := startReplica(t, pool, nil, "/jobs", 0) // the reconciler's replica: writes events
	b := startReplica(t, pool, nil, "/jobs", 0) // the subscriber's replica
	j := createJob(t, a.store, "alice", "/jobs")
	ctx := context.Background()
	url := b.http.URL + "/api/training/" + j.ID + "/events"

	ch, stop := openSSE(t, url, "alice", "")
	first := nextEvent(t, ch, 5*time.Second) // backfill: the creation
	if first.ID != "1" || first.Name != "state" || !strings.Contains(first.Data, `"to":"submitting"`) {
		t.Fatalf("first event = %+v, want id 1, the state change to submitting", first)
	}
	for step := int64(1); step <= 3; step++ {
		if err := a.store.SetProgress(ctx, j.ID, progressAt(step)); err != nil {
			t.Fatal(err)
		}
		ev := nextEvent(t, ch, 5*time.Second)
		if want := strconv.FormatInt(step+1, 10); ev.ID != want || ev.Name != "progress" || !strings.Contains(ev.Data, fmt.Sprintf(`"step":%d`, step)) {
			t.Fatalf("live event = %+v, want id %s progress step %d", ev, want, step)
		}
	}
	stop()
	// Missed while disconnected: progress 4..8 and a transition.
	for step := int64(4); step <= 8; step++ {
		if err := a.store.SetProgress(ctx, j.ID, progressAt(step)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.store.Transition(ctx, j.ID, job.Change{From: job.Submitting, To: job.Queued, SlurmID: "77"}); err != nil {
		t.Fatal(err)
	}
	ch, stop = openSSE(t, url, "alice", "4")
	defer stop()
	// More events while the backfill runs: each must arrive once, in order.
	go func() {
		for step := int64(9); step <= 12; step++ {
			_ = a.store.SetProgress(ctx, j.ID, progressAt(step))
		}
	}()
	for want := 5; want <= 14; want++ {
		ev := nextEvent(t, ch, 5*time.Second)
		if ev.ID != strconv.Itoa(want) {
			t.Fatalf("after Last-Event-ID 4 got event %s, want %d (%+v)", ev.ID, want, ev)
		}
	}
	select {
	case ev := <-ch:
		if ev.Name != "" && ev.ID != "" {
			t.Fatalf("unexpected extra event %+v", ev)
		}
	case <-time.After(300 * time.Millisecond):
	}

	// Scoping: bob gets 404, bad ids 400; the all-jobs stream carries alice's job only
	// to alice and admins.
	for _, tc := range []struct {
		user, path, hdr string
		want            int
	}{
		{"bob", "/api/training/" + j.ID + "/events", "", 404},
		{"alice", "/api/training/" + j.ID + "/events", "x", 400},
		{"alice", "/api/training/" + j.ID + "/events", "-1", 400},
		{"alice", "/api/training/" + j.ID + "/ws", "", 426},
	} {
		req, _ := http.NewRequest("GET", b.http.URL+tc.path, nil)
		req.Header.Set("Authorization", "Bearer "+tc.user)
		if tc.hdr != "" {
			req.Header.Set("Last-Event-ID", tc.hdr)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s (Last-Event-ID %q): %d, want %d", tc.user, tc.path, tc.hdr, resp.StatusCode, tc.want)
		}
	}
	allAlice, stopA := openSSE(t, b.http.URL+"/api/events", "alice", "")
	defer stopA()
	allBob, stopB := openSSE(t, b.http.URL+"/api/events", "bob", "")
	defer stopB()
	allAdmin, stopAdm := openSSE(t, b.http.URL+"/api/events", "admin", "")
	defer stopAdm()
	time.Sleep(100 * time.Millisecond) // let the three subscribe
	if err := a.store.SetProgress(ctx, j.ID, progressAt(100)); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]<-chan sseEvent{"alice": allAlice, "admin": allAdmin} {
		ev := nextEvent(t, c, 5*time.Second)
		if !strings.Contains(ev.Data, j.ID) || !strings.Contains(ev.Data, `"step":100`) {
			t.Errorf("%s's /api/events got %+v", name, ev)
		}
	}
	select {
	case ev := <-allBob:
		if ev.Name != "" && ev.Name != "log" {
			t.Errorf("bob's /api/events got alice's event %+v", ev)
		}
	case <-time.After(500 * time.Millisecond):
	}
}

// TestIntegrationSSEManySubscribersOneStalled: 200 SSE subscribers on one replica and
// one client that never reads; the others get every event, in time, and the stalled
// one is dropped with a slow_consumer error it sees once it reads again.
func TestIntegrationSSEManySubscribersOneStalled(t *testing.T) {
	pool := pgtest.Schema(t)
	a := startReplica(t, pool, nil, "/jobs", 0)
	b := startReplicaOn(t, pool, nil, "/jobs", 64, func(l net.Listener) net.Listener { return smallBuffers{l} })
	j := createJob(t, a.store, "alice", "/jobs")
	url := b.http.URL + "/api/training/" + j.ID + "/events"
	ctx := context.Background()

	// The stalled client: sends the request, never reads the response.
	stalled, err := net.Dial("tcp", strings.TrimPrefix(b.http.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	_ = stalled.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(stalled, "GET /api/training/%s/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer alice\r\n\r\n", j.ID)

	const subscribers, events = 200, 200
	chans := make([]<-chan sseEvent, subscribers)
	for i := range chans {
		var stop func()
		chans[i], stop = openSSE(t, url, "alice", "1")
		defer stop()
	}
	deadline := time.Now().Add(10 * time.Second)
	for b.hub.Stats().Subscribers < subscribers+1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	sent := make([]time.Time, events+2)
	var sentMu sync.Mutex
	go func() {
		for step := int64(1); step <= events; step++ {
			sentMu.Lock()
			sent[step+1] = time.Now()
			sentMu.Unlock()
			_ = a.store.SetProgress(ctx, j.ID, progressAt(step))
			time.Sleep(2 * time.Millisecond)
		}
	}()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var worst time.Duration
	failures := 0
	for _, ch := range chans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for want := 2; want <= events+1; want++ {
				select {
				case ev, ok := <-ch:
					if !ok || ev.ID != strconv.Itoa(want) {
						mu.Lock()
						failures++
						mu.Unlock()
						return
					}
					sentMu.Lock()
					d := ev.At.Sub(sent[want])
					sentMu.Unlock()
					mu.Lock()
					worst = max(worst, d)
					mu.Unlock()
				case <-time.After(10 * time.Second):
					mu.Lock()
					failures++
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if failures > 0 {
		t.Fatalf("%d of %d subscribers missed or reordered events", failures, subscribers)
	}
	if worst > 3*time.Second {
		t.Errorf("slowest delivery %v, want under 3s", worst)
	}
	if st := b.hub.Stats(); st.Dropped != 1 {
		t.Errorf("hub dropped %d subscribers, want the stalled one (%+v)", st.Dropped, st)
	}
	t.Logf("%d SSE subscribers + 1 stalled: all %d events delivered, slowest %v; hub %+v", subscribers, events, worst, b.hub.Stats())
	// The stalled client reads again: buffered events, then the reason it was dropped.
	_ = stalled.SetReadDeadline(time.Now().Add(20 * time.Second))
	var seen strings.Builder
	buf := make([]byte, 64<<10)
	for !strings.Contains(seen.String(), "slow_consumer") {
		n, err := stalled.Read(buf)
		seen.Write(buf[:n])
		if err != nil {
			t.Fatalf("stalled client: no slow_consumer error before %v (read %d bytes)", err, seen.Len())
		}
	}
}

// stackFS returns an SFTP pool to the stack's login node, as the gateway builds it.
func stackFS(t testing.TB) (*sshconn.Pool, *stacktest.Stack) {
	t.Helper()
	st := stacktest.Require(t)
	ca, err := sshconn.LoadSigner(st.UserCAKey)
	if err != nil {
		t.Fatal(err)
	}
	p, err := sshconn.New(sshconn.Config{Addr: st.SSHAddr, KnownHostsFile: st.KnownHosts, UserCA: ca, MaxSessions: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, st
}

func TestIntegrationSSELogLinesAndWebSocket(t *testing.T) {
	fsys, st := stackFS(t)
	pool := pgtest.Schema(t)
	a := startReplica(t, pool, fsys, st.JobRoot, 0)
	j := createJob(t, a.store, "alice", st.JobRoot)
	ctx := context.Background()
	remote(t, fsys, "alice", "mkdir", "-p", j.JobDir)
	t.Cleanup(func() { remote(t, fsys, "alice", "rm", "-rf", "--", j.JobDir) })
	remote(t, fsys, "alice", "sh", "-c", `printf 'old line\n' > "$1"`, "sh", j.JobDir+"/slurm-55.out")
	if _, err := a.store.Transition(ctx, j.ID, job.Change{From: job.Submitting, To: job.Queued, SlurmID: "55"}); err != nil {
		t.Fatal(err)
	}
	ch, stop := openSSE(t, a.http.URL+"/api/training/"+j.ID+"/events?logs=1", "alice", "")
	defer stop()
	time.Sleep(1200 * time.Millisecond) // the follower records the current end
	remote(t, fsys, "alice", "sh", "-c", `printf 'step 1 loss 0.9\nstep 2 loss 0.8\n' >> "$1"`, "sh", j.JobDir+"/slurm-55.out")
	deadline := time.After(10 * time.Second)
	var lines []string
	for len(lines) < 2 {
		select {
		case ev := <-ch:
			if ev.Name == "log" {
				var l client.LogLines
				if err := jsonUnmarshal(ev.Data, &l); err != nil {
					t.Fatal(err)
				}
				lines = append(lines, l.Lines...)
			}
		case <-deadline:
			t.Fatalf("log lines: got %q", lines)
		}
	}
	if strings.Join(lines, "|") != "step 1 loss 0.9|step 2 loss 0.8" {
		t.Fatalf("log lines %q, want the two new lines only", lines)
	}

	// WebSocket: resume after event 1, then a live event.
	wsURL := "ws" + strings.TrimPrefix(a.http.URL, "http") + "/api/training/" + j.ID + "/ws?since=1"
	msgs := wsRead(t, wsURL, "alice")
	m := <-msgs
	if m.Type != "event" || m.Event.ID != 2 || m.Event.Kind != "state" {
		t.Fatalf("first ws message %+v, want event 2 (state)", m)
	}
	if err := a.store.SetProgress(ctx, j.ID, progressAt(7)); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-msgs:
		if m.Type != "event" || m.Event.ID != 3 || !strings.Contains(string(m.Event.Data), `"step":7`) {
			t.Fatalf("live ws message %+v, want event 3 progress step 7", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no live ws message")
	}
}
