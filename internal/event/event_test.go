package event

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
)

// memLog is an in-memory event log.
type memLog map[string][]job.Event

func (l memLog) Events(_ context.Context, id string, after int64, limit int) ([]job.Event, error) {
	var out []job.Event
	for _, e := range l[id] {
		if e.ID > after && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func (l memLog) add(jobID string, n int) {
	for range n {
		l[jobID] = append(l[jobID], job.Event{JobID: jobID, ID: int64(len(l[jobID]) + 1), Kind: job.EventProgress})
	}
}

func ids(evs []job.Event) []int64 {
	var out []int64
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out
}

func TestPublishFilters(t *testing.T) {
	t.Parallel()
	h := newHub(memLog{}, Config{Buffer: 4}, nil)
	a := h.Subscribe(Filter{JobID: "a"})
	allAlice := h.Subscribe(Filter{Owner: "alice"})
	admin := h.Subscribe(Filter{})
	h.Publish(Message{Owner: "alice", Event: job.Event{JobID: "a", ID: 1}})
	h.Publish(Message{Owner: "bob", Event: job.Event{JobID: "b", ID: 1}})
	tests := []struct {
		name string
		sub  *Sub
		want []string
	}{
		{"job a", a, []string{"a"}},
		{"alice's jobs", allAlice, []string{"a"}},
		{"admin", admin, []string{"a", "b"}},
	}
	for _, tt := range tests {
		var got []string
		for len(tt.sub.C()) > 0 {
			got = append(got, (<-tt.sub.C()).Event.JobID)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s got %v, want %v", tt.name, got, tt.want)
		}
	}
	if s := h.Stats(); s.Subscribers != 3 {
		t.Errorf("Stats().Subscribers = %d, want 3", s.Subscribers)
	}
	a.Close()
	if s := h.Stats(); s.Subscribers != 2 {
		t.Errorf("after Close, Subscribers = %d, want 2", s.Subscribers)
	}
	if !h.wanted(Note{JobID: "x", Owner: "alice"}) || h.wanted(Note{JobID: "a", Owner: "carol"}) != true {
		t.Error("wanted: admin subscriber should want every note")
	}
}

// TestPublishVisitsOnlyWantedSubscribers: an event is offered to its job's, its
// owner's and the admins' subscribers only; thousands of other users' /api/events
// streams cost it nothing.
func TestPublishVisitsOnlyWantedSubscribers(t *testing.T) {
	t.Parallel()
	h := newHub(memLog{}, Config{Buffer: 4}, nil)
	for i := range 5000 {
		h.Subscribe(Filter{Owner: fmt.Sprintf("user-%d", i)})
		h.Subscribe(Filter{JobID: fmt.Sprintf("job-%d", i)})
	}
	mine := h.Subscribe(Filter{Owner: "alice"})
	job1 := h.Subscribe(Filter{JobID: "a1"})
	h.Publish(Message{Owner: "alice", Event: job.Event{JobID: "a1", ID: 1}})
	if s := h.Stats(); s.Offered != 2 {
		t.Errorf("one event offered to %d subscribers, want 2 (its job's and its owner's)", s.Offered)
	}
	if len(mine.C()) != 1 || len(job1.C()) != 1 {
		t.Errorf("wanted subscribers got %d and %d events, want 1 each", len(mine.C()), len(job1.C()))
	}
	if h.wanted(Note{JobID: "zz", Owner: "carol"}) {
		t.Error("an event nobody wants is wanted")
	}
	h.Subscribe(Filter{})
	if !h.wanted(Note{JobID: "zz", Owner: "carol"}) {
		t.Error("an admin subscriber wants every event")
	}
}

func TestSlowConsumerDroppedOthersUnaffected(t *testing.T) {
	t.Parallel()
	h := newHub(memLog{}, Config{Buffer: 8}, nil)
	slow := h.Subscribe(Filter{JobID: "j"})
	fast := h.Subscribe(Filter{JobID: "j"})
	got := make(chan int64, 100)
	go func() {
		for m := range fast.C() {
			got <- m.Event.ID
		}
	}()
	start := time.Now()
	for i := 1; i <= 50; i++ {
		h.Publish(Message{Event: job.Event{JobID: "j", ID: int64(i)}})
		// Let the fast reader keep up, as a real client would.
		deadline := time.Now().Add(time.Second)
		for len(got) < i && time.Now().Before(deadline) {
			time.Sleep(100 * time.Microsecond)
		}
	}
	if len(got) != 50 {
		t.Fatalf("fast subscriber got %d of 50 events", len(got))
	}
	select {
	case <-slow.Done():
	default:
		t.Fatal("slow subscriber was not dropped")
	}
	if !errors.Is(slow.Err(), ErrSlow) {
		t.Errorf("slow.Err() = %v, want ErrSlow", slow.Err())
	}
	if fast.Err() != nil {
		t.Errorf("fast.Err() = %v, want nil", fast.Err())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("publishing took %v", d)
	}
	if s := h.Stats(); s.Dropped != 1 || s.Subscribers != 1 {
		t.Errorf("stats %+v, want 1 dropped, 1 subscriber", s)
	}
}

func TestShutdownDropsSubscribers(t *testing.T) {
	t.Parallel()
	h := newHub(memLog{}, Config{}, nil)
	s := h.Subscribe(Filter{})
	h.shutdown()
	<-s.Done()
	if !errors.Is(s.Err(), ErrClosed) {
		t.Fatalf("Err() = %v, want ErrClosed", s.Err())
	}
	late := h.Subscribe(Filter{JobID: "x"})
	<-late.Done()
	if !errors.Is(late.Err(), ErrClosed) {
		t.Fatalf("late Err() = %v, want ErrClosed", late.Err())
	}
}

func TestGapSignal(t *testing.T) {
	t.Parallel()
	h := newHub(memLog{}, Config{}, nil)
	s := h.Subscribe(Filter{JobID: "j"})
	h.signalGap()
	h.signalGap() // coalesced
	select {
	case <-s.Gap():
	default:
		t.Fatal("no gap signal")
	}
	select {
	case <-s.Gap():
		t.Fatal("gap signals were not coalesced")
	default:
	}
}

func TestCursor(t *testing.T) {
	t.Parallel()
	log := memLog{}
	log.add("j", 1200)
	log.add("k", 3)
	ctx := context.Background()
	tests := []struct {
		name  string
		start int64
		live  []int64 // ids arriving live after the backfill
		want  []int64 // ids delivered after the backfill
	}{
		{"duplicates skipped", 1200, []int64{1199, 1200}, nil},
		{"in order", 1198, nil, nil},
		{"gap read from the log", 1195, []int64{1200}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCursor(log)
			c.Start("j", tt.start)
			var got []job.Event
			emit := func(e job.Event) error { got = append(got, e); return nil }
			if err := c.Backfill(ctx, "j", emit); err != nil {
				t.Fatal(err)
			}
			for _, id := range tt.live {
				if err := c.Accept(ctx, log["j"][id-1], emit); err != nil {
					t.Fatal(err)
				}
			}
			var want []int64
			for i := tt.start + 1; i <= 1200; i++ {
				want = append(want, i)
			}
			if !slices.Equal(ids(got), want) {
				t.Fatalf("delivered %d events %v..., want %d from %d", len(got), head(ids(got)), len(want), tt.start+1)
			}
		})
	}
	t.Run("full backfill pages", func(t *testing.T) {
		c := NewCursor(log)
		n := 0
		if err := c.Backfill(ctx, "j", func(job.Event) error { n++; return nil }); err != nil || n != 1200 || c.Last("j") != 1200 {
			t.Fatalf("backfilled %d (last %d, err %v), want 1200", n, c.Last("j"), err)
		}
	})
	t.Run("unseen job starts live", func(t *testing.T) {
		c := NewCursor(log)
		var got []job.Event
		emit := func(e job.Event) error { got = append(got, e); return nil }
		_ = c.Accept(ctx, log["k"][1], emit)
		_ = c.Accept(ctx, log["k"][2], emit)
		_ = c.Accept(ctx, log["k"][2], emit)
		if !slices.Equal(ids(got), []int64{2, 3}) {
			t.Fatalf("got %v, want [2 3]", ids(got))
		}
	})
	t.Run("emit error stops", func(t *testing.T) {
		c := NewCursor(log)
		boom := fmt.Errorf("boom")
		err := c.Backfill(ctx, "k", func(e job.Event) error {
			if e.ID == 2 {
				return boom
			}
			return nil
		})
		if !errors.Is(err, boom) || c.Last("k") != 1 {
			t.Fatalf("err %v last %d, want boom and 1", err, c.Last("k"))
		}
	})
}

func head(x []int64) []int64 {
	if len(x) > 5 {
		return x[:5]
	}
	return x
}
