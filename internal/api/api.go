// Package api is the gateway's HTTP surface: one chi route table, handlers, the auth
// middleware seam, streaming, and the single mapping from error codes to HTTP status.
package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/jobsvc"
	"github.com/ftgate/ftgate/internal/metrics"
)

// Authenticator turns a request's bearer token into an Identity. It returns a
// *job.Error with code EUnauthorized (bad or missing token) or EForbidden (valid token
// that maps to no allowed account).
type Authenticator interface {
	Authenticate(r *http.Request) (job.Identity, error)
}

// AuthConfig is what clients need to log in, served by GET /api/auth/config.
type AuthConfig = client.AuthConfig

// Server holds the dependencies of the handlers.
type Server struct {
	Log        *slog.Logger
	Version    string
	Auth       Authenticator
	AuthConfig AuthConfig
	Store      Store
	Clusters   []*Cluster
	Metrics    *metrics.Metrics
	// MetricsToken, when set, is the bearer token /metrics requires; MetricsSeparate
	// serves /metrics only through MetricsHandler (its own listener).
	MetricsToken    string
	MetricsSeparate bool
	// MaxBody caps request bodies (413 above it).
	MaxBody int64
	// Limits are the per-user limits with their group and user overrides (429 above
	// them; a zero value limits nothing).
	Limits config.Limits
	// MaxStreamsPerUser and MaxStreams cap open streams (SSE, WebSocket, followed
	// logs) per user and in all: 429 above them; 0 means no cap.
	MaxStreamsPerUser int
	MaxStreams        int
	// Submitter is this replica's submitter (nil: none runs in this process).
	Submitter jobsvc.Submitter
	// Streams serves event streams (see stream.go); a zero value answers 503.
	Streams Streams
	// Webhooks serves the webhook routes (webhooks.go); a zero value answers 503.
	Webhooks Webhooks
	// Web serves what no API route matches outside /api/ (the dashboard, internal/web).
	Web http.Handler
	// Templates stores job templates; nil answers the template routes with 503.
	Templates Templates

	readyCache readyCache
	slots      streamSlots
	logs       logShare
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

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, client.ErrorBody{Error: client.ErrorDetail{Code: code, Message: msg}})
}

// load returns the caller's job, answering 404 for other users' jobs (admins see all).
func (s *Server) load(r *http.Request) (job.Job, job.Identity, error) {
	id, _ := IdentityFrom(r.Context())
	j, err := s.visibleJob(r.Context(), id, chi.URLParam(r, "job_id"))
	return j, id, err
}

// visibleJob returns job jobID when id may see it: its owner or an admin; anyone
// else gets the 404 of a missing job.
func (s *Server) visibleJob(ctx context.Context, id job.Identity, jobID string) (job.Job, error) {
	j, err := s.Store.Get(ctx, jobID)
	if err != nil {
		return j, err
	}
	if !id.Admin && j.OwnerSubject != id.Subject {
		return job.Job{}, job.Errorf(job.ENotFound, "job %s not found", jobID)
	}
	return j, nil
}

func callerName(r *http.Request) string {
	id, _ := IdentityFrom(r.Context())
	if id.Username != "" {
		return id.Username
	}
	return id.Subject
}
