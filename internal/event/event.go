// Package event fans job events out to live subscribers on every gateway replica.
//
// The store appends each event to the job's log and queues a NOTIFY on
// postgres.Channel in the same transaction. A Hub holds one LISTEN connection per
// replica; for every notification that some subscriber wants, it reads that one event
// from the log (one query, whatever the number of subscribers) and offers it to each
// matching subscriber without blocking. A subscriber whose queue is full is dropped
// (Done is closed and Err says why), so a slow consumer never delays the others.
//
// Delivery is at most once per subscription and in order; consumers get exactly-once
// by remembering the last event id of each job and reading gaps from the log: when an
// event arrives whose id is beyond last+1, and after Gap fires (the LISTEN connection
// was lost and re-established, so notifications may have been missed).
package event

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/postgres"
)

// ErrSlow is the reason a subscriber that fell behind was dropped.
var ErrSlow = errors.New("slow consumer: too many undelivered events, stream closed; reconnect with the last event id")

// ErrClosed is the reason subscribers are dropped when the hub stops.
var ErrClosed = errors.New("event hub stopped")

// Log reads a job's event log; *postgres.Store implements it.
type Log interface {
	Events(ctx context.Context, jobID string, after int64, limit int) ([]job.Event, error)
}

// Note is the NOTIFY payload the store publishes.
type Note struct {
	JobID   string `json:"job_id"`
	EventID int64  `json:"event_id"`
	Owner   string `json:"owner"`
	User    string `json:"user"`
	Kind    string `json:"kind"`
	State   string `json:"state"`
}

// Message is one event offered to subscribers, with the job's owner.
type Message struct {
	Owner string
	User  string
	Event job.Event
}

// Filter selects what a subscriber receives.
type Filter struct {
	JobID string // one job; "" for every job
	Owner string // only jobs of this owner subject; "" for every owner (admins)
}

// Config tunes a Hub. Zero values take the documented defaults.
type Config struct {
	// Buffer is the queue length of each subscriber (default 256).
	Buffer int
	// Logger receives listener errors (default slog.Default()).
	Logger *slog.Logger
}

// Hub listens for job events and fans them out.
type Hub struct {
	cfg     Config
	log     Log
	connect func(ctx context.Context) (*pgx.Conn, error)

	// Subscribers indexed by what they want, so an event touches only its own:
	// byJob (one job's stream), byOwner (an owner's /api/events), admins (every job).
	mu      sync.Mutex
	byJob   map[string]map[*Sub]struct{}
	byOwner map[string]map[*Sub]struct{}
	admins  map[*Sub]struct{}
	closed  bool

	ready     chan struct{}
	readyOnce sync.Once

	notes, fetched, dropped, offered atomic.Int64
}

// New returns a hub that listens on a dedicated connection configured like pool's
// and reads events through log. Call Run to start it.
func New(pool *pgxpool.Pool, log Log, cfg Config) *Hub {
	cc := pool.Config().ConnConfig
	return newHub(log, cfg, func(ctx context.Context) (*pgx.Conn, error) {
		return pgx.ConnectConfig(ctx, cc.Copy())
	})
}

// NewLocal returns a hub without a database listener: only Publish feeds it. For
// tests and single-process tools.
func NewLocal(cfg Config) *Hub {
	return newHub(nil, cfg, nil)
}

func newHub(log Log, cfg Config, connect func(context.Context) (*pgx.Conn, error)) *Hub {
	if cfg.Buffer <= 0 {
		cfg.Buffer = 256
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Hub{cfg: cfg, log: log, connect: connect, byJob: map[string]map[*Sub]struct{}{},
		byOwner: map[string]map[*Sub]struct{}{}, admins: map[*Sub]struct{}{}, ready: make(chan struct{})}
}

// Ready is closed once the first LISTEN is in place.
func (h *Hub) Ready() <-chan struct{} { return h.ready }

// Stats are counters for metrics and benchmarks.
type Stats struct {
	Subscribers int
	Notes       int64 // notifications received
	Fetched     int64 // events read from the log for delivery
	Dropped     int64 // subscribers dropped as slow
	Offered     int64 // events offered to subscribers (one per matching subscriber)
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	n := len(h.admins)
	for _, m := range h.byJob {
		n += len(m)
	}
	for _, m := range h.byOwner {
		n += len(m)
	}
	h.mu.Unlock()
	return Stats{Subscribers: n, Notes: h.notes.Load(), Fetched: h.fetched.Load(), Dropped: h.dropped.Load(), Offered: h.offered.Load()}
}

// Run listens until ctx ends, reconnecting with backoff when the connection drops;
// after each reconnect every subscriber's Gap fires. When ctx ends all subscribers
// are dropped with ErrClosed.
func (h *Hub) Run(ctx context.Context) error {
	defer h.shutdown()
	attempt := 0
	for {
		err := h.listen(ctx, attempt > 0)
		if ctx.Err() != nil {
			return nil
		}
		attempt++
		d := min(time.Duration(1<<min(attempt, 5))*100*time.Millisecond, 5*time.Second)
		d += rand.N(d / 2)
		h.cfg.Logger.Warn("event listener lost, reconnecting", "err", err, "in", d)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d):
		}
	}
}

func (h *Hub) listen(ctx context.Context, reconnect bool) error {
	conn, err := h.connect(ctx)
	if err != nil {
		return fmt.Errorf("connect listener: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{postgres.Channel}.Sanitize()); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	h.readyOnce.Do(func() { close(h.ready) })
	if reconnect {
		h.signalGap()
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("wait for notification: %w", err)
		}
		h.notes.Add(1)
		var note Note
		if err := json.Unmarshal([]byte(n.Payload), &note); err != nil || note.JobID == "" {
			h.cfg.Logger.Warn("ignoring malformed event notification", "payload", n.Payload)
			continue
		}
		h.handle(ctx, note)
	}
}

// handle reads the notified event once and offers it to the subscribers that want it.
func (h *Hub) handle(ctx context.Context, note Note) {
	if !h.wanted(note) {
		return
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	evs, err := h.log.Events(fctx, note.JobID, note.EventID-1, 1)
	cancel()
	if err != nil || len(evs) == 0 || evs[0].ID != note.EventID {
		// Another schema's job on the same database, or a read error: subscribers
		// that need this event see the gap at the next one and read the log.
		if err != nil && job.ErrorCode(err) != job.ENotFound {
			h.cfg.Logger.Warn("read notified event", "job", note.JobID, "event", note.EventID, "err", err)
		}
		return
	}
	h.fetched.Add(1)
	h.Publish(Message{Owner: note.Owner, User: note.User, Event: evs[0]})
}

func (h *Hub) wanted(n Note) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.byJob[n.JobID]) > 0 || len(h.admins) > 0 || len(h.byOwner[n.Owner]) > 0
}

// Publish offers m to every matching subscriber without blocking; subscribers whose
// queue is full are dropped with ErrSlow. Only the subscribers that want m are
// visited (the job's, its owner's and the admins'), whatever the number of others.
// The listener calls it; tests may too.
func (h *Hub) Publish(m Message) {
	var slow []*Sub
	n := 0
	offer := func(subs map[*Sub]struct{}) {
		for s := range subs {
			n++
			select {
			case s.ch <- m:
			default:
				slow = append(slow, s)
			}
		}
	}
	h.mu.Lock()
	offer(h.byJob[m.Event.JobID])
	if m.Owner != "" {
		offer(h.byOwner[m.Owner])
	}
	offer(h.admins)
	h.mu.Unlock()
	h.offered.Add(int64(n))
	for _, s := range slow {
		h.dropped.Add(1)
		s.drop(ErrSlow)
	}
}

func (h *Hub) signalGap() {
	h.mu.Lock()
	defer h.mu.Unlock()
	sig := func(s *Sub) {
		select {
		case s.gap <- struct{}{}:
		default:
		}
	}
	for _, m := range h.byJob {
		for s := range m {
			sig(s)
		}
	}
	for _, m := range h.byOwner {
		for s := range m {
			sig(s)
		}
	}
	for s := range h.admins {
		sig(s)
	}
}

func (h *Hub) shutdown() {
	h.mu.Lock()
	h.closed = true
	var subs []*Sub
	for _, m := range h.byJob {
		for s := range m {
			subs = append(subs, s)
		}
	}
	for _, m := range h.byOwner {
		for s := range m {
			subs = append(subs, s)
		}
	}
	for s := range h.admins {
		subs = append(subs, s)
	}
	h.mu.Unlock()
	for _, s := range subs {
		s.drop(ErrClosed)
	}
}

// Subscribe registers a subscriber. Subscribe before reading the backlog from the
// log, so that nothing falls between the two; then skip ids already seen.
func (h *Hub) Subscribe(f Filter) *Sub {
	s := &Sub{h: h, filter: f, ch: make(chan Message, h.cfg.Buffer), gap: make(chan struct{}, 1), done: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		s.err = ErrClosed
		close(s.done)
		return s
	}
	switch {
	case f.JobID != "":
		addTo(h.byJob, f.JobID, s)
	case f.Owner != "":
		addTo(h.byOwner, f.Owner, s)
	default:
		h.admins[s] = struct{}{}
	}
	return s
}

func addTo(idx map[string]map[*Sub]struct{}, key string, s *Sub) {
	m := idx[key]
	if m == nil {
		m = map[*Sub]struct{}{}
		idx[key] = m
	}
	m[s] = struct{}{}
}

func removeFrom(idx map[string]map[*Sub]struct{}, key string, s *Sub) {
	if m := idx[key]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(idx, key)
		}
	}
}

func (h *Hub) remove(s *Sub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case s.filter.JobID != "":
		removeFrom(h.byJob, s.filter.JobID, s)
	case s.filter.Owner != "":
		removeFrom(h.byOwner, s.filter.Owner, s)
	default:
		delete(h.admins, s)
	}
}

// Sub is one subscription.
type Sub struct {
	h      *Hub
	filter Filter
	ch     chan Message
	gap    chan struct{}
	done   chan struct{}
	once   sync.Once
	err    error
}

// C delivers the events, in order per job.
func (s *Sub) C() <-chan Message { return s.ch }

// Gap fires after the hub re-established its LISTEN connection: events may have been
// missed, so read the log from the last id seen.
func (s *Sub) Gap() <-chan struct{} { return s.gap }

// Done is closed when the hub dropped the subscription (see Err).
func (s *Sub) Done() <-chan struct{} { return s.done }

// Err is why the subscription was dropped (ErrSlow, ErrClosed), or nil.
func (s *Sub) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Close unsubscribes.
func (s *Sub) Close() { s.drop(nil) }

func (s *Sub) drop(err error) {
	s.once.Do(func() {
		s.h.remove(s)
		s.err = err
		close(s.done)
	})
}
