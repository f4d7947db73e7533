package api

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/jobsvc"
	"github.com/ftgate/ftgate/internal/postgres"
	"github.com/ftgate/ftgate/internal/slurm"
	"github.com/ftgate/ftgate/internal/submit"
	"github.com/ftgate/ftgate/internal/webhook"
)

// Store is what the handlers need from Postgres; *postgres.Store implements it.
type Store interface {
	jobsvc.Store
	List(ctx context.Context, f postgres.Filter) ([]job.Job, string, error)
	CountByState(ctx context.Context) ([]postgres.StateCount, error)
	Runs(ctx context.Context) (map[string]postgres.Run, error)
	Ping(ctx context.Context) error
	// UserGroups are the groups recorded with Unix account user's latest job.
	UserGroups(ctx context.Context, user string) ([]string, error)
}

// prepare decodes, normalises and validates a spec against the caller's cluster.
func (s *Server) prepare(ctx context.Context, id job.Identity, body []byte) (job.Spec, *Cluster, error) {
	spec, err := job.DecodeSpec(bytes.NewReader(body))
	if err != nil {
		return spec, nil, err
	}
	spec.Normalize()
	if err := spec.Validate(); err != nil {
		return spec, nil, err
	}
	cl, err := s.place(&spec)
	if err != nil {
		return spec, nil, err
	}
	if spec.Resources.NoWait && !cl.Config.AllowNoWait {
		return spec, nil, job.Errorf(job.EUnprocessable, "invalid spec: resources.no_wait: cluster %s does not offer it (clusters[].allow_no_wait is off); submit without it to wait in the queue",
			cl.Config.Name)
	}
	if err := s.checkNotify(ctx, &spec); err != nil {
		return spec, nil, err
	}
	if cl.Slurm != nil {
		capa, err := cl.Slurm.CachedCapacity(ctx)
		if err != nil {
			s.logger().Warn("capacity unknown; submitting without the node capacity check", "cluster", cl.Config.Name, "err", err)
		} else if err := capa.Fits(spec.Resources.Partition, max(spec.Resources.Nodes, 1), spec.Resources.CPUs, spec.Resources.GPUs, spec.Resources.MemoryMB); err != nil {
			return spec, nil, job.Errorf(job.EUnprocessable, "invalid spec: %s", job.ErrorMessage(err))
		}
	}
	return spec, cl, nil
}

// DefaultNotifyEvents are the events of a notify.webhook that names none: the ends
// a user waits for.
var DefaultNotifyEvents = []string{webhook.EventSucceeded, webhook.EventFailed, webhook.EventCancelled}

// checkNotify checks the spec's notify.webhook as POST /api/webhooks checks an
// endpoint (the admin's target policy, the known events) and stores the checked URL
// and the sorted events in the spec; errors name the field.
func (s *Server) checkNotify(ctx context.Context, spec *job.Spec) error {
	if spec.Notify == nil || spec.Notify.Webhook == nil {
		return nil
	}
	w := spec.Notify.Webhook
	if s.Webhooks.Store == nil || s.Webhooks.Check == nil {
		return job.Errorf(job.EUnprocessable, "invalid spec: notify.webhook: webhooks are not configured on this gateway")
	}
	events := w.Events
	if len(events) == 0 {
		events = DefaultNotifyEvents
	}
	events, err := webhook.CheckEvents(events)
	if err != nil {
		return job.Errorf(job.EUnprocessable, "invalid spec: notify.webhook.%s", job.ErrorMessage(err))
	}
	target, err := s.Webhooks.Check(ctx, "notify.webhook.url", w.URL)
	if err != nil {
		return job.Errorf(job.EUnprocessable, "invalid spec: %s", job.ErrorMessage(err))
	}
	spec.Notify.Webhook = &job.NotifyWebhook{URL: target, Events: events}
	return nil
}

// place fills the spec's cluster (the first one) and partition (the cluster's
// default) when unset, and checks that the gateway serves the cluster and allows the
// partition there (EUnprocessable naming the field).
func (s *Server) place(spec *job.Spec) (*Cluster, error) {
	if spec.Resources.Cluster == "" && len(s.Clusters) > 0 {
		spec.Resources.Cluster = s.Clusters[0].Config.Name
	}
	cl, ok := s.cluster(spec.Resources.Cluster)
	if !ok {
		names := make([]string, len(s.Clusters))
		for i, c := range s.Clusters {
			names[i] = c.Config.Name
		}
		return nil, job.Errorf(job.EUnprocessable, "invalid spec: resources.cluster: unknown cluster %q (known: %s)", spec.Resources.Cluster, strings.Join(names, ", "))
	}
	if spec.Resources.Partition == "" {
		spec.Resources.Partition = cl.Config.DefaultPartition
	}
	if !slices.Contains(cl.Config.Partitions, spec.Resources.Partition) {
		return nil, job.Errorf(job.EUnprocessable, "invalid spec: resources.partition: %q is not allowed on cluster %s (allowed: %s)",
			spec.Resources.Partition, cl.Config.Name, strings.Join(cl.Config.Partitions, ", "))
	}
	return cl, nil
}

var idemKeyRE = func(k string) bool {
	if len(k) == 0 || len(k) > 200 {
		return false
	}
	for _, c := range k {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

func (s *Server) execute(w http.ResponseWriter, r *http.Request) {
	id, _ := IdentityFrom(r.Context())
	if id.Username == "" {
		s.Error(w, r, job.Errorf(job.EForbidden, "your identity maps to no Unix account"))
		return
	}
	body, err := s.readBody(w, r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	body, tmpl, hash, err := s.fromTemplate(r.Context(), id, body)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	spec, cl, err := s.prepare(r.Context(), id, body)
	if err != nil {
		s.Error(w, r, withTemplate(err, tmpl))
		return
	}
	if hash == "" {
		hash = spec.Hash()
	}
	j := job.Job{
		ID: postgres.NewID(), OwnerSubject: id.Subject, User: id.Username, Cluster: cl.Config.Name,
		Spec: spec, SpecHash: hash, State: job.Submitting, Template: tmpl, OwnerGroups: id.Groups,
	}
	j.JobDir = slurm.JobDir(cl.Config.JobRoot, j.User, j.ID)
	switch v := r.URL.Query().Get("dry_run"); v {
	case "", "0", "false":
	case "1", "true":
		if cl.Slurm == nil {
			s.Error(w, r, job.Errorf(job.EUnavailable, "cluster %s has no Slurm client", cl.Config.Name))
			return
		}
		script, err := cl.Slurm.Render(submit.Request(j))
		if err != nil {
			s.Error(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, client.DryRun{DryRun: true, Spec: spec, Cluster: cl.Config.Name,
			JobDir: slurm.JobDir(cl.Config.JobRoot, j.User, "<job-id>"), Script: script, Template: tmpl})
		return
	default:
		s.Error(w, r, job.Errorf(job.EInvalid, "dry_run: want 1 or 0, got %q", v))
		return
	}
	if n := spec.Notify; n != nil && n.Webhook != nil {
		j.Webhook = &job.JobWebhook{ID: postgres.NewID(), URL: n.Webhook.URL, Events: n.Webhook.Events, Secret: webhook.NewSecret()}
	}
	if key := r.Header.Get("Idempotency-Key"); key != "" {
		if !idemKeyRE(key) {
			s.Error(w, r, job.Errorf(job.EInvalid, "Idempotency-Key: 1 to 200 printable ASCII characters"))
			return
		}
		j.IdempotencyKey = key
	}
	out, created, err := s.jobs().Create(r.Context(), j)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	if !created {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.Header().Set("Location", "/api/training/status/"+out.ID)
	writeJSON(w, http.StatusAccepted, out)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	j, _, err := s.load(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

// cancel works in every non-terminal state; cancelling a cancelled job answers 200.
func (s *Server) cancel(w http.ResponseWriter, r *http.Request) {
	j, _, err := s.load(r)
	if err == nil {
		j, err = s.jobs().Cancel(r.Context(), j, callerName(r))
	}
	if err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

// pause answers 202 while a running job checkpoints (pausing), 200 once paused.
func (s *Server) pause(w http.ResponseWriter, r *http.Request) {
	j, _, err := s.load(r)
	pending := false
	if err == nil {
		j, pending, err = s.jobs().Pause(r.Context(), j, callerName(r))
	}
	if err != nil {
		s.Error(w, r, err)
		return
	}
	status := http.StatusOK
	if pending {
		status = http.StatusAccepted
	}
	writeJSON(w, status, j)
}

func (s *Server) resume(w http.ResponseWriter, r *http.Request) {
	j, _, err := s.load(r)
	if err == nil {
		j, err = s.jobs().Resume(r.Context(), j, callerName(r))
	}
	if err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

const maxPage = 200

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	id, _ := IdentityFrom(r.Context())
	q := r.URL.Query()
	for k, vs := range q {
		for _, v := range vs {
			if strings.IndexByte(v, 0) >= 0 || !utf8.ValidString(v) {
				s.Error(w, r, job.Errorf(job.EInvalid, "%s: must be valid UTF-8 without NUL bytes", k))
				return
			}
		}
	}
	f := postgres.Filter{Model: q.Get("model"), Search: q.Get("q"), Cluster: q.Get("cluster"), Cursor: q.Get("cursor"), Limit: 50}
	for k := range q {
		switch k {
		case "status", "from", "to", "model", "q", "cluster", "user", "sort", "order", "limit", "cursor":
		default:
			s.Error(w, r, job.Errorf(job.EInvalid, "unknown query parameter %q (allowed: status, from, to, model, q, cluster, user, sort, order, limit, cursor)", k))
			return
		}
	}
	var err error
	if f.Sort, f.Desc, err = job.ParseSort(q.Get("sort"), q.Get("order")); err != nil {
		s.Error(w, r, err)
		return
	}
	if !id.Admin {
		f.Owner = id.Subject
		if u := q.Get("user"); u != "" && u != id.Username {
			s.Error(w, r, job.Errorf(job.EForbidden, "user: only admins may list other users' jobs"))
			return
		}
	} else {
		f.User = q.Get("user")
	}
	if v := q.Get("status"); v != "" {
		for _, st := range strings.Split(v, ",") {
			st := job.State(strings.TrimSpace(st))
			if !st.Valid() {
				s.Error(w, r, job.Errorf(job.EInvalid, "status: unknown state %q", st))
				return
			}
			f.States = append(f.States, st)
		}
	}
	if f.From, err = parseTime("from", q.Get("from")); err != nil {
		s.Error(w, r, err)
		return
	}
	if f.To, err = parseTime("to", q.Get("to")); err != nil {
		s.Error(w, r, err)
		return
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPage {
			s.Error(w, r, job.Errorf(job.EInvalid, "limit: want an integer from 1 to %d, got %q", maxPage, v))
			return
		}
		f.Limit = n
	}
	for name, v := range map[string]string{"model": f.Model, "q": f.Search} {
		if len(v) > 256 {
			s.Error(w, r, job.Errorf(job.EInvalid, "%s: at most 256 characters", name))
			return
		}
	}
	jobs, next, err := s.Store.List(r.Context(), f)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	if jobs == nil {
		jobs = []job.Job{}
	}
	writeJSON(w, http.StatusOK, client.JobList{Jobs: jobs, NextCursor: next})
}
