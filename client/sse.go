package client

import (
	"bufio"
	"io"
	"strings"
)

// SSEEvent is one server-sent event: Event is "state", "progress", "checkpoint",
// "log" or "error"; Data is its JSON (an Event, LogLines or ErrorDetail).
type SSEEvent struct {
	ID    string
	Event string
	Data  string
}

// ReadSSE parses a text/event-stream and calls emit for each event; it returns the
// reader's error (io.EOF when the stream ended cleanly) or emit's.
func ReadSSE(r io.Reader, emit func(SSEEvent) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var ev SSEEvent
	var data []string
	hasData := false
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if hasData {
				ev.Data = strings.Join(data, "\n")
				if err := emit(ev); err != nil {
					return err
				}
			}
			ev, data, hasData = SSEEvent{ID: ev.ID}, nil, false
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
				ev.ID = value
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
