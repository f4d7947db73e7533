package api

import (
	"context"
	"crypto/subtle"
	_ "embed"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/version"
)

// health is GET /health: the process is up.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, client.Health{Status: "ok", Version: s.Version, Commit: version.Commit})
}

func (s *Server) authConfig(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.AuthConfig)
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request) {
	id, _ := IdentityFrom(r.Context())
	writeJSON(w, http.StatusOK, client.Whoami{Subject: id.Subject, Username: id.Username, Admin: id.Admin, Groups: id.Groups})
}

func (s *Server) systemStatus(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	counts, err := s.Store.CountByState(ctx)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	runs, err := s.Store.Runs(ctx)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	out := make([]client.ClusterStatus, len(s.Clusters))
	var wg sync.WaitGroup
	for i, cl := range s.Clusters {
		cs := client.ClusterStatus{Name: cl.Config.Name, Jobs: map[string]int{}, Partitions: []client.PartitionStatus{}}
		for _, st := range job.States {
			cs.Jobs[string(st)] = 0
		}
		for _, c := range counts {
			if c.Cluster == cl.Config.Name {
				cs.Jobs[string(c.State)] = c.N
			}
		}
		if run, ok := runs[cl.Config.Name]; ok {
			at := run.At
			lag := time.Since(at).Seconds()
			cs.ReconcilerLastRun, cs.ReconcilerLagSeconds, cs.ReconcilerError = &at, &lag, run.Error
		}
		// Degraded: the last reconciler pass failed (e.g. slurmctld down); progress
		// files are still read, states are not decided until Slurm answers again.
		cs.Degraded = cs.ReconcilerError != ""
		out[i] = cs
		if cl.Slurm == nil {
			out[i].CapacityError = "no Slurm client"
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			capa, err := cl.Slurm.CachedCapacity(ctx)
			if err != nil {
				out[i].CapacityError = job.ErrorMessage(err)
				if job.ErrorCode(err) == job.EUnavailable {
					out[i].Degraded = true
				}
				return
			}
			for _, p := range capa.Partitions {
				if !slices.Contains(cl.Config.Partitions, p.Name) {
					continue
				}
				out[i].Partitions = append(out[i].Partitions, client.PartitionStatus{Name: p.Name, State: p.State, GPUsTotal: p.GPUs,
					GPUsAllocated: p.GPUsAlloc, GPUsFree: p.GPUs - p.GPUsAlloc, MaxNodeGPUs: p.MaxNodeGPUs})
			}
		}()
	}
	wg.Wait()
	writeJSON(w, http.StatusOK, client.SystemStatus{Version: s.Version, Time: time.Now().UTC(), Clusters: out})
}

// metrics is GET /metrics (Prometheus). With MetricsSeparate it is served only by
// MetricsHandler; with MetricsToken it needs that bearer token.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if s.Metrics == nil || s.MetricsSeparate {
		s.Error(w, r, job.Errorf(job.ENotFound, "metrics are not served here"))
		return
	}
	s.serveMetrics(w, r)
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if s.MetricsToken != "" {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(s.MetricsToken)) != 1 {
			s.Error(w, r, job.Errorf(job.EUnauthorized, "metrics: a valid bearer token is required"))
			return
		}
	}
	promhttp.HandlerFor(s.Metrics.Registry, promhttp.HandlerOpts{}).ServeHTTP(w, r)
}

// MetricsHandler serves /metrics alone, for a separate listener (metrics.listen).
func (s *Server) MetricsHandler() http.Handler {
	r := chi.NewRouter()
	r.Use(s.recoverer)
	r.Get("/metrics", func(w http.ResponseWriter, r *http.Request) {
		if s.Metrics == nil {
			s.Error(w, r, job.Errorf(job.ENotFound, "metrics are not enabled"))
			return
		}
		s.serveMetrics(w, r)
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such route: "+r.URL.Path)
	})
	return r
}

//go:embed openapi.json
var openapiDoc []byte

func (s *Server) openapi(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openapiDoc)
}

// readyTTL is how long /ready answers from its last check: the endpoint is public,
// so a flood of requests costs at most one database ping and one scontrol ping per
// cluster every readyTTL.
const readyTTL = 5 * time.Second

// readyCache holds the last readiness check; one check runs at a time.
type readyCache struct {
	mu     sync.Mutex
	at     time.Time
	failed []string // the failed checks' names; none: ready
}

// ready is GET /ready: 200 {"status":"ready"} or 503 {"status":"not ready"}. What
// failed (which may name hosts and accounts) goes to the log only.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	c := &s.readyCache
	c.mu.Lock()
	if c.at.IsZero() || time.Since(c.at) >= readyTTL {
		c.failed = s.checkReady(r.Context())
		c.at = time.Now()
	}
	failed := c.failed
	c.mu.Unlock()
	if len(failed) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, client.Ready{Status: "not ready", Failed: failed,
			Error: &client.ErrorDetail{Code: job.EUnavailable, Message: "not ready: " + strings.Join(failed, ", ")}})
		return
	}
	writeJSON(w, http.StatusOK, client.Ready{Status: "ready"})
}

// checkReady pings Postgres and every cluster, logs what failed and returns the failed
// checks' names ("postgres", "cluster NAME"), sorted; the errors stay in the log.
func (s *Server) checkReady(ctx context.Context) []string {
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
		return nil
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
	return names
}
