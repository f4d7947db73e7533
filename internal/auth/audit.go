package auth

import (
	"cmp"
	"context"
	"log/slog"
	"net/http"
	"path"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/ftgate/ftgate/internal/job"
)

// Audit writes one structured record per state-changing request (POST, PUT, PATCH,
// DELETE): who (subject, Unix account, admin), what (method, route), which job, and the
// result (HTTP status, and the refusal reason when authentication failed).
type Audit struct {
	log *slog.Logger
}

// NewAudit returns an Audit writing to log (slog.Default() when nil) under the
// message "audit".
func NewAudit(log *slog.Logger) *Audit {
	if log == nil {
		log = slog.Default()
	}
	return &Audit{log: log}
}

type auditKey struct{}

type auditEntry struct {
	mu     sync.Mutex
	id     job.Identity
	authed bool
	reason string
	jobID  string
	route  *chi.Context // the router's context, seen by Authenticate inside the router
	reqID  string       // the request id, seen there too
}

// Middleware audits state-changing requests. Put it before the authentication
// middleware, e.g. around the whole router (Verifier.Authenticate fills in the caller
// or the refusal reason, and the matched route); the job id comes from the route's
// {job_id} or {id} parameter, SetAuditJob, or the Location header of a 2xx answer
// (a created job).
func (a *Audit) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		default:
			next.ServeHTTP(w, r)
			return
		}
		e := &auditEntry{}
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		start := time.Now()
		next.ServeHTTP(ww, r.WithContext(context.WithValue(r.Context(), auditKey{}, e)))
		a.write(r, e, ww, time.Since(start))
	})
}

func (a *Audit) write(r *http.Request, e *auditEntry, ww middleware.WrapResponseWriter, d time.Duration) {
	status := ww.Status()
	if status == 0 {
		status = http.StatusOK
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	route, jobID := r.URL.Path, e.jobID
	rc := e.route
	if rc == nil {
		rc = chi.RouteContext(r.Context())
	}
	if rc != nil {
		if p := rc.RoutePattern(); p != "" {
			route = p
		}
		for _, k := range []string{"job_id", "id"} {
			if jobID == "" {
				jobID = rc.URLParam(k)
			}
		}
	}
	if loc := ww.Header().Get("Location"); jobID == "" && status < 300 && loc != "" {
		jobID = path.Base(loc) // a created job: Location /api/training/status/<id>
	}
	result := "ok"
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		result = "denied"
	case status >= 400:
		result = "error"
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method),
		slog.String("route", route),
		slog.String("path", r.URL.Path),
		slog.String("job", jobID),
		slog.Int("status", status),
		slog.String("result", result),
		slog.String("remote", r.RemoteAddr),
		slog.String("request_id", cmp.Or(e.reqID, middleware.GetReqID(r.Context()))),
		slog.Duration("duration", d),
	}
	if e.authed {
		attrs = append(attrs, slog.String("subject", e.id.Subject), slog.String("user", e.id.Username), slog.Bool("admin", e.id.Admin))
	}
	if e.reason != "" {
		attrs = append(attrs, slog.String("reason", e.reason))
	}
	a.log.LogAttrs(r.Context(), slog.LevelInfo, "audit", attrs...)
}

// SetAuditJob records the job a state-changing request acted on when the route has no
// {id} parameter (e.g. the id of a job just created).
func SetAuditJob(ctx context.Context, jobID string) {
	if e, ok := ctx.Value(auditKey{}).(*auditEntry); ok {
		e.mu.Lock()
		e.jobID = jobID
		e.mu.Unlock()
	}
}

func noteIdentity(ctx context.Context, id job.Identity) {
	if e, ok := ctx.Value(auditKey{}).(*auditEntry); ok {
		e.mu.Lock()
		e.id, e.authed = id, true
		e.route, e.reqID = chi.RouteContext(ctx), middleware.GetReqID(ctx)
		e.mu.Unlock()
	}
}

func noteFailure(ctx context.Context, err error) {
	if e, ok := ctx.Value(auditKey{}).(*auditEntry); ok {
		e.mu.Lock()
		e.reason = job.ErrorMessage(err)
		e.route, e.reqID = chi.RouteContext(ctx), middleware.GetReqID(ctx)
		e.mu.Unlock()
	}
}
