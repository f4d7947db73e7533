package api

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/event"
	"github.com/ftgate/ftgate/internal/job"
)

// oneJobStore serves one job; other Store methods are not used by streams.
type oneJobStore struct {
	Store
	j job.Job
}

func (s oneJobStore) Get(_ context.Context, id string) (job.Job, error) {
	if id != s.j.ID {
		return job.Job{}, job.Errorf(job.ENotFound, "job %s not found", id)
	}
	return s.j, nil
}

type memEvents []job.Event

func (l memEvents) Events(_ context.Context, id string, after int64, limit int) ([]job.Event, error) {
	var out []job.Event
	for _, e := range l {
		if e.JobID == id && e.ID > after && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func TestParseEventID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		hdr, query string
		want       int64
		ok         bool
	}{
		{"", "", 0, true},
		{"7", "", 7, true},
		{"", "last_event_id=9", 9, true},
		{"3", "last_event_id=9", 3, true},
		{"x", "", 0, false},
		{"-2", "", 0, false},
		{"", "last_event_id=1e3", 0, false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/x?"+tt.query, nil)
		if tt.hdr != "" {
			r.Header.Set("Last-Event-ID", tt.hdr)
		}
		n, err := parseEventID(r, "last_event_id")
		if (err == nil) != tt.ok || n != tt.want {
			t.Errorf("hdr %q query %q: %d, %v; want %d ok=%v", tt.hdr, tt.query, n, err, tt.want, tt.ok)
		}
		if err != nil && job.ErrorCode(err) != job.EInvalid {
			t.Errorf("error code %s, want invalid", job.ErrorCode(err))
		}
	}
	if sseName("progress") != "progress" || sseName("a\nb") != "message" || sseName("") != "message" {
		t.Error("sseName does not keep event names safe")
	}
}

func TestSSEBackfillLiveHeartbeatAndSlowClose(t *testing.T) {
	t.Parallel()
	j := job.Job{ID: "00000000-0000-4000-8000-000000000001", OwnerSubject: "sub-alice", User: "alice"}
	var log memEvents
	for i := int64(1); i <= 5; i++ {
		log = append(log, job.Event{JobID: j.ID, ID: i, Kind: job.EventProgress, Data: []byte(`{"step":1}`)})
	}
	hub := event.NewLocal(event.Config{Buffer: 2})
	srv := &Server{Auth: tokenAuth{}, Store: oneJobStore{j: j}, Streams: Streams{Hub: hub, Events: log, Heartbeat: 50 * time.Millisecond}}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	if st := get(t, hs.URL+"/api/training/"+j.ID+"/events", "bob", ""); st != 404 {
		t.Errorf("bob: %d, want 404", st)
	}
	if st := get(t, hs.URL+"/api/training/"+j.ID+"/events", "alice", "nope"); st != 400 {
		t.Errorf("bad Last-Event-ID: %d, want 400", st)
	}
	if st := get(t, hs.URL+"/api/events", "alice", ""); st != 200 {
		t.Errorf("/api/events: %d, want 200", st)
	}
	noHub := httptest.NewServer((&Server{Auth: tokenAuth{}, Store: oneJobStore{j: j}}).Handler())
	defer noHub.Close()
	if st := get(t, noHub.URL+"/api/training/"+j.ID+"/events", "alice", ""); st != 503 {
		t.Errorf("without a hub: %d, want 503", st)
	}

	req, _ := http.NewRequest("GET", hs.URL+"/api/training/"+j.ID+"/events", nil)
	req.Header.Set("Authorization", "Bearer alice")
	req.Header.Set("Last-Event-ID", "3")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
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
	expect := func(want string) {
		t.Helper()
		timeout := time.After(3 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("stream ended before %q", want)
				}
				if strings.HasPrefix(l, want) {
					return
				}
			case <-timeout:
				t.Fatalf("no line %q", want)
			}
		}
	}
	expect("id: 4")
	expect("id: 5")
	// A duplicate (5) is skipped; the next id (6) is delivered live.
	hub.Publish(event.Message{Owner: j.OwnerSubject, Event: log[4]})
	e6 := job.Event{JobID: j.ID, ID: 6, Kind: job.EventState, Data: []byte(`{"to":"running"}`)}
	hub.Publish(event.Message{Owner: j.OwnerSubject, Event: e6})
	expect("id: 6")
	expect("event: state")
	expect(": ping")
	// Overflow the subscriber's queue: the stream ends with a slow_consumer error.
	for i := 0; i < 50; i++ {
		hub.Publish(event.Message{Owner: j.OwnerSubject, Event: job.Event{JobID: j.ID, ID: int64(100 + i)}})
	}
	expect("event: error")
}

func get(t *testing.T, url, user, lastID string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+user)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
