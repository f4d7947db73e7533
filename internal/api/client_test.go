package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/api/apitest"
	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/metrics"
	"github.com/ftgate/ftgate/internal/slurm"
)

// localFS is an artifact.FS over a local directory standing in for the cluster's
// file system: cluster path p is root+p.
type localFS struct {
	*fakeSlurm
	root string
}

func (f localFS) Lstat(_ context.Context, _, p string) (os.FileInfo, error) {
	return os.Lstat(f.root + p)
}

func (f localFS) ReadDir(_ context.Context, _, p string) ([]os.FileInfo, error) {
	ents, err := os.ReadDir(f.root + p)
	if err != nil {
		return nil, err
	}
	var out []os.FileInfo
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			return nil, err
		}
		out = append(out, fi)
	}
	return out, nil
}

func (f localFS) RealPath(_ context.Context, _, p string) (string, error) {
	real, err := filepath.EvalSymlinks(f.root + p)
	if err != nil {
		return "", err
	}
	return strings.TrimPrefix(real, f.root), nil
}

func (f localFS) Open(_ context.Context, _, p string, off int64) (io.ReadCloser, error) {
	fh, err := os.Open(f.root + p)
	if err != nil {
		return nil, err
	}
	if _, err := fh.Seek(off, io.SeekStart); err != nil {
		fh.Close()
		return nil, err
	}
	return fh, nil
}

func (f localFS) ReadFile(_ context.Context, _, p string, max int64) ([]byte, error) {
	b, err := os.ReadFile(f.root + p)
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", p, max)
	}
	return b, err
}

func (f localFS) Run(_ context.Context, _ string, argv []string, _ io.Reader) ([]byte, []byte, error) {
	if len(argv) == 4 && argv[0] == "rm" && argv[1] == "-rf" && argv[2] == "--" {
		return nil, nil, os.RemoveAll(f.root + argv[3])
	}
	return nil, []byte("not supported"), errors.New("localFS: unsupported command " + strings.Join(argv, " "))
}

func (f localFS) write(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(f.root+p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.root+p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// recordingTransport keeps every answer's status and body for the schema check.
type recordingTransport struct {
	mu   sync.Mutex
	seen []recorded
}

type recorded struct {
	method, path string
	status       int
	body         []byte
	contentType  string
}

func (rt *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		rt.mu.Lock()
		rt.seen = append(rt.seen, recorded{r.Method, r.URL.Path, resp.StatusCode, b, resp.Header.Get("Content-Type")})
		rt.mu.Unlock()
	}
	return resp, nil
}

// TestTypedClient drives every JSON route through the typed client against the real
// handlers (fakes behind them), and checks each answer's bytes against the
// openapi.json schema of its route and status.
func TestTypedClient(t *testing.T) {
	t.Parallel()
	fs := newFakeSlurm()
	fs.status["101"] = fsStatus("PENDING")
	lfs := localFS{fakeSlurm: fs, root: t.TempDir()}
	store := newMemStore()
	done := store.jobs["job-a"]
	done.ID, done.State, done.JobDir = "job-d", job.Succeeded, "/jobs/alice/job-d"
	store.jobs["job-d"] = done
	lfs.write(t, "/jobs/alice/job-d/metrics.jsonl", `{"step":1,"loss":2.5}`+"\n"+`{"step":2,"loss":2.0}`+"\n")
	lfs.write(t, "/jobs/alice/job-d/checkpoints/step-2/manifest.json", `{"format":1,"step":2,"metric":2.0,"files":{"w.bin":{"size":3,"sha256":"`+strings.Repeat("a", 64)+`"}}}`)
	lfs.write(t, "/jobs/alice/job-d/checkpoints/step-2/w.bin", "abc")
	lfs.write(t, "/jobs/alice/job-d/model/manifest.json", `{"format":1,"step":2,"files":{"w.bin":{"size":3,"sha256":"`+strings.Repeat("b", 64)+`"}}}`)
	lfs.write(t, "/jobs/alice/job-d/model/w.bin", "xyz")
	lfs.write(t, "/jobs/alice/job-d/slurm-101.out", "one\ntwo\n")
	store.jobs["job-d"] = func() job.Job { j := store.jobs["job-d"]; j.SlurmID = "101"; return j }()

	srv := &Server{Auth: tokenAuth{}, Store: store, Templates: apitest.NewMemTemplates(time.Now), Log: slog.New(slog.DiscardHandler), MaxBody: 4096, Version: "test", Metrics: metrics.New(),
		AuthConfig: AuthConfig{Issuer: "https://idp.test", ClientID: "ftctl", Scopes: []string{"openid"}},
		Clusters: []*Cluster{{
			Config: config.Cluster{Name: "dev", JobRoot: "/jobs", Partitions: []string{"gpu"}, DefaultPartition: "gpu", ProbeUser: "alice"},
			Slurm:  fs, Files: lfs, Ping: func(context.Context) error { return nil },
		}},
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	rec := &recordingTransport{}
	c := client.New(ts.URL, &http.Client{Transport: authTransport{rec, "alice"}})
	ctx := context.Background()

	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	h, err := c.Health(ctx)
	must("health", err)
	if h.Version != "test" {
		t.Errorf("health: %+v", h)
	}
	ac, err := c.AuthConfig(ctx)
	must("auth config", err)
	if ac.ClientID != "ftctl" {
		t.Errorf("auth config: %+v", ac)
	}
	who, err := c.Whoami(ctx)
	must("whoami", err)
	if who.Username != "alice" || who.Subject != "sub-alice" {
		t.Errorf("whoami: %+v", who)
	}
	spec := json.RawMessage(authzSpec)
	dry, err := c.DryRun(ctx, spec)
	must("dry run", err)
	if !dry.DryRun || dry.Cluster != "dev" || !strings.Contains(dry.Script, "#SBATCH") {
		t.Errorf("dry run: %+v", dry)
	}
	j, replayed, err := c.Execute(ctx, spec, client.ExecuteOptions{IdempotencyKey: "k1"})
	must("execute", err)
	if j.State != job.Submitting || replayed {
		t.Errorf("execute: %s replayed=%v", j.State, replayed)
	}
	got, err := c.Job(ctx, j.ID)
	must("status", err)
	if got.ID != j.ID {
		t.Errorf("status: %+v", got)
	}
	list, err := c.Jobs(ctx, client.ListOptions{Limit: 10, States: []client.State{job.Queued, job.Submitting}})
	must("list", err)
	if len(list.Jobs) == 0 {
		t.Errorf("list: %+v", list)
	}
	paused, err := c.Pause(ctx, "job-a")
	must("pause", err)
	if paused.State != job.Paused {
		t.Errorf("pause: %s", paused.State)
	}
	resumed, err := c.Resume(ctx, "job-a")
	must("resume", err)
	if resumed.State != job.Queued {
		t.Errorf("resume: %s", resumed.State)
	}
	cancelled, err := c.Cancel(ctx, "job-a")
	must("cancel", err)
	if cancelled.State != job.Cancelled {
		t.Errorf("cancel: %s", cancelled.State)
	}
	sys, err := c.SystemStatus(ctx)
	must("system status", err)
	if len(sys.Clusters) != 1 || len(sys.Clusters[0].Partitions) != 1 || sys.Clusters[0].Partitions[0].GPUsFree != 3 {
		t.Errorf("system status: %+v", sys)
	}
	cks, err := c.Checkpoints(ctx, "job-d")
	must("checkpoints", err)
	if len(cks.Checkpoints) != 1 || cks.Checkpoints[0].Name != "step-2" || !cks.Checkpoints[0].Complete {
		t.Errorf("checkpoints: %+v", cks)
	}
	man, err := c.ModelManifest(ctx, "job-d")
	must("manifest", err)
	if man.Files["w.bin"].Size != 3 {
		t.Errorf("manifest: %+v", man)
	}
	m, err := c.Metrics(ctx, "job-d", client.MetricsOptions{SinceStep: -1})
	must("metrics", err)
	if m.LastStep != 2 || len(m.Series["loss"]) != 2 {
		t.Errorf("metrics: %+v", m)
	}
	resp, err := c.Logs(ctx, "job-d", client.LogOptions{Tail: 1})
	must("logs", err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "two\n" {
		t.Errorf("logs tail 1: %q", b)
	}
	resp, err = c.Download(ctx, "job-d", "", "w.bin", nil)
	must("download", err)
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "xyz" || resp.Header.Get("X-Checksum-Sha256") != strings.Repeat("b", 64) {
		t.Errorf("download: %q %v", b, resp.Header)
	}
	pin, err := c.Pin(ctx, "job-d", true)
	must("pin", err)
	if !pin.Pinned || !store.pinned["job-d"] {
		t.Errorf("pin: %+v", pin)
	}
	pin, err = c.Pin(ctx, "job-d", false)
	must("unpin", err)
	if pin.Pinned {
		t.Errorf("unpin: %+v", pin)
	}
	purged, err := c.Purge(ctx, "job-d")
	must("purge", err)
	if !purged.Purged {
		t.Errorf("purge: %+v", purged)
	}
	if _, err := os.Stat(lfs.root + "/jobs/alice/job-d"); !os.IsNotExist(err) {
		t.Errorf("purge left the job directory: %v", err)
	}
	tpl, err := c.CreateTemplate(ctx, client.TemplateRequest{Name: "base", FromJob: "job-d"})
	must("create template", err)
	if tpl.Version != 1 || tpl.FromJob != "job-d" || tpl.Visibility != job.VisibilityPrivate {
		t.Errorf("create template: %+v", tpl)
	}
	tpl, err = c.UpdateTemplate(ctx, "base", client.TemplateRequest{Spec: json.RawMessage(`{"model":"builtin:tiny","hyperparameters":{"max_steps":5}}`)})
	must("update template", err)
	if tpl.Version != 2 {
		t.Errorf("update template: %+v", tpl)
	}
	tpl, err = c.Template(ctx, "base@1")
	must("template", err)
	if tpl.Version != 1 || tpl.LatestVersion != 2 || !strings.Contains(string(tpl.Spec), `"dataset"`) {
		t.Errorf("template base@1: %+v", tpl)
	}
	tl, err := c.Templates(ctx, client.TemplateListOptions{Limit: 5, Visibility: job.VisibilityPrivate})
	must("templates", err)
	if len(tl.Templates) != 1 || tl.Templates[0].Name != "base" || tl.NextCursor != "" {
		t.Errorf("templates: %+v", tl)
	}
	fromTpl, _, err := c.Execute(ctx, client.TemplateRun{Template: "base@1", Overrides: json.RawMessage(`{"hyperparameters":{"max_steps":3}}`)}, client.ExecuteOptions{})
	must("execute from a template", err)
	if fromTpl.Template == nil || fromTpl.Template.String() != "base@1" || fromTpl.Spec.Hyperparameters.MaxSteps != 3 {
		t.Errorf("execute from a template: %+v %+v", fromTpl.Template, fromTpl.Spec.Hyperparameters)
	}
	dryTpl, err := c.DryRun(ctx, client.TemplateRun{Template: "base@1"})
	must("dry run from a template", err)
	if dryTpl.Template == nil || dryTpl.Template.Version != 1 {
		t.Errorf("dry run from a template: %+v", dryTpl.Template)
	}
	del, err := c.DeleteTemplate(ctx, "base")
	must("delete template", err)
	if !del.Deleted || del.Name != "base" {
		t.Errorf("delete template: %+v", del)
	}
	if _, err := c.Template(ctx, "base"); !client.IsStatus(err, 404) {
		t.Errorf("deleted template: %v", err)
	}
	// Error answers decode to *client.Error.
	_, err = c.Job(ctx, "job-b")
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != 404 || ce.Code != job.ENotFound || !client.IsStatus(err, 404) {
		t.Errorf("another user's job: %v", err)
	}
	_, err = c.Jobs(ctx, client.ListOptions{User: "bob"})
	if !client.IsStatus(err, 403) {
		t.Errorf("list bob's jobs: %v", err)
	}

	// Every JSON answer matches the document.
	doc := loadOpenAPI(t)
	chk := &schemaChecker{doc: doc, seen: map[string]bool{}}
	table := srv.routes()
	if len(rec.seen) < 18 {
		t.Fatalf("only %d JSON answers recorded", len(rec.seen))
	}
	for _, r := range rec.seen {
		rt, ok := matchRoute(table, r.method, r.path)
		if !ok {
			t.Errorf("%s %s: no route", r.method, r.path)
			continue
		}
		raw := doc.Paths[rt.pattern][strings.ToLower(rt.method)]
		var op oaOperation
		if err := json.Unmarshal(raw, &op); err != nil {
			t.Fatal(err)
		}
		schema := op.Responses[strconv.Itoa(r.status)].Content["application/json"].Schema
		if schema == nil {
			t.Errorf("%s %s answered %d, which openapi.json does not document", r.method, r.path, r.status)
			continue
		}
		var v any
		if err := json.Unmarshal(r.body, &v); err != nil {
			t.Errorf("%s %s: %v", r.method, r.path, err)
			continue
		}
		chk.validate(t, fmt.Sprintf("%s %s %d", r.method, r.path, r.status), schema, v)
	}
}

func fsStatus(state string) slurm.Status { return slurm.Status{State: slurm.State(state)} }

// authTransport adds "Bearer <user>" (tokenAuth's scheme).
type authTransport struct {
	base http.RoundTripper
	user string
}

func (a authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+a.user)
	return a.base.RoundTrip(r)
}

// matchRoute finds the table row serving method and path.
func matchRoute(table []route, method, path string) (route, bool) {
	segs := strings.Split(path, "/")
	for _, rt := range table {
		if rt.method != method {
			continue
		}
		ps := strings.Split(rt.pattern, "/")
		if len(ps) != len(segs) {
			continue
		}
		ok := true
		for i := range ps {
			if !strings.HasPrefix(ps[i], "{") && ps[i] != segs[i] {
				ok = false
				break
			}
		}
		if ok {
			return rt, true
		}
	}
	return route{}, false
}

// validate checks a decoded JSON value against schema: types, enums, required
// properties, and no property the schema does not list.
func (c *schemaChecker) validate(t *testing.T, where string, s map[string]any, v any) {
	t.Helper()
	s = c.resolve(t, where, s)
	if v == nil {
		if s["nullable"] != true && len(s) > 0 && s["type"] != nil {
			// Go writes nil slices and maps as null only where the type allows it.
			if s["type"] != "array" && s["type"] != "object" {
				t.Errorf("%s: null, schema %v is not nullable", where, s["type"])
			}
		}
		return
	}
	typ, _ := s["type"].(string)
	switch typ {
	case "":
		return
	case "string":
		str, ok := v.(string)
		if !ok {
			t.Errorf("%s: want a string, got %T", where, v)
			return
		}
		if enum, ok := s["enum"].([]any); ok && !containsAny(enum, str) {
			t.Errorf("%s: %q is not one of %v", where, str, enum)
		}
	case "integer":
		f, ok := v.(float64)
		if !ok || f != float64(int64(f)) {
			t.Errorf("%s: want an integer, got %v", where, v)
		}
	case "number":
		if _, ok := v.(float64); !ok {
			t.Errorf("%s: want a number, got %T", where, v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			t.Errorf("%s: want a boolean, got %T", where, v)
		}
	case "array":
		arr, ok := v.([]any)
		if !ok {
			t.Errorf("%s: want an array, got %T", where, v)
			return
		}
		items, _ := s["items"].(map[string]any)
		for i, e := range arr {
			c.validate(t, fmt.Sprintf("%s[%d]", where, i), items, e)
		}
	case "object":
		obj, ok := v.(map[string]any)
		if !ok {
			t.Errorf("%s: want an object, got %T", where, v)
			return
		}
		props, _ := s["properties"].(map[string]any)
		ap, _ := s["additionalProperties"].(map[string]any)
		for k, e := range obj {
			if ps, ok := props[k].(map[string]any); ok {
				c.validate(t, where+"."+k, ps, e)
			} else if ap != nil {
				c.validate(t, where+"{"+k+"}", ap, e)
			} else {
				t.Errorf("%s: property %q is not in openapi.json", where, k)
			}
		}
		req, _ := s["required"].([]any)
		for _, r := range req {
			if _, ok := obj[r.(string)]; !ok {
				t.Errorf("%s: required property %q missing", where, r)
			}
		}
	default:
		t.Errorf("%s: schema type %q not handled", where, typ)
	}
}

func containsAny(list []any, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}
