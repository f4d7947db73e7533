package client

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
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
	in := "retry: 3000\n\n: ping\n\nid: 4\nevent: state\ndata: {\"a\":1}\n\nevent: log\ndata: l1\ndata: l2\n\n"
	var got []string
	err := ReadSSE(strings.NewReader(in), func(e SSEEvent) error {
		got = append(got, e.ID+"|"+e.Event+"|"+e.Data)
		return nil
	})
	if err != io.EOF || strings.Join(got, ";") != `4|state|{"a":1};4|log|l1`+"\n"+`l2` {
		t.Fatalf("%v %q", err, got)
	}
}
