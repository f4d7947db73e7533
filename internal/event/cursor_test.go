package event

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
)

const (
	jobA = "00000000-0000-4000-8000-00000000000a"
	jobB = "00000000-0000-4000-8000-00000000000b"
	jobC = "00000000-0000-4000-8000-00000000000c"
)

func TestPositionRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.UnixMicro(1764581234567890)
	tests := []struct {
		pos  Position
		want string
	}{
		{Position{After: at}, "1.1764581234567890"},
		{Position{After: at, Jobs: map[string]int64{jobB: 7, jobA: 12}}, "1.1764581234567890." + jobA + ":12." + jobB + ":7"},
	}
	for _, tt := range tests {
		s := tt.pos.String()
		if s != tt.want {
			t.Errorf("String() = %q, want %q", s, tt.want)
		}
		p, err := ParsePosition(s)
		if err != nil {
			t.Fatalf("ParsePosition(%q): %v", s, err)
		}
		if !p.After.Equal(tt.pos.After) || len(p.Jobs) != len(tt.pos.Jobs) {
			t.Errorf("ParsePosition(%q) = %+v, want %+v", s, p, tt.pos)
		}
		for id, n := range tt.pos.Jobs {
			if p.Jobs[id] != n {
				t.Errorf("ParsePosition(%q): job %s at %d, want %d", s, id, p.Jobs[id], n)
			}
		}
	}
}

func TestParsePositionRejects(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"", "42", "2.100", "1.", "1.x", "1.-5", "1.100." + jobA, "1.100." + jobA + ":0",
		"1.100." + jobA + ":x", "1.100.not-a-uuid:3", "1.100." + jobA + ":1." + jobA + ":2",
		"1.100" + strings.Repeat("."+jobA+":1", MaxPositionJobs+1),
	} {
		if _, err := ParsePosition(s); err == nil {
			t.Errorf("ParsePosition(%.60q) accepted", s)
		}
	}
}

// memFeed is an in-memory FeedLog: events with their jobs' owners.
type memFeed struct {
	evs   []job.Event
	owner map[string]string
	now   time.Time
}

func (m *memFeed) Events(_ context.Context, id string, after int64, limit int) ([]job.Event, error) {
	var out []job.Event
	for _, e := range m.evs {
		if e.JobID == id && e.ID > after && len(out) < limit {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (m *memFeed) EventsAfter(_ context.Context, owner string, after time.Time, seen map[string]int64, limit int) ([]job.Event, error) {
	var out []job.Event
	for _, e := range m.evs {
		if e.At.After(after) && (owner == "" || m.owner[e.JobID] == owner) && e.ID > seen[e.JobID] {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if !a.At.Equal(b.At) {
			return a.At.Before(b.At)
		}
		if a.JobID != b.JobID {
			return a.JobID < b.JobID
		}
		return a.ID < b.ID
	})
	return out[:min(limit, len(out))], nil
}

func (m *memFeed) DBNow(context.Context) (time.Time, error) { return m.now, nil }

// add commits an event of jobID at second sec and returns it.
func (m *memFeed) add(jobID string, sec int) job.Event {
	var id int64
	for _, e := range m.evs {
		if e.JobID == jobID {
			id = max(id, e.ID)
		}
	}
	e := job.Event{JobID: jobID, ID: id + 1, Kind: job.EventProgress, At: time.Unix(int64(sec), 0)}
	m.evs = append(m.evs, e)
	return e
}

// recorder collects delivered events and the last position.
type recorder struct {
	got []string
	pos Position
}

func (r *recorder) emit(e job.Event, p Position) error {
	r.got = append(r.got, fmt.Sprintf("%s#%d", e.JobID[len(e.JobID)-1:], e.ID))
	r.pos = p
	return nil
}

func TestFeedResumeExactlyOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	log := &memFeed{owner: map[string]string{jobA: "alice", jobB: "alice", jobC: "bob"}, now: time.Unix(1000, 0)}
	log.add(jobA, 990) // before the stream began: never delivered

	var first recorder
	f := NewFeed(log, "alice", 100)
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	a2, b1 := log.add(jobA, 1001), log.add(jobB, 1002)
	for _, e := range []job.Event{a2, b1, a2} { // a live duplicate
		if err := f.Accept(ctx, e, first.emit); err != nil {
			t.Fatal(err)
		}
	}
	// B's second event is inserted before A's third but commits (and is notified) after
	// it; the client disconnects in between, holding A's cursor.
	b2 := log.add(jobB, 1040)
	a3 := log.add(jobA, 1050)
	if err := f.Accept(ctx, a3, first.emit); err != nil {
		t.Fatal(err)
	}
	cursor := first.pos.String()
	if got := strings.Join(first.got, " "); got != "a#2 b#1 a#3" {
		t.Fatalf("first connection got %q, want a#2 b#1 a#3", got)
	}
	if want := time.Unix(1020, 0); !first.pos.After.Equal(want) {
		t.Errorf("mark %v, want the newest event minus ResumeWindow %v", first.pos.After, want)
	}
	if _, ok := first.pos.Jobs[jobB]; ok {
		t.Errorf("job B's last event is before the mark, yet the cursor keeps it: %s", cursor)
	}
	log.add(jobC, 1060) // bob's: never shown to alice
	a4 := log.add(jobA, 1070)

	// Reconnect: subscribe, then replay, then live events that replay already read.
	p, err := ParsePosition(cursor)
	if err != nil {
		t.Fatal(err)
	}
	var second recorder
	g := NewFeed(log, "alice", 100)
	g.Resume(p)
	if err := g.Replay(ctx, second.emit); err != nil {
		t.Fatal(err)
	}
	for _, e := range []job.Event{b2, a3, a4} {
		if err := g.Accept(ctx, e, second.emit); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(second.got, " "); got != "b#2 a#4" {
		t.Errorf("after resuming got %q, want b#2 a#4", got)
	}
	// A gap in one job is read from its log, in order.
	log.add(jobA, 1080)
	a6 := log.add(jobA, 1081)
	if err := g.Accept(ctx, a6, second.emit); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(second.got, " "); got != "b#2 a#4 a#5 a#6" {
		t.Errorf("after a gap got %q, want b#2 a#4 a#5 a#6", got)
	}
}

func TestFeedTooFarBehind(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	log := &memFeed{owner: map[string]string{jobA: "alice"}, now: time.Unix(1000, 0)}
	for i := range 4 {
		log.add(jobA, 1001+i)
	}
	var r recorder
	f := NewFeed(log, "alice", 3)
	f.Resume(Position{After: time.Unix(1000, 0)})
	if err := f.Replay(ctx, r.emit); err != ErrTooFarBehind {
		t.Fatalf("Replay of 4 events with a limit of 3: %v, want ErrTooFarBehind", err)
	}
	if len(r.got) != 0 {
		t.Errorf("a refused replay delivered %v", r.got)
	}
	// Only what the cursor has not seen counts toward the limit.
	r.got = nil
	f = NewFeed(log, "alice", 1)
	f.Resume(Position{After: time.Unix(1000, 0), Jobs: map[string]int64{jobA: 3}})
	if err := f.Replay(ctx, r.emit); err != nil || strings.Join(r.got, " ") != "a#4" {
		t.Errorf("Replay of 1 unseen event with a limit of 1: %v, got %v", err, r.got)
	}
	r.got = nil
	f = NewFeed(log, "alice", 4)
	f.Resume(Position{After: time.Unix(1000, 0)})
	if err := f.Replay(ctx, r.emit); err != nil || len(r.got) != 4 {
		t.Errorf("Replay of 4 events with a limit of 4: %v, got %v", err, r.got)
	}
}
