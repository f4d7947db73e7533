package client

import (
	"bufio"
	"io"
	"strings"
)

// SSEEvent is one server-sent event: Event is "state", "progress", "checkpoint",
// "log", "error" or "reset"; Data is its JSON (an Event, LogLines or ErrorDetail).
// ID is the stream's last event id, the value to resume from (Last-Event-ID).
//
// An event with an id field but no data (the all-jobs stream's cursor update) is
// passed on with empty Event and Data: per the SSE spec it dispatches nothing but
// still sets the last event id, so a caller that resumes must keep its ID.
type SSEEvent struct {
	ID    string
	Event string
	Data  string
}

// ReadSSE parses a text/event-stream and calls emit for each event, id-only events
// included (see SSEEvent); it returns the reader's error (io.EOF when the stream
// ended cleanly) or emit's.
func ReadSSE(r io.Reader, emit func(SSEEvent) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var ev SSEEvent
	var data []string
	hasData, hasID := false, false
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			var err error
			switch {
			case hasData:
				ev.Data = strings.Join(data, "\n")
				err = emit(ev)
			case hasID:
				err = emit(SSEEvent{ID: ev.ID})
			}
			if err != nil {
				return err
			}
			ev, data, hasData, hasID = SSEEvent{ID: ev.ID}, nil, false, false
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			if !strings.Contains(value, "\x00") {
				ev.ID, hasID = value, true
			}
		case "event":
			ev.Event = value
		case "data":
			data = append(data, value)
			hasData = true
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.EOF
}
