package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/artifact"
	"github.com/ftgate/ftgate/internal/event"
	"github.com/ftgate/ftgate/internal/job"
)

const (
	defaultHeartbeat = 15 * time.Second
	// streamWriteTimeout bounds one write to a streaming client: a client that does
	// not read for this long is disconnected.
	streamWriteTimeout = 10 * time.Second
	// logPoll is how often streams and followed logs look for new log output.
	logPoll = time.Second
	// maxLogChunk caps the log bytes read per poll.
	maxLogChunk = 256 << 10
)

// Streams are the dependencies of the event streams.
type Streams struct {
	// Hub fans job events out (event.New on the database pool, running).
	Hub *event.Hub
	// Events reads a job's event log; *postgres.Store implements it.
	Events event.Log
	// Heartbeat is the keep-alive interval of streams (0: 15s).
	Heartbeat time.Duration
}

func (s *Server) heartbeat() time.Duration {
	if s.Streams.Heartbeat > 0 {
		return s.Streams.Heartbeat
	}
	return defaultHeartbeat
}

func toWire(e job.Event) client.Event {
	w := client.Event{JobID: e.JobID, ID: e.ID, Kind: e.Kind, State: e.State, At: e.At}
	if len(e.Data) > 0 && json.Valid(e.Data) {
		w.Data = e.Data
	}
	return w
}

// sink is one streaming transport (SSE or WebSocket).
type sink interface {
	event(e job.Event) error
	log(l client.LogLines) error
	ping() error
	// fail tells the client why the stream ends (e.g. slow consumer).
	fail(code, msg string)
}

// openJobStream checks what a per-job stream (SSE or WebSocket) needs before it starts:
// the caller's job, the event id to resume after (from the first of idParams given),
// with ?logs=1 a follower of the job's log, and a stream slot. The caller runs
// release when the stream ends.
func (s *Server) openJobStream(r *http.Request, idParams ...string) (j job.Job, after int64, follow *logFollower, release func(), err error) {
	j, id, err := s.load(r)
	if err != nil {
		return j, 0, nil, nil, err
	}
	if after, err = parseEventID(r, idParams...); err != nil {
		return j, 0, nil, nil, err
	}
	if err := s.streamReady(); err != nil {
		return j, 0, nil, nil, err
	}
	if wantFlag(r, "logs") {
		if follow, err = s.logFollower(r, j, id); err != nil {
			return j, 0, nil, nil, err
		}
	}
	slot, err := s.acquireStream(r)
	if err != nil {
		if follow != nil {
			follow.release()
		}
		return j, 0, nil, nil, err
	}
	release = slot
	if follow != nil {
		release = func() { slot(); follow.release() }
	}
	return j, after, follow, release, nil
}

// streamSlots counts the open streams (SSE, WebSocket, followed logs) per user and in
// all, for the MaxStreamsPerUser and MaxStreams caps.
type streamSlots struct {
	mu     sync.Mutex
	byUser map[string]int
	total  int
}

// acquireStream takes a stream slot for the caller, or answers ETooMany (429) above a
// cap. The returned release frees it (once).
func (s *Server) acquireStream(r *http.Request) (func(), error) {
	id, _ := IdentityFrom(r.Context())
	sl := &s.slots
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if s.MaxStreams > 0 && sl.total >= s.MaxStreams {
		return nil, job.Errorf(job.ETooMany, "the gateway has %d open streams, its limit; retry later", sl.total)
	}
	if n := sl.byUser[id.Subject]; s.MaxStreamsPerUser > 0 && n >= s.MaxStreamsPerUser {
		return nil, job.Errorf(job.ETooMany, "you have %d open streams (event streams, WebSockets, followed logs), the limit is %d; close one first", n, s.MaxStreamsPerUser)
	}
	if sl.byUser == nil {
		sl.byUser = map[string]int{}
	}
	sl.byUser[id.Subject]++
	sl.total++
	var once sync.Once
	return func() {
		once.Do(func() {
			sl.mu.Lock()
			defer sl.mu.Unlock()
			sl.total--
			if sl.byUser[id.Subject]--; sl.byUser[id.Subject] <= 0 {
				delete(sl.byUser, id.Subject)
			}
		})
	}, nil
}

// parseEventID reads a resume position: the Last-Event-ID header, else the named
// query parameters.
func parseEventID(r *http.Request, params ...string) (int64, error) {
	name, v := "Last-Event-ID", r.Header.Get("Last-Event-ID")
	for _, p := range params {
		if v != "" {
			break
		}
		name, v = p, r.URL.Query().Get(p)
	}
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		return 0, job.Errorf(job.EInvalid, "%s: want a non-negative event id, got %q", name, truncate(v, 40))
	}
	return n, nil
}

func (s *Server) streamReady() error {
	if s.Streams.Hub == nil || s.Streams.Events == nil {
		return job.Errorf(job.EUnavailable, "event streaming is not configured on this gateway")
	}
	return nil
}

// logFollower turns a job's shared log into batches of lines for a stream that
// asked for logs.
type logFollower struct {
	cur     logCursor
	release func()
	rest    []byte
}

func (f *logFollower) poll(ctx context.Context, emit func(client.LogLines) error) error {
	file, data, reset, err := f.cur.next(ctx)
	if reset {
		f.rest = nil
	}
	if len(data) == 0 {
		return err
	}
	lines, rest := artifact.LogLines(append(f.rest, data...))
	f.rest = append([]byte(nil), rest...)
	if len(f.rest) > maxLogChunk { // a giant line: flush it as is
		lines, f.rest = append(lines, string(f.rest)), nil
	}
	if len(lines) == 0 {
		return nil
	}
	return emit(client.LogLines{File: file, Offset: f.cur.offset - int64(len(f.rest)), Lines: lines})
}

// pump delivers events (exactly once, in order per job), heartbeats and, when
// follow is set, log lines until the client leaves or the subscription is dropped.
func (s *Server) pump(ctx context.Context, sub *event.Sub, cur *event.Cursor, jobID string, out sink, follow *logFollower) {
	hb := time.NewTicker(s.heartbeat())
	defer hb.Stop()
	var logTick <-chan time.Time
	if follow != nil {
		t := time.NewTicker(logPoll)
		defer t.Stop()
		logTick = t.C
		if err := follow.poll(ctx, out.log); err != nil {
			return
		}
	}
	for {
		var err error
		select {
		case <-ctx.Done():
			return
		case <-sub.Done():
			if errors.Is(sub.Err(), event.ErrSlow) {
				out.fail("slow_consumer", sub.Err().Error())
			} else {
				out.fail("unavailable", "event stream closed by the gateway; reconnect with the last event id")
			}
			return
		case <-sub.Gap():
			if jobID != "" {
				err = cur.Backfill(ctx, jobID, out.event)
			} else {
				err = cur.BackfillAll(ctx, out.event)
			}
		case m := <-sub.C():
			err = cur.Accept(ctx, m.Event, out.event)
		case <-hb.C:
			err = out.ping()
		case <-logTick:
			err = follow.poll(ctx, out.log)
		}
		if err != nil {
			if ctx.Err() == nil && !isWriteErr(err) {
				s.logger().Warn("event stream ended", "job", jobID, "err", err)
				out.fail(job.ErrorCode(err), job.ErrorMessage(err))
			}
			return
		}
	}
}

// writeErr marks errors from writing to the client.
type writeErr struct{ err error }

func (e writeErr) Error() string { return "write to client: " + e.err.Error() }

func (e writeErr) Unwrap() error { return e.err }

func isWriteErr(err error) bool {
	var we writeErr
	return errors.As(err, &we)
}

// sseSink writes Server-Sent Events.
type sseSink struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	ids bool // send id: lines (per-job streams)
}

func (o *sseSink) write(s string) error {
	_ = o.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	if _, err := fmt.Fprint(o.w, s); err != nil {
		return writeErr{err}
	}
	if err := o.rc.Flush(); err != nil {
		return writeErr{err}
	}
	return nil
}

func (o *sseSink) event(e job.Event) error {
	b, err := json.Marshal(toWire(e))
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	id := ""
	if o.ids {
		id = "id: " + strconv.FormatInt(e.ID, 10) + "\n"
	}
	return o.write(id + "event: " + sseName(e.Kind) + "\ndata: " + string(b) + "\n\n")
}

func (o *sseSink) log(l client.LogLines) error {
	b, _ := json.Marshal(l)
	return o.write("event: log\ndata: " + string(b) + "\n\n")
}

func (o *sseSink) ping() error { return o.write(": ping\n\n") }

func (o *sseSink) fail(code, msg string) {
	b, _ := json.Marshal(client.ErrorDetail{Code: code, Message: msg})
	_ = o.write("event: error\ndata: " + string(b) + "\n\n")
}

// sseName keeps event names to a safe alphabet.
func sseName(kind string) string {
	for _, c := range kind {
		if !(c >= 'a' && c <= 'z' || c == '_') {
			return "message"
		}
	}
	if kind == "" {
		return "message"
	}
	return kind
}

func startSSE(w http.ResponseWriter, ids bool) *sseSink {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	o := &sseSink{w: w, rc: http.NewResponseController(w), ids: ids}
	_ = o.write("retry: 3000\n\n")
	return o
}

// jobEvents is GET /api/training/{job_id}/events: the job's events as SSE, resumed
// after Last-Event-ID (or ?last_event_id=) from the event log; ?logs=1 adds log lines.
func (s *Server) jobEvents(w http.ResponseWriter, r *http.Request) {
	j, after, follow, release, err := s.openJobStream(r, "last_event_id", "since")
	if err != nil {
		s.Error(w, r, err)
		return
	}
	defer release()
	sub := s.Streams.Hub.Subscribe(event.Filter{JobID: j.ID})
	defer sub.Close()
	cur := event.NewCursor(s.Streams.Events)
	cur.Start(j.ID, after)
	out := startSSE(w, true)
	if err := cur.Backfill(r.Context(), j.ID, out.event); err != nil {
		if !isWriteErr(err) {
			out.fail(job.ErrorCode(err), job.ErrorMessage(err))
		}
		return
	}
	s.pump(r.Context(), sub, cur, j.ID, out, follow)
}

// allEvents is GET /api/events: live events of every job the caller may see (all
// jobs for admins). Each event carries its job id and per-job id; this stream starts
// now (use a job's own stream to resume it from its event log).
func (s *Server) allEvents(w http.ResponseWriter, r *http.Request) {
	id, _ := IdentityFrom(r.Context())
	if err := s.streamReady(); err != nil {
		s.Error(w, r, err)
		return
	}
	release, err := s.acquireStream(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	defer release()
	f := event.Filter{Owner: id.Subject}
	if id.Admin {
		f.Owner = ""
	}
	sub := s.Streams.Hub.Subscribe(f)
	defer sub.Close()
	out := startSSE(w, false)
	s.pump(r.Context(), sub, event.NewCursor(s.Streams.Events), "", out, nil)
}

// logFollower prepares log lines for a stream; ?log_offset= starts there, else at the
// current end.
func (s *Server) logFollower(r *http.Request, j job.Job, _ job.Identity) (*logFollower, error) {
	d, err := s.jobDir(j)
	if err != nil {
		return nil, err
	}
	off := int64(-1)
	if v := r.URL.Query().Get("log_offset"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, job.Errorf(job.EInvalid, "log_offset: want a non-negative byte offset, got %q", truncate(v, 40))
		}
		off = n
	}
	sl, release := s.logs.follow(j.ID, d, j.SlurmID)
	return &logFollower{cur: logCursor{sl: sl, offset: off}, release: release}, nil
}

// wsSink writes to a WebSocket.
type wsSink struct {
	ctx  context.Context
	conn *websocket.Conn
}

func (o *wsSink) send(m client.WSMessage) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode message: %w", err)
	}
	ctx, cancel := context.WithTimeout(o.ctx, streamWriteTimeout)
	defer cancel()
	if err := o.conn.Write(ctx, websocket.MessageText, b); err != nil {
		return writeErr{err}
	}
	return nil
}

func (o *wsSink) event(e job.Event) error {
	w := toWire(e)
	return o.send(client.WSMessage{Type: "event", Event: &w})
}

func (o *wsSink) log(l client.LogLines) error { return o.send(client.WSMessage{Type: "log", Log: &l}) }

func (o *wsSink) ping() error {
	ctx, cancel := context.WithTimeout(o.ctx, streamWriteTimeout)
	defer cancel()
	if err := o.conn.Ping(ctx); err != nil {
		return writeErr{err}
	}
	return nil
}

func (o *wsSink) fail(code, msg string) {
	_ = o.send(client.WSMessage{Type: "error", Error: &client.ErrorDetail{Code: code, Message: msg}})
	status := websocket.StatusInternalError
	switch code {
	case "slow_consumer", job.EUnavailable:
		status = websocket.StatusTryAgainLater
	}
	_ = o.conn.Close(status, truncate(code+": "+msg, 120))
}

// jobEventsWS is GET /api/training/{job_id}/ws: the job's events over a WebSocket,
// resumed after ?since=<event id> from the event log; ?logs=1 adds log lines. The
// server pings every heartbeat; a client that stops reading is dropped.
func (s *Server) jobEventsWS(w http.ResponseWriter, r *http.Request) {
	j, after, follow, release, err := s.openJobStream(r, "since")
	if err != nil {
		s.Error(w, r, err)
		return
	}
	defer release()
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept answered the client
	}
	defer conn.CloseNow()
	conn.SetReadLimit(4096)
	// The client sends nothing we need; CloseRead answers pings and notices a close.
	ctx := conn.CloseRead(r.Context())
	sub := s.Streams.Hub.Subscribe(event.Filter{JobID: j.ID})
	defer sub.Close()
	cur := event.NewCursor(s.Streams.Events)
	cur.Start(j.ID, after)
	out := &wsSink{ctx: ctx, conn: conn}
	if err := cur.Backfill(ctx, j.ID, out.event); err != nil {
		if !isWriteErr(err) {
			out.fail(job.ErrorCode(err), job.ErrorMessage(err))
		}
		return
	}
	s.pump(ctx, sub, cur, j.ID, out, follow)
	_ = conn.Close(websocket.StatusNormalClosure, "")
}
