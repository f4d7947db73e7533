package client

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

func TestListOptionsQuery(t *testing.T) {
	t.Parallel()
	q := ListOptions{States: []State{"queued", "running"}, Model: "m", Limit: 5, Cursor: "c"}.Query()
	if got := q.Encode(); got != "cursor=c&limit=5&model=m&status=queued%2Crunning" {
		t.Errorf("query %s", got)
	}
	if got := (ListOptions{}).Query().Encode(); got != "" {
		t.Errorf("empty options: %q", got)
	}
}

// TestErrorAnswer: a non-2xx answer is an *Error with the gateway's code and message.
func TestErrorAnswer(t *testing.T) {
	t.Parallel()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		io.WriteString(w, `{"error":{"code":"conflict","message":"job already succeeded"}}`)
	}))
	t.Cleanup(hs.Close)
	_, err := New(hs.URL, nil).Cancel(t.Context(), "j")
	var e *Error
	if !errors.As(err, &e) || e.Status != 409 || e.Code != "conflict" || e.Error() != "job already succeeded (HTTP 409)" || !IsStatus(err, 409) {
		t.Fatalf("%#v", err)
	}
}

func TestReadSSE(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, in string
		want     []string // ID|Event|Data of each emitted event
	}{
		{"fields, comments and multi-line data",
			"retry: 3000\n\n: ping\n\nid: 4\nevent: state\ndata: {\"a\":1}\n\nevent: log\ndata: l1\ndata: l2\n\n",
			[]string{`4|state|{"a":1}`, "4|log|l1\nl2"}},
		{"id-only event updates the last event id",
			"id: 7\nevent: state\ndata: {}\n\nid: c-9\n\n",
			[]string{"7|state|{}", "c-9||"}},
		{"id-only event then data: the data event carries the new id",
			"id: c-1\n\nevent: progress\ndata: x\n\n",
			[]string{"c-1||", "c-1|progress|x"}},
		{"id with an event name but no data dispatches only the id",
			"id: 5\nevent: state\n\n",
			[]string{"5||"}},
		{"empty id resets the last event id",
			"id: 3\ndata: a\n\nid\n\ndata: b\n\n",
			[]string{"3||a", "||", "||b"}},
		{"id with NUL is ignored",
			"id: 2\ndata: a\n\nid: 9\x00\ndata: b\n\n",
			[]string{"2||a", "2||b"}},
		{"block without id or data emits nothing",
			"event: state\n\nretry: 10\n\n: comment\n\n",
			nil},
		{"unterminated event is not emitted",
			"id: 8\ndata: partial\n",
			nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			err := ReadSSE(strings.NewReader(tt.in), func(e SSEEvent) error {
				got = append(got, e.ID+"|"+e.Event+"|"+e.Data)
				return nil
			})
			if err != io.EOF || !slices.Equal(got, tt.want) {
				t.Fatalf("ReadSSE(%q) = %q, %v; want %q, EOF", tt.in, got, err, tt.want)
			}
		})
	}
}
