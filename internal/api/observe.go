package api

import (
	_ "embed"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/ftgate/ftgate/internal/job"
)

// instrument counts requests by route pattern (never the raw path, which holds ids).
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Metrics == nil {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		method := methodLabel(r.Method)
		s.Metrics.HTTPRequests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
		s.Metrics.HTTPDuration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
	})
}

// methodLabel is the method as a metrics label: the standard methods, else OTHER (the
// method is client-chosen and unauthenticated: it must not grow the label set).
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// recoverer turns a panic into a logged 500 with the JSON error shape.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.logger().Error("panic in handler", "method", r.Method, "path", r.URL.Path, "panic", v)
				s.Error(w, r, job.Errorf(job.EInternal, "internal error"))
			}
		}()
		next.ServeHTTP(w, r)
	})
}
