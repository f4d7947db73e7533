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

// memEvents serves the all-jobs stream too (owners are not modelled: every event is
// visible).
func (l memEvents) EventsAfter(_ context.Context, _ string, after time.Time, seen map[string]int64, limit int) ([]job.Event, error) {
	var out []job.Event
	for _, e := range l {
		if e.At.After(after) && e.ID > seen[e.JobID] && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func (l memEvents) DBNow(context.Context) (time.Time, error) { return time.Unix(2000, 0), nil }

// sseLines opens url as user with header Last-Event-ID=lastID and returns its lines.
func sseLines(t *testing.T, url, user, lastID string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+user)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	lines := make(chan string, 100)
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	return lines
}

// untilLine returns the lines read up to and including the first starting with want.
func untilLine(t *testing.T, lines <-chan string, want string) []string {
	t.Helper()
	var got []string
	timeout := time.After(3 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("stream ended before %q; got %q", want, got)
			}
			got = append(got, l)
			if strings.HasPrefix(l, want) {
				return got
			}
		case <-timeout:
			t.Fatalf("no line %q; got %q", want, got)
		}
	}
}

func TestAllEventsCursor(t *testing.T) {
	t.Parallel()
	j := job.Job{ID: "00000000-0000-4000-8000-000000000001", OwnerSubject: "sub-alice", User: "alice"}
	var log memEvents
	for i := int64(1); i <= 3; i++ {
		log = append(log, job.Event{JobID: j.ID, ID: i, Kind: job.EventProgress, At: time.Unix(1000+i, 0), Data: []byte(`{"step":1}`)})
	}
	hub := event.NewLocal(event.Config{})
	streams := Streams{Hub: hub, Events: log, Heartbeat: time.Minute}
	hs := httptest.NewServer((&Server{Auth: tokenAuth{}, Store: oneJobStore{j: j}, Streams: streams}).Handler())
	t.Cleanup(hs.Close) // after the streams' cancels

	for _, bad := range []string{"7", "1.x", "1.100.nope:3"} {
		if st := get(t, hs.URL+"/api/events", "alice", bad); st != 400 {
			t.Errorf("Last-Event-ID %q: %d, want 400", bad, st)
		}
	}
	if st := get(t, hs.URL+"/api/events?since=2.5", "alice", ""); st != 400 {
		t.Errorf("?since=2.5: %d, want 400", st)
	}

	// A fresh stream starts at the database's now and says so at once.
	got := untilLine(t, sseLines(t, hs.URL+"/api/events", "alice", ""), "id: ")
	if want := "id: " + (event.Position{After: time.Unix(2000, 0)}).String(); got[len(got)-1] != want {
		t.Errorf("fresh stream's first id %q, want %q", got[len(got)-1], want)
	}

	// Resuming after event 1 (the mark before it, job 1 at id 1) replays 2 and 3.
	pos := event.Position{After: time.Unix(1000, 0), Jobs: map[string]int64{j.ID: 1}}
	lines := sseLines(t, hs.URL+"/api/events", "alice", pos.String())
	got = untilLine(t, lines, `data: {"job_id":"`+j.ID+`","id":3`)
	text := strings.Join(got, "\n")
	if strings.Contains(text, `"id":1,`) || !strings.Contains(text, `"id":2,`) {
		t.Errorf("resumed stream replayed the wrong events:\n%s", text)
	}
	want := "id: " + (event.Position{After: time.Unix(1000, 0), Jobs: map[string]int64{j.ID: 3}}).String()
	if !strings.Contains(text, want) {
		t.Errorf("resumed stream lacks cursor %q:\n%s", want, text)
	}
	// Live: a duplicate is dropped, the next event carries the advanced cursor.
	hub.Publish(event.Message{Owner: j.OwnerSubject, Event: log[2]})
	hub.Publish(event.Message{Owner: j.OwnerSubject, Event: job.Event{JobID: j.ID, ID: 4, Kind: job.EventState, At: time.Unix(1100, 0)}})
	got = untilLine(t, lines, "data: ")
	if !strings.Contains(strings.Join(got, "\n"), `"id":4,`) {
		t.Errorf("live after replay: %q, want event 4 (3 is a duplicate)", got)
	}

	// Further behind than MaxReplay: a reset, then a fresh cursor.
	streams.MaxReplay = 2
	small := httptest.NewServer((&Server{Auth: tokenAuth{}, Store: oneJobStore{j: j}, Streams: streams}).Handler())
	t.Cleanup(small.Close)
	got = untilLine(t, sseLines(t, small.URL+"/api/events", "alice", (event.Position{After: time.Unix(900, 0)}).String()), "id: ")
	text = strings.Join(got, "\n")
	if !strings.Contains(text, "event: reset") || !strings.Contains(text, `"code":"too_far_behind"`) || strings.Contains(text, `"job_id"`) {
		t.Errorf("too far behind:\n%s", text)
	}
}
