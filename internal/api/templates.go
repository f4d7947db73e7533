package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/postgres"
)

// Templates is what the template routes need from the store; *postgres.Store
// implements it.
type Templates interface {
	CreateTemplate(ctx context.Context, t job.Template) (job.Template, error)
	AddTemplateVersion(ctx context.Context, t job.Template) (job.Template, error)
	FindTemplate(ctx context.Context, subject, name string, version int) (job.Template, error)
	ListTemplates(ctx context.Context, f postgres.TemplateFilter) ([]job.Template, string, error)
	DeleteTemplate(ctx context.Context, id int64) error
}

func (s *Server) templates() (Templates, error) {
	if s.Templates == nil {
		return nil, job.Errorf(job.EUnavailable, "templates are not configured on this gateway")
	}
	return s.Templates, nil
}

// templateCaller is the caller of a template route: an identity with a Unix account,
// and the store.
func (s *Server) templateCaller(r *http.Request) (job.Identity, Templates, error) {
	id, _ := IdentityFrom(r.Context())
	if id.Username == "" {
		return id, nil, job.Errorf(job.EForbidden, "your identity maps to no Unix account")
	}
	ts, err := s.templates()
	return id, ts, err
}

// templateSpec is the checked partial spec of a template request: req.Spec, or the
// spec of job req.FromJob, which the caller must see (their own; admins: any). Its
// cluster and partition, when set, must be allowed now, as for a job.
func (s *Server) templateSpec(ctx context.Context, id job.Identity, req client.TemplateRequest) (json.RawMessage, error) {
	given := bytes.TrimSpace(req.Spec)
	hasSpec := len(given) > 0 && string(given) != "null"
	if hasSpec == (req.FromJob != "") {
		return nil, job.Errorf(job.EInvalid, "give spec (a partial spec) or from_job (the id of one of your jobs), exactly one of the two")
	}
	raw := []byte(req.Spec)
	if req.FromJob != "" {
		j, err := s.visibleJob(ctx, id, req.FromJob)
		if err != nil {
			return nil, err
		}
		if raw, err = job.PartialOf(j.Spec); err != nil {
			return nil, err
		}
	}
	spec, partial, err := job.CheckPartialSpec(raw)
	if err != nil {
		return nil, err
	}
	if _, err := s.place(&partial); err != nil {
		return nil, err
	}
	return spec, nil
}

// readTemplateRequest decodes a template request strictly and checks its visibility.
func (s *Server) readTemplateRequest(w http.ResponseWriter, r *http.Request, id job.Identity) (client.TemplateRequest, error) {
	var req client.TemplateRequest
	body, err := s.readBody(w, r)
	if err != nil {
		return req, err
	}
	if err := job.DecodeJSON(bytes.NewReader(body), &req); err != nil {
		return req, err
	}
	if req.Visibility != "" && !job.ValidVisibility(req.Visibility) {
		return req, job.Errorf(job.EInvalid, "visibility: want private or shared, got %q", truncate(req.Visibility, 40))
	}
	if req.Visibility == job.VisibilityShared && !id.Admin {
		return req, job.Errorf(job.EForbidden, "visibility: only admins create or change shared templates")
	}
	return req, nil
}

func (s *Server) createTemplate(w http.ResponseWriter, r *http.Request) {
	id, ts, err := s.templateCaller(r)
	var req client.TemplateRequest
	if err == nil {
		req, err = s.readTemplateRequest(w, r, id)
	}
	if err == nil && !job.ValidName(req.Name) {
		err = job.Errorf(job.EInvalid, "name: must match %s, got %q", job.NameRE, truncate(req.Name, 80))
	}
	var spec json.RawMessage
	if err == nil {
		spec, err = s.templateSpec(r.Context(), id, req)
	}
	var out job.Template
	if err == nil {
		if req.Visibility == "" {
			req.Visibility = job.VisibilityPrivate
		}
		out, err = ts.CreateTemplate(r.Context(), job.Template{OwnerSubject: id.Subject, Owner: id.Username, Name: req.Name,
			Visibility: req.Visibility, Spec: spec, FromJob: req.FromJob})
	}
	if err != nil {
		s.Error(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/templates/"+out.Name)
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) listTemplates(w http.ResponseWriter, r *http.Request) {
	id, ts, err := s.templateCaller(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	q := r.URL.Query()
	for k := range q {
		if k != "visibility" && k != "limit" && k != "cursor" {
			s.Error(w, r, job.Errorf(job.EInvalid, "unknown query parameter %q (allowed: visibility, limit, cursor)", truncate(k, 40)))
			return
		}
	}
	f := postgres.TemplateFilter{Subject: id.Subject, Visibility: q.Get("visibility"), Cursor: q.Get("cursor")}
	if f.Visibility != "" && !job.ValidVisibility(f.Visibility) {
		s.Error(w, r, job.Errorf(job.EInvalid, "visibility: want private or shared, got %q", truncate(f.Visibility, 40)))
		return
	}
	limit, err := queryInt(r, "limit", 50, 1, maxPage)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	f.Limit = int(limit)
	list, next, err := ts.ListTemplates(r.Context(), f)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	if list == nil {
		list = []job.Template{}
	}
	writeJSON(w, http.StatusOK, client.TemplateList{Templates: list, NextCursor: next})
}

// findTemplate resolves the {name} of the path (NAME, NAME@VERSION or NAME with
// ?version=) to the template the caller sees. latestOnly refuses a version.
func (s *Server) findTemplate(r *http.Request, ts Templates, id job.Identity, latestOnly bool) (job.Template, error) {
	for k := range r.URL.Query() {
		if k != "version" || latestOnly {
			return job.Template{}, job.Errorf(job.EInvalid, "unknown query parameter %q", truncate(k, 40))
		}
	}
	name, version, err := job.ParseTemplateRef("template", chi.URLParam(r, "name"))
	if err != nil {
		return job.Template{}, err
	}
	if latestOnly && version != 0 {
		return job.Template{}, job.Errorf(job.EInvalid, "template: %s acts on the whole template; give NAME without @VERSION", r.Method)
	}
	qv, err := queryInt(r, "version", 0, 1, math.MaxInt32)
	if err != nil {
		return job.Template{}, err
	}
	if qv != 0 && version != 0 && int(qv) != version {
		return job.Template{}, job.Errorf(job.EInvalid, "version: %d contradicts the path's @%d", qv, version)
	}
	if qv != 0 {
		version = int(qv)
	}
	return ts.FindTemplate(r.Context(), id.Subject, name, version)
}

// mayChange refuses a change of t by a caller who is not an admin when t is shared
// (a private template the caller sees is their own).
func mayChange(id job.Identity, t job.Template) error {
	if t.Visibility == job.VisibilityShared && !id.Admin {
		return job.Errorf(job.EForbidden, "template %s is shared: only admins change or delete shared templates", t.Name)
	}
	return nil
}

func (s *Server) getTemplate(w http.ResponseWriter, r *http.Request) {
	id, ts, err := s.templateCaller(r)
	var t job.Template
	if err == nil {
		t, err = s.findTemplate(r, ts, id, false)
	}
	if err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (s *Server) updateTemplate(w http.ResponseWriter, r *http.Request) {
	id, ts, err := s.templateCaller(r)
	var t job.Template
	if err == nil {
		t, err = s.findTemplate(r, ts, id, true)
	}
	var req client.TemplateRequest
	if err == nil {
		err = mayChange(id, t)
	}
	if err == nil {
		req, err = s.readTemplateRequest(w, r, id)
	}
	if err == nil && req.Name != "" && req.Name != t.Name {
		err = job.Errorf(job.EInvalid, "name: %q differs from the path's %q; templates cannot be renamed", truncate(req.Name, 80), t.Name)
	}
	var spec json.RawMessage
	if err == nil {
		spec, err = s.templateSpec(r.Context(), id, req)
	}
	if err == nil {
		t, err = ts.AddTemplateVersion(r.Context(), job.Template{ID: t.ID, Name: t.Name, Spec: spec, FromJob: req.FromJob, Visibility: req.Visibility})
	}
	if err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (s *Server) deleteTemplate(w http.ResponseWriter, r *http.Request) {
	id, ts, err := s.templateCaller(r)
	var t job.Template
	if err == nil {
		t, err = s.findTemplate(r, ts, id, true)
	}
	if err == nil {
		err = mayChange(id, t)
	}
	if err == nil {
		err = ts.DeleteTemplate(r.Context(), t.ID)
	}
	if err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, client.TemplateDeleted{Name: t.Name, Owner: t.Owner, Deleted: true})
}

// fromTemplate turns an execute body that names a template ({"template",
// "overrides"}) into the spec to validate: the template version the caller sees,
// merged with the overrides. Any other body is returned as it is (ref nil). hash is
// the request's idempotency hash: the template as asked for and the overrides, so a
// retry matches its first submission even when the template got a new version.
func (s *Server) fromTemplate(ctx context.Context, id job.Identity, body []byte) (spec []byte, ref *job.TemplateRef, hash string, err error) {
	var members map[string]json.RawMessage
	if json.Unmarshal(body, &members) != nil {
		return body, nil, "", nil
	}
	asked, ok := members["template"]
	if !ok {
		return body, nil, "", nil
	}
	for k := range members {
		if k != "template" && k != "overrides" {
			return nil, nil, "", job.Errorf(job.EInvalid, `unknown field %q: with "template" the body holds only "overrides"; put spec fields under "overrides"`, truncate(k, 40))
		}
	}
	var name string
	if err := json.Unmarshal(asked, &name); err != nil {
		return nil, nil, "", job.Errorf(job.EInvalid, "template: want a string NAME or NAME@VERSION")
	}
	tname, version, err := job.ParseTemplateRef("template", name)
	if err != nil {
		return nil, nil, "", err
	}
	ts, err := s.templates()
	if err != nil {
		return nil, nil, "", err
	}
	t, err := ts.FindTemplate(ctx, id.Subject, tname, version)
	if err != nil {
		return nil, nil, "", err
	}
	spec, err = job.MergeSpec(t.Spec, members["overrides"])
	if err != nil {
		return nil, nil, "", err
	}
	var ov bytes.Buffer
	if o := members["overrides"]; len(o) > 0 {
		_ = json.Compact(&ov, o)
	}
	sum := sha256.Sum256([]byte("template\x00" + name + "\x00" + ov.String()))
	return spec, &job.TemplateRef{Name: t.Name, Version: t.Version, Owner: t.Owner}, hex.EncodeToString(sum[:]), nil
}

// withTemplate adds the template version to a client mistake in the spec it gave, so
// the message says where the field's value came from.
func withTemplate(err error, ref *job.TemplateRef) error {
	var e *job.Error
	if ref == nil || !errors.As(err, &e) || (e.Code != job.EInvalid && e.Code != job.EUnprocessable) {
		return err
	}
	return &job.Error{Code: e.Code, Message: e.Message + " (spec from template " + ref.String() + " with the overrides)", Err: err}
}
