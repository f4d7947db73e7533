package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/coder/websocket"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/event"
	"github.com/ftgate/ftgate/internal/job"
)

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
	j, after, follow, err := s.openJobStream(r, "since")
	if err != nil {
		s.Error(w, r, err)
		return
	}
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
