package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/artifact"
	"github.com/ftgate/ftgate/internal/job"
)

// pinJob is PUT (pin) or DELETE (unpin) /api/training/{job_id}/pin: a pinned job's
// files are kept past the cluster's retention period.
func (s *Server) pinJob(w http.ResponseWriter, r *http.Request) {
	pinned := r.Method == http.MethodPut
	s.jobOp(w, r, func(ctx context.Context, j job.Job) (any, error) {
		if err := s.jobs().Pin(ctx, j, pinned); err != nil {
			return nil, err
		}
		return client.PinState{JobID: j.ID, Pinned: pinned}, nil
	})
}

// jobOp loads the caller's job, runs op on it and answers 200 with the body op
// returns; an error from either is rendered by s.Error.
func (s *Server) jobOp(w http.ResponseWriter, r *http.Request, op func(ctx context.Context, j job.Job) (any, error)) {
	j, _, err := s.load(r)
	var body any
	if err == nil {
		body, err = op(r.Context(), j)
	}
	if err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// loadDir loads the caller's job and its directory on the cluster.
func (s *Server) loadDir(r *http.Request) (job.Job, *artifact.Dir, error) {
	j, _, err := s.load(r)
	if err != nil {
		return j, nil, err
	}
	d, err := s.jobDir(j)
	return j, d, err
}

// jobLogs is GET /api/training/{job_id}/logs?offset=&tail=&follow=1: the Slurm output
// file as text/plain from byte offset (default 0) or its last tail lines; follow
// keeps the response open and streams new output until the job ends.
// X-Log-Offset is the starting byte offset; without follow X-Log-Next-Offset is the
// offset to ask for next.
func (s *Server) jobLogs(w http.ResponseWriter, r *http.Request) {
	j, _, err := s.load(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	q := r.URL.Query()
	if q.Get("offset") != "" && q.Get("tail") != "" {
		s.Error(w, r, job.Errorf(job.EInvalid, "offset and tail: give one or the other"))
		return
	}
	offset, err := queryInt(r, "offset", 0, 0, 1<<62)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	tail, err := queryInt(r, "tail", 0, 0, 100000)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	follow := wantFlag(r, "follow")
	d, err := s.jobDir(j)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	ctx := r.Context()
	name, err := d.LogFile(ctx, j.SlurmID)
	var real string
	var size int64
	if err == nil {
		var fi os.FileInfo
		real, fi, err = d.Stat(ctx, name)
		if fi != nil {
			size = fi.Size()
		}
	}
	if err != nil && !(follow && job.ErrorCode(err) == job.ENotFound) {
		s.Error(w, r, err)
		return
	}
	if real != "" {
		if tail > 0 {
			if offset, err = d.TailStart(ctx, real, size, int(tail)); err != nil {
				s.Error(w, r, err)
				return
			}
		}
		if offset > size {
			offset = size
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Log-File", name)
	h.Set("X-Log-Offset", strconv.FormatInt(offset, 10))
	if !follow {
		h.Set("X-Log-Next-Offset", strconv.FormatInt(size, 10))
		h.Set("Content-Length", strconv.FormatInt(size-offset, 10))
		w.WriteHeader(http.StatusOK)
		if size > offset {
			rc, err := d.Open(ctx, real, offset)
			if err != nil {
				s.logger().Warn("open log", "job", j.ID, "err", err)
				return
			}
			defer rc.Close()
			_, _ = io.CopyN(w, rc, size-offset)
		}
		return
	}
	release, err := s.acquireStream(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	defer release()
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s.followLog(ctx, w, j, d, offset)
}

// followLog copies new log output from offset as it is written, through the job's
// shared follower, until the job is terminal and the log has no more output, or the
// client leaves.
func (s *Server) followLog(ctx context.Context, w http.ResponseWriter, j job.Job, d *artifact.Dir, offset int64) {
	sl, release := s.logs.follow(j.ID, d, j.SlurmID)
	defer release()
	cur := logCursor{sl: sl, offset: offset}
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	t := time.NewTicker(logPoll)
	defer t.Stop()
	lastPing := time.Now()
	for {
		done := j.State.Terminal()
		wrote := false
		for {
			_, data, _, err := cur.next(ctx)
			if len(data) == 0 {
				if err != nil {
					return
				}
				break
			}
			_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
			if _, err := w.Write(data); err != nil {
				return
			}
			wrote = true
		}
		if wrote {
			if rc.Flush() != nil {
				return
			}
			lastPing = time.Now()
		}
		if done && !wrote {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !done {
			if latest, err := s.Store.Get(ctx, j.ID); err == nil {
				j = latest
			}
		}
		if time.Since(lastPing) > s.heartbeat() {
			// Nothing to say; an empty flush keeps the chunked stream alive.
			if rc.Flush() != nil {
				return
			}
			lastPing = time.Now()
		}
	}
}

// listCheckpoints is GET /api/training/{job_id}/checkpoints.
func (s *Server) listCheckpoints(w http.ResponseWriter, r *http.Request) {
	j, d, err := s.loadDir(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	cks, err := d.Checkpoints(r.Context())
	if err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, client.CheckpointList{JobID: j.ID, Checkpoints: cks})
}

// checkpointArg validates {name} before anything is read.
func (s *Server) checkpointArg(r *http.Request) (job.Job, *artifact.Dir, string, error) {
	name := chi.URLParam(r, "name")
	j, _, err := s.load(r)
	if err != nil {
		return j, nil, "", err
	}
	if _, err := job.CheckpointName(name); err != nil {
		return j, nil, "", err
	}
	d, err := s.jobDir(j)
	return j, d, name, err
}

// getCheckpoint is GET /api/training/{job_id}/checkpoints/{name}: a tar stream of
// the checkpoint directory, or with ?file=<path> one file with Range and ETag.
func (s *Server) getCheckpoint(w http.ResponseWriter, r *http.Request) {
	j, d, name, err := s.checkpointArg(r)
	if err == nil {
		var rel string
		if rel, err = fileArg(r); err == nil && rel != "" {
			s.serveFile(w, r, d, job.CheckpointsDir+"/"+name, rel)
			return
		}
	}
	if err != nil {
		s.Error(w, r, err)
		return
	}
	files, err := d.Walk(r.Context(), job.CheckpointsDir+"/"+name, 10000)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeTar(w, r, d, files, fmt.Sprintf("%s-%s", shortID(j.ID), name))
}

func shortID(id string) string { return strings.SplitN(id, "-", 2)[0] }

func (s *Server) writeTar(w http.ResponseWriter, r *http.Request, d *artifact.Dir, files []artifact.File, prefix string) {
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.tar"`, prefix))
	w.WriteHeader(http.StatusOK)
	if err := d.WriteTar(r.Context(), w, files, prefix); err != nil {
		// Headers are gone: the truncated tar (no end marker) tells the client.
		s.logger().Warn("tar stream ended early", "path", r.URL.Path, "err", err)
	}
}

// deleteCheckpoint is DELETE /api/training/{job_id}/checkpoints/{name}. The newest
// complete checkpoint of a job that may still resume is kept (409).
func (s *Server) deleteCheckpoint(w http.ResponseWriter, r *http.Request) {
	j, d, name, err := s.checkpointArg(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	ctx := r.Context()
	cks, err := d.Checkpoints(ctx)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	found, newest := false, ""
	for _, c := range cks {
		if c.Name == name {
			found = true
		}
		if c.Complete {
			newest = c.Name
		}
	}
	if !found {
		s.Error(w, r, job.Errorf(job.ENotFound, "checkpoint %s not found", name))
		return
	}
	if !j.State.Terminal() && name == newest {
		s.Error(w, r, job.Errorf(job.EConflict, "checkpoint %s is the newest complete checkpoint of a %s job; it is needed to resume", name, j.State))
		return
	}
	if err := d.Remove(ctx, job.CheckpointsDir+"/"+name); err != nil {
		s.Error(w, r, err)
		return
	}
	s.logger().Info("checkpoint deleted", "job", j.ID, "checkpoint", name, "by", callerName(r))
	w.WriteHeader(http.StatusNoContent)
}

// getModel is GET /api/training/{job_id}/model: a tar stream of model/, or with
// ?file=<path> one file with Range and ETag (the sha256 from the manifest).
func (s *Server) getModel(w http.ResponseWriter, r *http.Request) {
	j, _, err := s.load(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	rel, err := fileArg(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	d, err := s.jobDir(j)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	ctx := r.Context()
	if rel == "" {
		files, err := d.Walk(ctx, job.ModelDir, 10000)
		if err != nil {
			s.Error(w, r, err)
			return
		}
		s.writeTar(w, r, d, files, shortID(j.ID)+"-model")
		return
	}
	s.serveFile(w, r, d, job.ModelDir, rel)
}

// fileArg returns the validated ?file= parameter, or "" when absent.
func fileArg(r *http.Request) (string, error) {
	if _, ok := r.URL.Query()["file"]; !ok {
		return "", nil
	}
	return artifact.Rel("file", r.URL.Query().Get("file"))
}

// serveFile serves dir/rel with Range support; the ETag is the file's sha256 from
// dir/manifest.json when listed there with the same size.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, d *artifact.Dir, dir, rel string) {
	ctx := r.Context()
	real, fi, err := d.StatIn(ctx, dir, rel)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	etag := ""
	if m, err := d.ReadManifest(ctx, dir); err == nil {
		if f, ok := m.Files[rel]; ok && f.Size == fi.Size() && isHex(f.SHA256) {
			etag = `"sha256-` + f.SHA256 + `"`
			w.Header().Set("X-Checksum-Sha256", f.SHA256)
		}
	}
	if etag == "" {
		etag = fmt.Sprintf(`W/"%x-%x"`, fi.Size(), fi.ModTime().UnixNano())
	}
	w.Header().Set("ETag", etag)
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s"`, path.Base(rel)))
	w.Header().Set("Content-Type", "application/octet-stream")
	rf := &remoteFile{ctx: ctx, d: d, path: real, size: fi.Size()}
	defer rf.Close() // a range that ends before the file does leaves the stream open
	http.ServeContent(w, r, "", fi.ModTime(), rf)
}

func isHex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// remoteFile is an io.ReadSeeker over an SFTP file that opens at the position of the
// first read, so http.ServeContent serves ranges without reading what it skips.
type remoteFile struct {
	ctx  context.Context
	d    *artifact.Dir
	path string
	size int64
	pos  int64
	rc   io.ReadCloser
}

func (f *remoteFile) Seek(off int64, whence int) (int64, error) {
	var p int64
	switch whence {
	case io.SeekStart:
		p = off
	case io.SeekCurrent:
		p = f.pos + off
	case io.SeekEnd:
		p = f.size + off
	}
	if p < 0 {
		return 0, errors.New("seek before start")
	}
	if p != f.pos && f.rc != nil {
		f.rc.Close()
		f.rc = nil
	}
	f.pos = p
	return p, nil
}

// Close closes the open stream, if any.
func (f *remoteFile) Close() error {
	if f.rc == nil {
		return nil
	}
	err := f.rc.Close()
	f.rc = nil
	return err
}

func (f *remoteFile) Read(b []byte) (int, error) {
	if f.pos >= f.size {
		return 0, io.EOF
	}
	if f.rc == nil {
		rc, err := f.d.OpenStream(f.ctx, f.path, f.pos)
		if err != nil {
			return 0, err
		}
		f.rc = rc
	}
	if rem := f.size - f.pos; int64(len(b)) > rem {
		b = b[:rem]
	}
	n, err := f.rc.Read(b)
	f.pos += int64(n)
	if errors.Is(err, io.EOF) && f.pos < f.size {
		err = io.ErrUnexpectedEOF
	}
	if f.pos >= f.size && f.rc != nil {
		f.rc.Close()
		f.rc = nil
	}
	return n, err
}

// getModelManifest is GET /api/training/{job_id}/model/manifest: model/manifest.json
// (file sizes and sha256 sums).
func (s *Server) getModelManifest(w http.ResponseWriter, r *http.Request) {
	_, d, err := s.loadDir(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	m, err := d.ReadManifest(r.Context(), job.ModelDir)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

// purgeJob is DELETE /api/training/{job_id}?purge=1: removes the job directory of a
// finished job on the cluster. The job's record stays.
func (s *Server) purgeJob(w http.ResponseWriter, r *http.Request) {
	s.jobOp(w, r, func(ctx context.Context, j job.Job) (any, error) {
		if !wantFlag(r, "purge") {
			return nil, job.Errorf(job.EInvalid, "purge: must be 1 to delete the job directory (DELETE without purge is not supported)")
		}
		if err := s.jobs().Purge(ctx, j, callerName(r)); err != nil {
			return nil, err
		}
		return client.Purged{JobID: j.ID, Purged: true}, nil
	})
}

// jobMetrics is GET /api/training/{job_id}/metrics?since_step=&max_points=: the
// job's metrics.jsonl as series for charts.
func (s *Server) jobMetrics(w http.ResponseWriter, r *http.Request) {
	j, _, err := s.load(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	since, err := queryInt(r, "since_step", -1, -1, 1<<53)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	maxPoints, err := queryInt(r, "max_points", 10000, 1, 100000)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	d, err := s.jobDir(j)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	series, err := d.Metrics(r.Context(), since, int(maxPoints))
	if err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, client.Metrics{JobID: j.ID, SinceStep: since, LastStep: series.LastStep,
		Series: series.Series, SkippedLines: series.Skipped, Progress: j.Progress})
}
