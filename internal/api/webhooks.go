package api

import (
	"bytes"
	"context"
	"net/http"
	"net/url"

	"github.com/go-chi/chi/v5"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/webhook"
)

// WebhookStore is what the webhook routes need from Postgres; *postgres.Store
// implements it.
type WebhookStore interface {
	CreateEndpoint(ctx context.Context, e webhook.Endpoint, max int) (webhook.Endpoint, error)
	Endpoint(ctx context.Context, id string) (webhook.Endpoint, error)
	Endpoints(ctx context.Context, owner, cursor string, limit int) ([]webhook.Endpoint, string, error)
	DeleteEndpoint(ctx context.Context, id string) error
	Deliveries(ctx context.Context, endpointID, cursor string, limit int) ([]webhook.Delivery, string, error)
}

// Webhooks serves the webhook routes; without a Store they answer 503.
type Webhooks struct {
	Store WebhookStore
	// Check validates a target URL against the admin's policy, resolving its host,
	// and returns it normalised (deliver.Guard.Check); nil refuses every URL.
	Check func(ctx context.Context, field, raw string) (string, error)
	// MaxPerUser caps a user's endpoints (0: no limit).
	MaxPerUser int
}

func (s *Server) webhookStore() (WebhookStore, error) {
	if s.Webhooks.Store == nil {
		return nil, job.Errorf(job.EUnavailable, "webhooks are not configured on this gateway")
	}
	return s.Webhooks.Store, nil
}

// maxWebhookPage bounds one page of the endpoint list and the delivery log.
const maxWebhookPage = 200

// pageParams reads limit and cursor, refusing any other query parameter.
func pageParams(r *http.Request) (limit int, cursor string, err error) {
	q := r.URL.Query()
	for k := range q {
		if k != "limit" && k != "cursor" {
			return 0, "", job.Errorf(job.EInvalid, "unknown query parameter %q (allowed: limit, cursor)", truncate(k, 40))
		}
	}
	n, err := queryInt(r, "limit", 50, 1, maxWebhookPage)
	if err != nil {
		return 0, "", err
	}
	if len(q.Get("cursor")) > 200 {
		return 0, "", job.Errorf(job.EInvalid, "cursor: not a cursor of this list (pass next_cursor as it was returned)")
	}
	return int(n), q.Get("cursor"), nil
}

func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request) {
	id, _ := IdentityFrom(r.Context())
	store, err := s.webhookStore()
	if err != nil {
		s.Error(w, r, err)
		return
	}
	body, err := s.readBody(w, r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	var req client.WebhookRequest
	if err := job.DecodeJSON(bytes.NewReader(body), &req); err != nil {
		s.Error(w, r, err)
		return
	}
	events, err := webhook.CheckEvents(req.Events)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	if s.Webhooks.Check == nil {
		s.Error(w, r, job.Errorf(job.EUnavailable, "webhook targets are not configured on this gateway"))
		return
	}
	target, err := s.Webhooks.Check(r.Context(), "url", req.URL)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	e, err := store.CreateEndpoint(r.Context(), webhook.Endpoint{OwnerSubject: id.Subject, User: id.Username,
		URL: target, Events: events, Secret: webhook.NewSecret()}, s.Webhooks.MaxPerUser)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	// The host only: URLs may carry tokens in their path or query.
	s.logger().Info("webhook registered", "webhook", e.ID, "user", callerName(r), "host", urlHost(e.URL), "events", e.Events)
	w.Header().Set("Location", "/api/webhooks/"+e.ID)
	writeJSON(w, http.StatusCreated, e)
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request) {
	id, _ := IdentityFrom(r.Context())
	store, err := s.webhookStore()
	if err != nil {
		s.Error(w, r, err)
		return
	}
	limit, cursor, err := pageParams(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	list, next, err := store.Endpoints(r.Context(), id.Subject, cursor, limit)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	if list == nil {
		list = []webhook.Endpoint{}
	}
	writeJSON(w, http.StatusOK, client.WebhookList{Webhooks: list, NextCursor: next})
}

// loadWebhook returns the caller's endpoint of the route, answering 404 for other
// users' endpoints (admins see all).
func (s *Server) loadWebhook(r *http.Request) (WebhookStore, webhook.Endpoint, error) {
	id, _ := IdentityFrom(r.Context())
	store, err := s.webhookStore()
	if err != nil {
		return nil, webhook.Endpoint{}, err
	}
	wid := chi.URLParam(r, "webhook_id")
	e, err := store.Endpoint(r.Context(), wid)
	if err != nil {
		return nil, e, err
	}
	if !id.Admin && e.OwnerSubject != id.Subject {
		return nil, webhook.Endpoint{}, job.Errorf(job.ENotFound, "webhook %s not found", wid)
	}
	return store, e, nil
}

func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	store, e, err := s.loadWebhook(r)
	if err == nil {
		err = store.DeleteEndpoint(r.Context(), e.ID)
	}
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.logger().Info("webhook removed", "webhook", e.ID, "by", callerName(r), "host", urlHost(e.URL))
	writeJSON(w, http.StatusOK, client.WebhookDeleted{ID: e.ID, Deleted: true})
}

func (s *Server) webhookDeliveries(w http.ResponseWriter, r *http.Request) {
	store, e, err := s.loadWebhook(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	limit, cursor, err := pageParams(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	list, next, err := store.Deliveries(r.Context(), e.ID, cursor, limit)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	if list == nil {
		list = []webhook.Delivery{}
	}
	writeJSON(w, http.StatusOK, client.DeliveryList{WebhookID: e.ID, Deliveries: list, NextCursor: next})
}

// urlHost is the host of a stored webhook URL, for logs.
func urlHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}
