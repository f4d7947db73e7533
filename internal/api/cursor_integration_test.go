package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/postgres"
	"github.com/ftgate/ftgate/internal/postgres/pgtest"
)

// allStream reads GET /api/events like EventSource: it keeps the last id sent (also
// from id-only messages) and delivers each event's job and per-job id.
type allStream struct {
	events chan string // "<job id>#<event id>", or "reset"
	last   chan string // every id the server sent, in order
	stop   context.CancelFunc
}

func openAll(t *testing.T, base, user, lastID string) *allStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+user)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		cancel()
		t.Fatalf("GET /api/events as %s: %v %v", user, err, resp)
	}
	s := &allStream{events: make(chan string, 1000), last: make(chan string, 1000), stop: cancel}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 4096), 1<<20)
		var id, name, data string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if id != "" {
					s.last <- id
				}
				switch {
				case name == "reset":
					s.events <- "reset"
				case name == "error":
					s.events <- "error " + data
				case data != "":
					var e client.Event
					_ = json.Unmarshal([]byte(data), &e)
					s.events <- fmt.Sprintf("%s#%d", e.JobID, e.ID)
				}
				id, name, data = "", "", ""
			case strings.HasPrefix(line, "id: "):
				id = line[4:]
			case strings.HasPrefix(line, "event: "):
				name = line[7:]
			case strings.HasPrefix(line, "data: "):
				data = line[6:]
			}
		}
	}()
	t.Cleanup(cancel)
	return s
}

// lastID drains the ids received so far and returns the newest (waiting for one).
func (s *allStream) lastID(t *testing.T) string {
	t.Helper()
	var last string
	select {
	case last = <-s.last:
	case <-time.After(10 * time.Second):
		t.Fatal("no SSE id")
	}
	for {
		select {
		case id := <-s.last:
			last = id
		default:
			return last
		}
	}
}

// collect reads events until want are all there, then for quiet more, and fails on
// a missing, duplicate or unexpected event.
func (s *allStream) collect(t *testing.T, what string, want map[string]bool, quiet time.Duration) {
	t.Helper()
	got := map[string]int{}
	deadline := time.After(20 * time.Second)
	var settle <-chan time.Time
	for {
		if settle == nil && len(got) >= len(want) {
			settle = time.After(quiet)
		}
		select {
		case e := <-s.events:
			got[e]++
			if !want[e] || got[e] > 1 {
				t.Errorf("%s: unexpected or duplicate event %s (seen %d times)", what, e, got[e])
			}
		case <-settle:
			return
		case <-deadline:
			for e := range want {
				if got[e] == 0 {
					t.Errorf("%s: missing event %s", what, e)
				}
			}
			return
		}
	}
}

// write appends progress events to jobs (n each) through store and returns them.
func write(t *testing.T, store *postgres.Store, step *int64, n int, ids ...string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for range n {
		for _, id := range ids {
			*step++
			if err := store.SetProgress(context.Background(), id, progressAt(*step)); err != nil {
				t.Fatal(err)
			}
			evs, err := store.Events(context.Background(), id, 0, 10000)
			if err != nil {
				t.Fatal(err)
			}
			out[fmt.Sprintf("%s#%d", id, evs[len(evs)-1].ID)] = true
		}
	}
	return out
}

func union(ms ...map[string]bool) map[string]bool {
	out := map[string]bool{}
	for _, m := range ms {
		for k := range m {
			out[k] = true
		}
	}
	return out
}

// TestIntegrationAllEventsResume: GET /api/events delivers every visible event exactly
// once across a lost LISTEN connection, and a client that reconnects to another
// replica with its last id gets what it missed, then the live stream, without
// duplicates; the cursor never shows another user's events.
func TestIntegrationAllEventsResume(t *testing.T) {
	pool := pgtest.Schema(t)
	ctx := context.Background()
	// Replica b's connections carry a name of this test's own, so that its hub's
	// LISTEN backend (and no other session) can be terminated.
	app := "ftgate-cursor-test-" + postgres.NewID()[:8]
	cfg := pool.Config().Copy()
	cfg.ConnConfig.RuntimeParams["application_name"] = app
	named, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(named.Close)
	a := startReplica(t, pool, nil, "/jobs", 0)
	b := startReplica(t, named, nil, "/jobs", 0)
	j1, j2 := createJob(t, a.store, "alice", "/jobs"), createJob(t, a.store, "alice", "/jobs")
	j3 := createJob(t, a.store, "bob", "/jobs")
	var step int64

	s := openAll(t, b.http.URL, "alice", "")
	start := s.lastID(t) // the fresh stream's cursor comes first
	live := write(t, a.store, &step, 2, j1.ID, j2.ID)
	write(t, a.store, &step, 2, j3.ID) // bob's
	s.collect(t, "live", live, 300*time.Millisecond)

	// Lose b's LISTEN connection; events written meanwhile come from the log.
	var killed int
	if err := pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1 AND query LIKE 'LISTEN%'`, app).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminate the hub's LISTEN backend: %d terminated, %v", killed, err)
	}
	during := write(t, a.store, &step, 3, j1.ID, j2.ID)
	// A job created meanwhile that has no later event: only replaying the log
	// (not a per-job gap) can find it.
	j4 := createJob(t, a.store, "alice", "/jobs")
	during[j4.ID+"#1"] = true
	for k := range write(t, a.store, &step, 2, j4.ID) {
		during[k] = true
	}
	write(t, a.store, &step, 3, j3.ID) // bob's
	time.Sleep(time.Second)            // the hub reconnects with a backoff of 200-300ms
	after := write(t, a.store, &step, 2, j1.ID, j2.ID)
	s.collect(t, "across a LISTEN reconnect", union(during, after), 500*time.Millisecond)
	cursor := s.lastID(t)
	s.stop()

	// Disconnected: more events; then resume on replica a.
	missed := write(t, a.store, &step, 3, j1.ID, j2.ID)
	bobs := write(t, a.store, &step, 1, j3.ID)
	r := openAll(t, a.http.URL, "alice", cursor)
	r.collect(t, "replay on the other replica", missed, 500*time.Millisecond)
	more := write(t, b.store, &step, 2, j1.ID, j2.ID)
	r.collect(t, "live after replay", more, 500*time.Millisecond)

	// From the very first cursor alice gets all of hers since then, once each;
	// bob with alice's cursor gets only his own.
	all := openAll(t, b.http.URL, "alice", start)
	all.collect(t, "replay from the start", union(live, during, after, missed, more), 500*time.Millisecond)
	bob := openAll(t, b.http.URL, "bob", start)
	bobAll := map[string]bool{}
	evs, err := a.store.Events(ctx, j3.ID, 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		bobAll[fmt.Sprintf("%s#%d", e.JobID, e.ID)] = true
	}
	if len(bobAll) != 2+3+len(bobs) {
		t.Fatalf("bob's job has %d events after its creation, want %d", len(bobAll), 2+3+len(bobs))
	}
	bob.collect(t, "bob's replay", bobAll, 500*time.Millisecond)

	// The typed client resumes too; an admin's cursor covers every user's jobs.
	ac := client.New(a.http.URL, &http.Client{Transport: authTransport{http.DefaultTransport, "admin"}})
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := ac.Events(cctx, "", client.EventOptions{Cursor: start})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	adm := &allStream{events: make(chan string, 1000)}
	go func() {
		_ = client.ReadSSE(resp.Body, func(ev client.SSEEvent) error {
			if ev.Data == "" {
				return nil // a cursor update: no event
			}
			var e client.Event
			_ = json.Unmarshal([]byte(ev.Data), &e)
			adm.events <- fmt.Sprintf("%s#%d", e.JobID, e.ID)
			return nil
		})
	}()
	adm.collect(t, "admin's replay", union(live, during, after, missed, more, bobAll), 500*time.Millisecond)

	// Too far behind the replay limit: a reset, then a fresh cursor.
	c := startReplica(t, pool, nil, "/jobs", 0)
	c.srv.Streams.MaxReplay = 5 // before its first request
	tooFar := openAll(t, c.http.URL, "alice", start)
	select {
	case e := <-tooFar.events:
		if e != "reset" {
			t.Errorf("too far behind: first event %s, want reset", e)
		}
	case <-time.After(10 * time.Second):
		t.Error("too far behind: no reset")
	}
}
