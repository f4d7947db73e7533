package api

import (
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/ftgate/ftgate/client"
)

// route is one row of the route table.
type route struct {
	method, pattern string
	// public routes need no token; all others go through authenticate.
	public bool
	// undocumented routes are not part of the API (openapi.json), e.g. the web UI.
	undocumented bool
	handler      http.HandlerFunc
	// request is the JSON body's type (a oneOf: any of its types); responses maps
	// each status with a JSON body to the type written. The OpenAPI test checks
	// openapi.json against both, and every error status against client.ErrorBody.
	request   any
	responses map[int]any
}

// routes is the one route table: every route of the gateway, by resource.
func (s *Server) routes() []route {
	return []route{
		// System.
		{method: "GET", pattern: "/health", public: true, handler: s.health, responses: ok(client.Health{})},
		{method: "GET", pattern: "/ready", public: true, handler: s.ready, responses: map[int]any{200: client.Ready{}, 503: client.Ready{}}},
		{method: "GET", pattern: "/metrics", public: true, handler: s.metrics},
		{method: "GET", pattern: "/api/auth/config", public: true, handler: s.authConfig, responses: ok(client.AuthConfig{})},
		{method: "GET", pattern: "/api/openapi.json", public: true, handler: s.openapi},
		{method: "GET", pattern: "/api/whoami", handler: s.whoami, responses: ok(client.Whoami{})},
		{method: "GET", pattern: "/api/system/status", handler: s.systemStatus, responses: ok(client.SystemStatus{})},
		{method: "GET", pattern: "/api/usage", handler: s.usage, responses: ok(client.Usage{})},
		// Jobs.
		{method: "POST", pattern: "/api/training/execute", handler: s.execute, request: oneOf{client.Spec{}, client.TemplateRun{}},
			responses: map[int]any{200: client.DryRun{}, 202: client.Job{}}},
		{method: "GET", pattern: "/api/training/status/{job_id}", handler: s.status, responses: ok(client.Job{})},
		{method: "POST", pattern: "/api/training/cancel/{job_id}", handler: s.cancel, responses: ok(client.Job{})},
		{method: "POST", pattern: "/api/training/pause/{job_id}", handler: s.pause, responses: map[int]any{200: client.Job{}, 202: client.Job{}}},
		{method: "POST", pattern: "/api/training/resume/{job_id}", handler: s.resume, responses: ok(client.Job{})},
		{method: "GET", pattern: "/api/jobs", handler: s.list, responses: ok(client.JobList{})},
		{method: "PUT", pattern: "/api/training/{job_id}/pin", handler: s.pinJob, responses: ok(client.PinState{})},
		{method: "DELETE", pattern: "/api/training/{job_id}/pin", handler: s.pinJob, responses: ok(client.PinState{})},
		{method: "DELETE", pattern: "/api/training/{job_id}", handler: s.purgeJob, responses: ok(client.Purged{})},
		// Templates.
		{method: "GET", pattern: "/api/templates", handler: s.listTemplates, responses: ok(client.TemplateList{})},
		{method: "POST", pattern: "/api/templates", handler: s.createTemplate, request: client.TemplateRequest{},
			responses: map[int]any{http.StatusCreated: client.Template{}}},
		{method: "GET", pattern: "/api/templates/{name}", handler: s.getTemplate, responses: ok(client.Template{})},
		{method: "PUT", pattern: "/api/templates/{name}", handler: s.updateTemplate, request: client.TemplateRequest{}, responses: ok(client.Template{})},
		{method: "DELETE", pattern: "/api/templates/{name}", handler: s.deleteTemplate, responses: ok(client.TemplateDeleted{})},
		// Artifacts.
		{method: "GET", pattern: "/api/training/{job_id}/logs", handler: s.jobLogs},
		{method: "GET", pattern: "/api/training/{job_id}/checkpoints", handler: s.listCheckpoints, responses: ok(client.CheckpointList{})},
		{method: "GET", pattern: "/api/training/{job_id}/checkpoints/{name}", handler: s.getCheckpoint},
		{method: "DELETE", pattern: "/api/training/{job_id}/checkpoints/{name}", handler: s.deleteCheckpoint},
		{method: "GET", pattern: "/api/training/{job_id}/model", handler: s.getModel},
		{method: "GET", pattern: "/api/training/{job_id}/model/manifest", handler: s.getModelManifest, responses: ok(client.Manifest{})},
		{method: "GET", pattern: "/api/training/{job_id}/metrics", handler: s.jobMetrics, responses: ok(client.Metrics{})},
		// Webhooks.
		{method: "POST", pattern: "/api/webhooks", handler: s.createWebhook, request: client.WebhookRequest{},
			responses: map[int]any{201: client.Webhook{}}},
		{method: "GET", pattern: "/api/webhooks", handler: s.listWebhooks, responses: ok(client.WebhookList{})},
		{method: "DELETE", pattern: "/api/webhooks/{webhook_id}", handler: s.deleteWebhook, responses: ok(client.WebhookDeleted{})},
		{method: "GET", pattern: "/api/webhooks/{webhook_id}/deliveries", handler: s.webhookDeliveries, responses: ok(client.DeliveryList{})},
		// Streams.
		{method: "GET", pattern: "/api/events", handler: s.allEvents},
		{method: "GET", pattern: "/api/training/{job_id}/events", handler: s.jobEvents},
		{method: "GET", pattern: "/api/training/{job_id}/ws", handler: s.jobEventsWS},
	}
}

func ok(v any) map[int]any { return map[int]any{http.StatusOK: v} }

// oneOf is a request body that may be any of its types (OpenAPI oneOf).
type oneOf []any

// Handler returns the gateway's HTTP handler: the route table behind the request id,
// metrics and panic middleware; routes that are not public require a token.
func (s *Server) Handler() http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.RequestID, s.instrument, s.recoverer)
	authed := r.With(s.authenticate)
	for _, rt := range s.routes() {
		if rt.public {
			r.Method(rt.method, rt.pattern, rt.handler)
		} else {
			authed.Method(rt.method, rt.pattern, rt.handler)
		}
	}
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		if s.Web != nil && !strings.HasPrefix(r.URL.Path, "/api/") {
			s.Web.ServeHTTP(w, r)
			return
		}
		writeError(w, http.StatusNotFound, "not_found", "no such route: "+r.URL.Path)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed on "+r.URL.Path)
	})
	return r
}
