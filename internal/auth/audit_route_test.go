package auth_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/ftgate/ftgate/internal/auth"
	"github.com/ftgate/ftgate/internal/auth/authtest"
)

// auditLines decodes one JSON audit record per line.
func auditLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		recs = append(recs, m)
	}
	return recs
}

// TestAuditRoute: inside a router, the record names the matched route pattern (the
// path when nothing matched) and the job from the route's {job_id}, else its {id}
// parameter; a job set by the handler wins over both.
func TestAuditRoute(t *testing.T) {
	var buf bytes.Buffer
	a := auth.NewAudit(slog.New(slog.NewJSONHandler(&buf, nil)))
	r := chi.NewRouter()
	r.Use(a.Middleware)
	ok := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) }
	r.Post("/api/training/jobs/{job_id}/pause", ok)
	r.Delete("/api/hooks/{id}", ok)
	r.Post("/api/a/{job_id}/b/{id}", ok)
	r.Post("/api/set/{id}", func(w http.ResponseWriter, r *http.Request) {
		auth.SetAuditJob(r.Context(), "from-handler")
		w.WriteHeader(http.StatusAccepted)
	})
	for _, c := range []struct{ method, path, route, job string }{
		{http.MethodPost, "/api/training/jobs/j-7/pause", "/api/training/jobs/{job_id}/pause", "j-7"},
		{http.MethodDelete, "/api/hooks/h-9", "/api/hooks/{id}", "h-9"},
		{http.MethodPost, "/api/a/j-1/b/x-2", "/api/a/{job_id}/b/{id}", "j-1"},
		{http.MethodPost, "/api/set/x-3", "/api/set/{id}", "from-handler"},
		{http.MethodPost, "/api/nothing/here", "/api/nothing/here", ""},
	} {
		buf.Reset()
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(c.method, c.path, nil))
		recs := auditLines(t, &buf)
		if len(recs) != 1 {
			t.Fatalf("%s %s: %d audit records, want 1", c.method, c.path, len(recs))
		}
		if m := recs[0]; m["route"] != c.route || m["job"] != c.job || m["path"] != c.path {
			t.Errorf("%s %s: route %v job %v path %v; want route %s job %q", c.method, c.path, m["route"], m["job"], m["path"], c.route, c.job)
		}
	}
}

// TestAuditRouteSeenByAuthenticate: with the audit middleware around the router, the
// route and job come from the router's context that Authenticate saw (refused or not).
func TestAuditRouteSeenByAuthenticate(t *testing.T) {
	p := authtest.New(t)
	v := newVerifier(t, oidcConfig(p))
	var buf bytes.Buffer
	a := auth.NewAudit(slog.New(slog.NewJSONHandler(&buf, nil)))
	r := chi.NewRouter()
	r.Post("/api/training/jobs/{job_id}/cancel", func(w http.ResponseWriter, r *http.Request) {
		if _, err := v.Authenticate(r); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	h := a.Middleware(r)
	for _, tok := range []string{p.AccessToken(t, "sub-alice"), "garbage"} {
		buf.Reset()
		req := httptest.NewRequest(http.MethodPost, "/api/training/jobs/j-5/cancel", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		h.ServeHTTP(httptest.NewRecorder(), req)
		recs := auditLines(t, &buf)
		if len(recs) != 1 {
			t.Fatalf("%d audit records, want 1", len(recs))
		}
		if m := recs[0]; m["route"] != "/api/training/jobs/{job_id}/cancel" || m["job"] != "j-5" {
			t.Errorf("token %.8s...: route %v job %v; want the route pattern and j-5", tok, m["route"], m["job"])
		}
	}
}
