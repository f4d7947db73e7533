package api

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/postgres"
	"github.com/ftgate/ftgate/internal/slurm"
	"github.com/ftgate/ftgate/internal/submit"
)

// Store is what the handlers need from Postgres; *postgres.Store implements it.
type Store interface {
	Create(ctx context.Context, j job.Job, maxActive int) (job.Job, bool, error)
	Get(ctx context.Context, id string) (job.Job, error)
	List(ctx context.Context, f postgres.Filter) ([]job.Job, string, error)
	Transition(ctx context.Context, id string, c job.Change) (job.Job, error)
	CountByState(ctx context.Context) ([]postgres.StateCount, error)
	Runs(ctx context.Context) (map[string]postgres.Run, error)
	Ping(ctx context.Context) error
}

// Slurm is the per-cluster Slurm control the handlers use; *slurm.Client implements it.
type Slurm interface {
	Render(req slurm.Request) (string, error)
	Cancel(ctx context.Context, user, id string) error
	Signal(ctx context.Context, user, id string) error
	Hold(ctx context.Context, user, id string) error
	Release(ctx context.Context, user, id string) error
	Poll(ctx context.Context, user string, ids []string) (map[string]slurm.Status, error)
	// CachedCapacity is the cluster's capacity read as the probe account (cached).
	CachedCapacity(ctx context.Context) (*slurm.Capacity, error)
}

// Files writes files in job directories; *sshconn.Pool implements it.
type Files interface {
	WriteFile(ctx context.Context, user, path string, data []byte, perm os.FileMode) error
}

// Cluster is one configured cluster with its Slurm and file access.
type Cluster struct {
	Config config.Cluster
	Slurm  Slurm
	Files  Files
	// Ping checks SSH and `scontrol ping` (for /ready); nil reports the cluster unchecked.
	Ping func(ctx context.Context) error
}

func (s *Server) cluster(name string) (*Cluster, bool) {
	for _, c := range s.Clusters {
		if c.Config.Name == name {
			return c, true
		}
	}
	return nil, false
}

// readBody reads at most MaxBody bytes: a larger body is ETooLarge (413).
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limit := s.MaxBody
	if limit <= 0 {
		limit = 1 << 20
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, job.Errorf(job.EInvalid, "Content-Type: want application/json, got %q", ct)
		}
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return nil, job.Errorf(job.ETooLarge, "body: larger than %d bytes", limit)
	}
	if err != nil {
		return nil, job.Errorf(job.EInvalid, "body: %v", err)
	}
	return b, nil
}

// prepare decodes, normalises and validates a spec against the caller's cluster.
func (s *Server) prepare(ctx context.Context, id job.Identity, body []byte) (job.Spec, *Cluster, error) {
	spec, err := job.DecodeSpec(bytes.NewReader(body))
	if err != nil {
		return spec, nil, err
	}
	if spec.Resources.Cluster == "" && len(s.Clusters) > 0 {
		spec.Resources.Cluster = s.Clusters[0].Config.Name
	}
	spec.Normalize()
	if err := spec.Validate(); err != nil {
		return spec, nil, err
	}
	cl, ok := s.cluster(spec.Resources.Cluster)
	if !ok {
		names := make([]string, len(s.Clusters))
		for i, c := range s.Clusters {
			names[i] = c.Config.Name
		}
		return spec, nil, job.Errorf(job.EUnprocessable, "invalid spec: resources.cluster: unknown cluster %q (known: %s)", spec.Resources.Cluster, strings.Join(names, ", "))
	}
	if spec.Resources.Partition == "" {
		spec.Resources.Partition = cl.Config.DefaultPartition
	}
	if !slices.Contains(cl.Config.Partitions, spec.Resources.Partition) {
		return spec, nil, job.Errorf(job.EUnprocessable, "invalid spec: resources.partition: %q is not allowed on cluster %s (allowed: %s)",
			spec.Resources.Partition, cl.Config.Name, strings.Join(cl.Config.Partitions, ", "))
	}
	if cl.Slurm != nil {
		capa, err := cl.Slurm.CachedCapacity(ctx)
		if err != nil {
			s.logger().Warn("capacity unknown; submitting without the node capacity check", "cluster", cl.Config.Name, "err", err)
		} else if err := capa.Fits(spec.Resources.Partition, spec.Resources.CPUs, spec.Resources.GPUs, spec.Resources.MemoryMB); err != nil {
			return spec, nil, job.Errorf(job.EUnprocessable, "invalid spec: %s", job.ErrorMessage(err))
		}
	}
	return spec, cl, nil
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
	spec, cl, err := s.prepare(r.Context(), id, body)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	j := job.Job{
		ID: postgres.NewID(), OwnerSubject: id.Subject, User: id.Username, Cluster: cl.Config.Name,
		Spec: spec, SpecHash: spec.Hash(), State: job.Submitting,
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
		writeJSON(w, http.StatusOK, map[string]any{"dry_run": true, "spec": spec, "cluster": cl.Config.Name,
			"job_dir": slurm.JobDir(cl.Config.JobRoot, j.User, "<job-id>"), "script": script})
		return
	default:
		s.Error(w, r, job.Errorf(job.EInvalid, "dry_run: want 1 or 0, got %q", v))
		return
	}
	if key := r.Header.Get("Idempotency-Key"); key != "" {
		if !idemKeyRE(key) {
			s.Error(w, r, job.Errorf(job.EInvalid, "Idempotency-Key: 1 to 200 printable ASCII characters"))
			return
		}
		j.IdempotencyKey = key
	}
	out, created, err := s.Store.Create(r.Context(), j, s.MaxActivePerUser)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	if !created {
		w.Header().Set("Idempotent-Replayed", "true")
	} else if s.Kick != nil {
		s.Kick()
	}
	w.Header().Set("Location", "/api/training/status/"+out.ID)
	writeJSON(w, http.StatusAccepted, out)
}

// load returns the caller's job, answering 404 for other users' jobs (admins see all).
func (s *Server) load(r *http.Request) (job.Job, job.Identity, error) {
	id, _ := IdentityFrom(r.Context())
	jobID := chi.URLParam(r, "job_id")
	j, err := s.Store.Get(r.Context(), jobID)
	if err != nil {
		return j, id, err
	}
	if !id.Admin && j.OwnerSubject != id.Subject {
		return job.Job{}, id, job.Errorf(job.ENotFound, "job %s not found", jobID)
	}
	return j, id, nil
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	j, _, err := s.load(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

// transition writes a state change and counts it.
func (s *Server) transition(ctx context.Context, j job.Job, c job.Change) (job.Job, error) {
	out, err := s.Store.Transition(ctx, j.ID, c)
	if err == nil && s.Metrics != nil {
		s.Metrics.Transitions.WithLabelValues(string(c.From), string(c.To)).Inc()
	}
	return out, err
}

func (s *Server) clusterOf(j job.Job) (*Cluster, error) {
	cl, ok := s.cluster(j.Cluster)
	if !ok || cl.Slurm == nil {
		return nil, job.Errorf(job.EUnavailable, "cluster %s is not configured on this gateway", j.Cluster)
	}
	return cl, nil
}

// cancel works in every non-terminal state; cancelling a cancelled job answers 200.
func (s *Server) cancel(w http.ResponseWriter, r *http.Request) {
	j, _, err := s.load(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	for attempt := 0; attempt < 5; attempt++ {
		switch {
		case j.State == job.Cancelled:
			writeJSON(w, http.StatusOK, j)
			return
		case j.State.Terminal():
			s.Error(w, r, job.Errorf(job.EConflict, "job already %s; only unfinished jobs can be cancelled", j.State))
			return
		}
		if j.SlurmID != "" && j.State != job.Submitting {
			cl, err := s.clusterOf(j)
			if err != nil {
				s.Error(w, r, err)
				return
			}
			if err := cl.Slurm.Cancel(r.Context(), j.User, j.SlurmID); err != nil {
				s.Error(w, r, err)
				return
			}
		}
		// A job in submitting is cancelled in the store only: the submitter sees the
		// conflict when it records its sbatch result and cancels that Slurm job.
		out, err := s.transition(r.Context(), j, job.Change{From: j.State, To: job.Cancelled, Reason: "cancelled by " + callerName(r), ClearPause: true})
		if err == nil {
			writeJSON(w, http.StatusOK, out)
			return
		}
		if job.ErrorCode(err) != job.EConflict {
			s.Error(w, r, err)
			return
		}
		if j, err = s.Store.Get(r.Context(), j.ID); err != nil {
			s.Error(w, r, err)
			return
		}
	}
	s.Error(w, r, job.Errorf(job.EConflict, "job keeps changing state; retry"))
}

func callerName(r *http.Request) string {
	id, _ := IdentityFrom(r.Context())
	if id.Username != "" {
		return id.Username
	}
	return id.Subject
}

// ControlFile is control.json's name in the job directory.
const ControlFile = "control.json"

func (s *Server) pause(w http.ResponseWriter, r *http.Request) {
	j, _, err := s.load(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	switch j.State {
	case job.Paused, job.Pausing:
		writeJSON(w, http.StatusOK, j)
		return
	case job.Submitting:
		s.Error(w, r, job.Errorf(job.EConflict, "job is still being submitted; retry in a few seconds"))
		return
	case job.Queued, job.Running:
	default:
		s.Error(w, r, job.Errorf(job.EConflict, "job already %s; only queued or running jobs can be paused", j.State))
		return
	}
	cl, err := s.clusterOf(j)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	ctx := r.Context()
	if j.State == job.Queued {
		// Never signal a pending job (scancel --signal retries ~95 s): hold it.
		if err := cl.Slurm.Hold(ctx, j.User, j.SlurmID); err != nil {
			s.Error(w, r, err)
			return
		}
		out, err := s.transition(ctx, j, job.Change{From: job.Queued, To: job.Paused, SetPause: true, Reason: "paused by " + callerName(r)})
		if err != nil {
			s.Error(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	// Running: mark pausing first so the reconciler reads the job's end as a pause,
	// then ask the trainer to checkpoint and exit.
	out, err := s.transition(ctx, j, job.Change{From: job.Running, To: job.Pausing, SetPause: true, Reason: "pause requested by " + callerName(r)})
	if err != nil {
		s.Error(w, r, err)
		return
	}
	err = cl.Files.WriteFile(ctx, j.User, j.JobDir+"/"+ControlFile, []byte(`{"action":"pause"}`+"\n"), 0o644)
	if err == nil {
		err = cl.Slurm.Signal(ctx, j.User, j.SlurmID)
	}
	if err != nil {
		if _, rerr := s.Store.Transition(context.WithoutCancel(ctx), j.ID, job.Change{From: job.Pausing, To: job.Running, ClearPause: true, Reason: job.ClearReason}); rerr != nil {
			s.logger().Error("revert failed pause", "job", j.ID, "err", rerr)
		}
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, out)
}

func (s *Server) resume(w http.ResponseWriter, r *http.Request) {
	j, _, err := s.load(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	switch j.State {
	case job.Paused:
	case job.Pausing:
		s.Error(w, r, job.Errorf(job.EConflict, "job is still pausing (writing its checkpoint); resume once it is paused"))
		return
	case job.Submitting, job.Queued, job.Running:
		s.Error(w, r, job.Errorf(job.EConflict, "job is %s, not paused; only a paused job can be resumed", j.State))
		return
	default:
		s.Error(w, r, job.Errorf(job.EConflict, "job already %s; a finished job cannot be resumed (submit it again)", j.State))
		return
	}
	cl, err := s.clusterOf(j)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	ctx := r.Context()
	if err := cl.Files.WriteFile(ctx, j.User, j.JobDir+"/"+ControlFile, []byte(`{"action":"run"}`+"\n"), 0o644); err != nil {
		s.Error(w, r, err)
		return
	}
	known := false
	if j.SlurmID != "" {
		st, err := cl.Slurm.Poll(ctx, j.User, []string{j.SlurmID})
		if err != nil {
			s.Error(w, r, err)
			return
		}
		if v, ok := st[j.SlurmID]; ok && !v.State.Terminal() {
			known = true
		}
	}
	c := job.Change{From: job.Paused, To: job.Submitting, ClearPause: true, Reason: "resubmitted: Slurm no longer holds the job"}
	if known {
		if err := cl.Slurm.Release(ctx, j.User, j.SlurmID); err != nil {
			s.Error(w, r, err)
			return
		}
		c = job.Change{From: job.Paused, To: job.Queued, ClearPause: true, Reason: "resumed by " + callerName(r)}
	}
	out, err := s.transition(ctx, j, c)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	if c.To == job.Submitting && s.Kick != nil {
		s.Kick()
	}
	writeJSON(w, http.StatusOK, out)
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
	f := postgres.Filter{Model: q.Get("model"), Cluster: q.Get("cluster"), Cursor: q.Get("cursor"), Limit: 50}
	for k := range q {
		switch k {
		case "status", "from", "to", "model", "cluster", "user", "limit", "cursor":
		default:
			s.Error(w, r, job.Errorf(job.EInvalid, "unknown query parameter %q (allowed: status, from, to, model, cluster, user, limit, cursor)", k))
			return
		}
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
	var err error
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
	if len(f.Model) > 256 {
		s.Error(w, r, job.Errorf(job.EInvalid, "model: at most 256 characters"))
		return
	}
	jobs, next, err := s.Store.List(r.Context(), f)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	if jobs == nil {
		jobs = []job.Job{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": jobs, "next_cursor": next})
}

// parseTime accepts RFC 3339 or a date (YYYY-MM-DD, UTC).
func parseTime(field, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	return time.Time{}, job.Errorf(job.EInvalid, "%s: want RFC 3339 (2026-01-02T15:04:05Z) or a date (2026-01-02), got %q", field, v)
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	checks := map[string]string{}
	failed := false
	if s.Store == nil {
		checks["postgres"], failed = "not configured", true
	} else if err := s.Store.Ping(ctx); err != nil {
		checks["postgres"], failed = "failed: "+job.ErrorMessage(err), true
	} else {
		checks["postgres"] = "ok"
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, cl := range s.Clusters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := "ok"
			if cl.Ping == nil {
				res = "failed: no probe configured (set clusters[].probe_user)"
			} else if err := cl.Ping(ctx); err != nil {
				res = "failed: " + err.Error()
			}
			mu.Lock()
			defer mu.Unlock()
			checks["cluster "+cl.Config.Name] = res
			if res != "ok" {
				failed = true
			}
		}()
	}
	wg.Wait()
	if failed {
		var bad []string
		for k, v := range checks {
			if v != "ok" {
				bad = append(bad, k)
			}
		}
		slices.Sort(bad)
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "failed": bad, "checks": checks,
			"error": map[string]string{"code": job.EUnavailable, "message": "not ready: " + strings.Join(bad, ", ")}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "checks": checks})
}

type partitionStatus struct {
	Name          string `json:"name"`
	State         string `json:"state"`
	GPUsTotal     int    `json:"gpus_total"`
	GPUsAllocated int    `json:"gpus_allocated"`
	GPUsFree      int    `json:"gpus_free"`
	MaxNodeGPUs   int    `json:"max_node_gpus"`
}

type clusterStatus struct {
	Name                string            `json:"name"`
	Partitions          []partitionStatus `json:"partitions"`
	CapacityError       string            `json:"capacity_error,omitempty"`
	Jobs                map[string]int    `json:"jobs"`
	ReconcilerLastRun   *time.Time        `json:"reconciler_last_run,omitempty"`
	ReconcilerLagSecond *float64          `json:"reconciler_lag_seconds,omitempty"`
	ReconcilerError     string            `json:"reconciler_error,omitempty"`
	Degraded            bool              `json:"degraded"`
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
	out := make([]clusterStatus, len(s.Clusters))
	var wg sync.WaitGroup
	for i, cl := range s.Clusters {
		cs := clusterStatus{Name: cl.Config.Name, Jobs: map[string]int{}, Partitions: []partitionStatus{}}
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
			cs.ReconcilerLastRun, cs.ReconcilerLagSecond, cs.ReconcilerError = &at, &lag, run.Error
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
				out[i].Partitions = append(out[i].Partitions, partitionStatus{Name: p.Name, State: p.State, GPUsTotal: p.GPUs,
					GPUsAllocated: p.GPUsAlloc, GPUsFree: p.GPUs - p.GPUsAlloc, MaxNodeGPUs: p.MaxNodeGPUs})
			}
		}()
	}
	wg.Wait()
	writeJSON(w, http.StatusOK, map[string]any{"version": s.Version, "time": time.Now().UTC(), "clusters": out})
}
