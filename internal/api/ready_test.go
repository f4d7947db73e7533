package api

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ftgate/ftgate/internal/config"
)

// TestReadyCachedStatusOnly: /ready pings once per readyTTL however often it is asked,
// answers with the status and the failed checks' names only (the failed cluster, not
// the healthy one; no error text), and logs what failed.
func TestReadyCachedStatusOnly(t *testing.T) {
	t.Parallel()
	var pings atomic.Int32
	var logs bytes.Buffer
	srv := &Server{Store: newMemStore(), Log: slog.New(slog.NewTextHandler(&logs, nil)), Clusters: []*Cluster{{
		Config: config.Cluster{Name: "dev"},
		Ping:   func(context.Context) error { return nil },
	}, {
		Config: config.Cluster{Name: "dev2"},
		Ping: func(context.Context) error {
			pings.Add(1)
			return errors.New("ssh: dial login.internal.example:22 as svc-ftgate: connection refused")
		},
	}}}
	h := srv.Handler()
	for range 20 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/ready", nil))
		if rec.Code != 503 || rec.Body.String() != `{"status":"not ready","failed":["cluster dev2"],"error":{"code":"unavailable","message":"not ready: cluster dev2"}}`+"\n" {
			t.Fatalf("ready: %d %s", rec.Code, rec.Body)
		}
	}
	if n := pings.Load(); n != 1 {
		t.Errorf("20 requests within the cache time pinged the cluster %d times, want 1", n)
	}
	if !strings.Contains(logs.String(), "login.internal.example") || !strings.Contains(logs.String(), "cluster dev2") {
		t.Errorf("log lacks the failed check's detail: %s", logs.String())
	}
	srv.readyCache.at = srv.readyCache.at.Add(-readyTTL)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/ready", nil))
	if n := pings.Load(); n != 2 {
		t.Errorf("after the cache time: %d pings, want 2", n)
	}
}
