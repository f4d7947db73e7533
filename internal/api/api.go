// Package api is the gateway's HTTP surface: one chi route table, handlers, the auth
// middleware seam, streaming, and the single mapping from error codes to HTTP status.
package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/metrics"
	"github.com/ftgate/ftgate/internal/version"
)

// Authenticator turns a request's bearer token into an Identity. It returns a
// *job.Error with code EUnauthorized (bad or missing token) or EForbidden (valid token
// that maps to no allowed account).
type Authenticator interface {
	Authenticate(r *http.Request) (job.Identity, error)
}

// AuthConfig is what clients need to log in, served by GET /api/auth/config.
type AuthConfig struct {
	Issuer   string   `json:"issuer"`
	ClientID string   `json:"client_id"`
	Scopes   []string `json:"scopes"`
	Audience string   `json:"audience"`
	// MinClientVersion is the oldest ftctl this gateway works with (ftctl warns when older).
	MinClientVersion string `json:"min_client_version,omitempty"`
}

// Server holds the dependencies of the handlers.
type Server struct {
	Log        *slog.Logger
	Version    string
	Auth       Authenticator
	AuthConfig AuthConfig
	Store      Store
	Clusters   []*Cluster
	Metrics    *metrics.Metrics
	// MaxBody caps request bodies (413 above it); MaxActivePerUser is the queue quota
	// (429 above it; 0 means no limit).
	MaxBody          int64
	MaxActivePerUser int
	// Kick wakes the submitter after a job is queued for submission.
	Kick func()
	// Streams serves event streams (see stream.go); a zero value answers 503.
	Streams Streams
}

// Handler returns the route table.
func (s *Server) Handler() http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.RequestID, s.instrument, s.recoverer)
	r.Get("/health", s.health)
	r.Get("/ready", s.ready)
	r.Get("/metrics", s.metrics)
	r.Get("/api/auth/config", s.authConfig)
	r.Get("/api/openapi.json", s.openapi)
	r.Group(func(r chi.Router) {
		r.Use(s.authenticate)
		r.Get("/api/whoami", s.whoami)
		r.Post("/api/training/execute", s.execute)
		r.Get("/api/training/status/{job_id}", s.status)
		r.Post("/api/training/cancel/{job_id}", s.cancel)
		r.Post("/api/training/pause/{job_id}", s.pause)
		r.Post("/api/training/resume/{job_id}", s.resume)
		r.Get("/api/jobs", s.list)
		r.Get("/api/system/status", s.systemStatus)
		s.streamRoutes(r)
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such route: "+r.URL.Path)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed on "+r.URL.Path)
	})
	return r
}

type ctxKey struct{}

// authenticate rejects requests without a valid identity and stores it in the context.
// Without an Authenticator every request is refused: authentication fails closed.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Auth == nil {
			s.Error(w, r, job.Errorf(job.EUnauthorized, "authentication is not configured"))
			return
		}
		id, err := s.Auth.Authenticate(r)
		if err != nil {
			s.Error(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, id)))
	})
}

// IdentityFrom returns the caller's identity stored by the auth middleware.
func IdentityFrom(ctx context.Context) (job.Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(job.Identity)
	return id, ok
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": s.Version, "commit": version.Commit})
}

func (s *Server) authConfig(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.AuthConfig)
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request) {
	id, _ := IdentityFrom(r.Context())
	writeJSON(w, http.StatusOK, map[string]any{"subject": id.Subject, "username": id.Username, "admin": id.Admin, "groups": id.Groups})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	var b errorBody
	b.Error.Code, b.Error.Message = code, msg
	writeJSON(w, status, b)
}
