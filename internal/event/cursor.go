package event

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/postgres"
)

// backfillPage is how many events one log read returns.
const backfillPage = 500

// Cursor turns a subscription into an exactly-once, ordered stream: it remembers the
// last event id delivered per job, drops duplicates and reads gaps from the log.
type Cursor struct {
	log  Log
	last map[string]int64
}

// NewCursor returns a cursor reading gaps through log.
func NewCursor(log Log) *Cursor { return &Cursor{log: log, last: map[string]int64{}} }

// Start sets the last id delivered for jobID (0: none), e.g. from Last-Event-ID.
func (c *Cursor) Start(jobID string, after int64) { c.last[jobID] = after }

// Last returns the last id delivered for jobID.
func (c *Cursor) Last(jobID string) int64 { return c.last[jobID] }

// Backfill returns every event of jobID after the last one delivered, reading the log
// page by page, and advances the cursor. emit is called for each event in order; an
// error from emit stops the backfill.
func (c *Cursor) Backfill(ctx context.Context, jobID string, emit func(job.Event) error) error {
	for {
		evs, err := c.log.Events(ctx, jobID, c.last[jobID], backfillPage)
		if err != nil {
			return err
		}
		for _, e := range evs {
			if e.ID <= c.last[jobID] {
				continue
			}
			if err := emit(e); err != nil {
				return err
			}
			c.last[jobID] = e.ID
		}
		if len(evs) < backfillPage {
			return nil
		}
	}
}

// BackfillAll backfills every job the cursor has seen (after a Gap).
func (c *Cursor) BackfillAll(ctx context.Context, emit func(job.Event) error) error {
	for id := range c.last {
		if err := c.Backfill(ctx, id, emit); err != nil {
			return err
		}
	}
	return nil
}

// Accept delivers a live event: a duplicate (id not beyond the last delivered) is
// skipped; a gap is read from the log first. A job the cursor has not seen starts at
// this event (the live stream of all jobs begins now).
func (c *Cursor) Accept(ctx context.Context, e job.Event, emit func(job.Event) error) error {
	last, seen := c.last[e.JobID]
	switch {
	case !seen:
	case e.ID <= last:
		return nil
	case e.ID > last+1:
		return c.Backfill(ctx, e.JobID, emit)
	}
	if err := emit(e); err != nil {
		return err
	}
	c.last[e.JobID] = e.ID
	return nil
}

// The all-jobs stream (GET /api/events) resumes from a Position.
//
// Per-job event ids are gap-free and committed in order (the job row is locked while
// the id is taken), but there is no such global order: a bigserial across jobs would
// be allocated in one order and committed in another, so "every id above the last one
// seen" would miss an event whose transaction committed late. Instead a Position is a
// low-water mark in event time plus the last id delivered for every job with an event
// after that mark:
//
//   - every visible event with a time at or before After was delivered (or came before
//     the stream began);
//   - an event after After was delivered exactly when its job is in Jobs with an id at
//     or beyond it.
//
// Event times come from the database clock at insert (rising with ids within a job),
// and a transaction commits within ResumeWindow of its insert. LISTEN notifications
// arrive in commit order, so once an event of time T is delivered, every event older
// than T-ResumeWindow has committed and was delivered before it: After trails the
// newest delivered event by ResumeWindow, and Jobs holds only the jobs active in that
// window. Replay reads the events after After that Jobs does not cover from the log
// (the replay limit counts only those); live events are de-duplicated the same way.

// ResumeWindow is how long after its insert an event's transaction may commit and
// still be resumed correctly; it is how far a Position's mark trails the newest event.
const ResumeWindow = 30 * time.Second

// MaxPositionJobs bounds the jobs a parsed Position may name.
const MaxPositionJobs = 10000

// ErrTooFarBehind is Replay's answer when more events follow the position than the
// replay limit: the caller reloads its state and continues from now.
var ErrTooFarBehind = errors.New("too many events since this cursor to replay")

// Position is a resume point of the all-jobs stream.
type Position struct {
	After time.Time        // the low-water mark in event time
	Jobs  map[string]int64 // last event id delivered, for jobs with events after After
}

// String encodes p as "1.<After in unix µs>[.<job id>:<event id>]..." (jobs sorted),
// the SSE id of the all-jobs stream.
func (p Position) String() string {
	ids := make([]string, 0, len(p.Jobs))
	for id := range p.Jobs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var b strings.Builder
	b.WriteString("1.")
	b.WriteString(strconv.FormatInt(p.After.UnixMicro(), 10))
	for _, id := range ids {
		b.WriteByte('.')
		b.WriteString(id)
		b.WriteByte(':')
		b.WriteString(strconv.FormatInt(p.Jobs[id], 10))
	}
	return b.String()
}

// ParsePosition decodes a Position written by String.
func ParsePosition(s string) (Position, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) < 2 || parts[0] != "1" {
		return Position{}, errors.New("not an event stream cursor (want 1.<time>[.<job>:<id>]...)")
	}
	if len(parts)-2 > MaxPositionJobs {
		return Position{}, fmt.Errorf("cursor names more than %d jobs", MaxPositionJobs)
	}
	us, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || us < 0 {
		return Position{}, fmt.Errorf("cursor time %q: want microseconds since 1970", parts[1])
	}
	p := Position{After: time.UnixMicro(us), Jobs: map[string]int64{}}
	for _, kv := range parts[2:] {
		id, n, ok := strings.Cut(kv, ":")
		last, err := strconv.ParseInt(n, 10, 64)
		if !ok || err != nil || last < 1 || !postgres.ValidID(id) {
			return Position{}, fmt.Errorf("cursor entry %q: want <job id>:<event id>", kv)
		}
		if _, dup := p.Jobs[id]; dup {
			return Position{}, fmt.Errorf("cursor names job %s twice", id)
		}
		p.Jobs[id] = last
	}
	return p, nil
}

// FeedLog reads the event log for the all-jobs stream; *postgres.Store implements it.
type FeedLog interface {
	Log
	// EventsAfter returns the events of owner's jobs (every job for "") with a time
	// after after, except those of a job in seen up to its id there, oldest first, at
	// most limit.
	EventsAfter(ctx context.Context, owner string, after time.Time, seen map[string]int64, limit int) ([]job.Event, error)
	// DBNow is the database clock, the time base of event times.
	DBNow(ctx context.Context) (time.Time, error)
}

// Feed turns a subscription to all of an owner's jobs into an exactly-once stream that
// can be resumed from its Position. Subscribe first, then Start or Resume and Replay,
// then Accept live events: what both deliver is de-duplicated.
type Feed struct {
	log    FeedLog
	owner  string
	max    int
	cur    *Cursor
	after  time.Time
	lastAt map[string]time.Time // time of the last event delivered per job in cur
}

// NewFeed returns a feed of owner's jobs ("" for all) that replays at most maxReplay
// events.
func NewFeed(log FeedLog, owner string, maxReplay int) *Feed {
	return &Feed{log: log, owner: owner, max: maxReplay, cur: NewCursor(log), lastAt: map[string]time.Time{}}
}

// Start begins a fresh stream at the database's now.
func (f *Feed) Start(ctx context.Context) error {
	now, err := f.log.DBNow(ctx)
	if err != nil {
		return fmt.Errorf("read database clock: %w", err)
	}
	f.Resume(Position{After: now})
	return nil
}

// Resume positions the feed at p; call Replay next.
func (f *Feed) Resume(p Position) {
	f.after = p.After
	f.cur = NewCursor(f.log)
	f.lastAt = map[string]time.Time{}
	for id, last := range p.Jobs {
		f.cur.Start(id, last)
		// The mark trails the newest delivered event by ResumeWindow, so this bounds
		// the time of the job's last delivered event: prune it once the mark passes.
		f.lastAt[id] = p.After.Add(ResumeWindow)
	}
}

// Position is where the stream stands: what the client passes back to resume.
func (f *Feed) Position() Position {
	return Position{After: f.after, Jobs: maps.Clone(f.cur.last)}
}

// Emit receives each event with the position just after it.
type Emit func(e job.Event, pos Position) error

// Replay delivers the events after the position that were not delivered yet: after
// Resume, and again whenever the subscription reports a gap. With more than the
// replay limit to deliver it delivers nothing and returns ErrTooFarBehind.
func (f *Feed) Replay(ctx context.Context, emit Emit) error {
	evs, err := f.log.EventsAfter(ctx, f.owner, f.after, f.cur.last, f.max+1)
	if err != nil {
		return fmt.Errorf("replay events: %w", err)
	}
	if len(evs) > f.max {
		return ErrTooFarBehind
	}
	for _, e := range evs {
		if err := f.deliver(ctx, e, emit); err != nil {
			return err
		}
	}
	return nil
}

// Accept delivers a live event: duplicates are dropped, a job's gap is read from its
// log, and an event of a job without an entry is new exactly when it is after the mark.
func (f *Feed) Accept(ctx context.Context, e job.Event, emit Emit) error {
	if _, ok := f.cur.last[e.JobID]; !ok && !e.At.After(f.after) {
		return nil
	}
	return f.deliver(ctx, e, emit)
}

func (f *Feed) deliver(ctx context.Context, e job.Event, emit Emit) error {
	note := func(e job.Event) error {
		f.cur.last[e.JobID] = e.ID
		if e.At.After(f.lastAt[e.JobID]) {
			f.lastAt[e.JobID] = e.At
		}
		if mark := e.At.Add(-ResumeWindow); mark.After(f.after) {
			f.after = mark
			f.prune()
		}
		return emit(e, f.Position())
	}
	if _, ok := f.cur.last[e.JobID]; !ok {
		return note(e)
	}
	return f.cur.Accept(ctx, e, note)
}

// prune drops the entries of jobs whose last delivered event is at or before the mark.
func (f *Feed) prune() {
	for id, at := range f.lastAt {
		if !at.After(f.after) {
			delete(f.lastAt, id)
			delete(f.cur.last, id)
		}
	}
}
