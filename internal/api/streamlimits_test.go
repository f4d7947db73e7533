package api

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/event"
	"github.com/ftgate/ftgate/internal/job"
)

// openSSE opens a stream as user and returns the response (headers read).
func openStream(t *testing.T, ctx context.Context, url, user string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp
}

// TestStreamCaps: a user above MaxStreamsPerUser, or anyone above MaxStreams, gets
// 429 with a message; closing a stream frees its slot.
func TestStreamCaps(t *testing.T) {
	t.Parallel()
	j := job.Job{ID: "00000000-0000-4000-8000-000000000001", OwnerSubject: "sub-alice", User: "alice"}
	srv := &Server{Auth: tokenAuth{}, Store: oneJobStore{j: j}, MaxStreamsPerUser: 2, MaxStreams: 3,
		Streams: Streams{Hub: event.NewLocal(event.Config{}), Events: memEvents{}}}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	jobURL, allURL := hs.URL+"/api/training/"+j.ID+"/events", hs.URL+"/api/events"

	a1ctx, closeA1 := context.WithCancel(ctx)
	for i, rq := range []struct {
		ctx        context.Context
		url, user  string
		want       int
		msgContain string
	}{
		{a1ctx, jobURL, "alice", 200, ""},
		{ctx, allURL, "alice", 200, ""},
		{ctx, jobURL, "alice", 429, "the limit is 2"},
		{ctx, allURL, "bob", 200, ""},
		{ctx, allURL, "bob", 429, "its limit"},
	} {
		resp := openStream(t, rq.ctx, rq.url, rq.user)
		if resp.StatusCode != rq.want {
			t.Fatalf("request %d (%s): %d, want %d", i, rq.user, resp.StatusCode, rq.want)
		}
		if rq.want == 429 {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(b), `"code":"too_many"`) || !strings.Contains(string(b), rq.msgContain) {
				t.Errorf("request %d: %s", i, b)
			}
		}
	}
	closeA1()
	deadline := time.Now().Add(3 * time.Second)
	for {
		resp := openStream(t, ctx, jobURL, "alice")
		if resp.StatusCode == 200 {
			break
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatalf("closing a stream did not free its slot: %d", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStreamOutlivesReadTimeout: the gateway's server sets ReadTimeout (cmd/gateway);
// it bounds reading a request, not the life of a stream (net/http clears the read
// deadline once the request is read; a stream must not add one of its own).
func TestStreamOutlivesReadTimeout(t *testing.T) {
	t.Parallel()
	j := job.Job{ID: "00000000-0000-4000-8000-000000000001", OwnerSubject: "sub-alice", User: "alice"}
	srv := &Server{Auth: tokenAuth{}, Store: oneJobStore{j: j},
		Streams: Streams{Hub: event.NewLocal(event.Config{}), Events: memEvents{}, Heartbeat: 50 * time.Millisecond}}
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.Config.ReadTimeout = 200 * time.Millisecond
	hs.Start()
	t.Cleanup(hs.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp := openStream(t, ctx, hs.URL+"/api/training/"+j.ID+"/events", "alice")
	defer resp.Body.Close()
	start := time.Now()
	sc := bufio.NewScanner(resp.Body)
	pings := 0
	for time.Since(start) < time.Second && sc.Scan() {
		if sc.Text() == ": ping" {
			pings++
		}
	}
	if elapsed := time.Since(start); elapsed < time.Second {
		t.Fatalf("stream ended after %v (ReadTimeout 200ms): %v", elapsed, sc.Err())
	}
	if pings < 10 {
		t.Errorf("%d heartbeats in 1s, want about 20", pings)
	}
}
