package api

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/job"
)

// readyTTL is how long /ready answers from its last check: the endpoint is public,
// so a flood of requests costs at most one database ping and one scontrol ping per
// cluster every readyTTL.
const readyTTL = 5 * time.Second

// readyCache holds the last readiness check; one check runs at a time.
type readyCache struct {
	mu    sync.Mutex
	at    time.Time
	ready bool
}

// ready is GET /ready: 200 {"status":"ready"} or 503 {"status":"not ready"}. What
// failed (which may name hosts and accounts) goes to the log only.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	c := &s.readyCache
	c.mu.Lock()
	if c.at.IsZero() || time.Since(c.at) >= readyTTL {
		c.ready = s.checkReady(r.Context())
		c.at = time.Now()
	}
	ok := c.ready
	c.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusServiceUnavailable, client.Ready{Status: "not ready",
			Error: &client.ErrorDetail{Code: job.EUnavailable, Message: "not ready"}})
		return
	}
	writeJSON(w, http.StatusOK, client.Ready{Status: "ready"})
}

// checkReady pings Postgres and every cluster and logs what failed.
func (s *Server) checkReady(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var mu sync.Mutex
	failed := map[string]string{}
	fail := func(what, why string) {
		mu.Lock()
		defer mu.Unlock()
		failed[what] = why
	}
	if s.Store == nil {
		fail("postgres", "not configured")
	} else if err := s.Store.Ping(ctx); err != nil {
		fail("postgres", err.Error())
	}
	var wg sync.WaitGroup
	for _, cl := range s.Clusters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if cl.Ping == nil {
				fail("cluster "+cl.Config.Name, "no probe configured (set clusters[].probe_user)")
			} else if err := cl.Ping(ctx); err != nil {
				fail("cluster "+cl.Config.Name, err.Error())
			}
		}()
	}
	wg.Wait()
	if len(failed) == 0 {
		return true
	}
	var names []string
	for k := range failed {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		s.logger().Warn("not ready", "check", k, "err", failed[k])
	}
	s.logger().Warn("readiness check failed", "failed", strings.Join(names, ", "))
	return false
}
