package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/ftgate/ftgate/internal/auth"
	"github.com/ftgate/ftgate/internal/auth/authtest"
	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/metrics"
	"github.com/ftgate/ftgate/internal/postgres"
	"github.com/ftgate/ftgate/internal/quota"
	"github.com/ftgate/ftgate/internal/webhook"
)

// The authorization matrix: every route class (public, user job routes, admin-only)
// against every kind of credential, through the real auth.Verifier and tokens from a
// real OpenID provider embedded in the test (forged ones for the negative cells).

const authzSpec = `{"method":"sft","model":"builtin:tiny","dataset":{"path":"/data/train.jsonl"},
 "hyperparameters":{"max_steps":20},"resources":{"gpus":1}}`

// Credential kinds. The first ones are invalid tokens: 401 on every protected route.
var invalidKinds = []string{"no token", "malformed", "opaque", "expired", "not yet valid", "wrong issuer",
	"wrong audience", "unknown signing key", "alg none", "HS256 with public key"}

// Valid kinds: alice owns job-a (queued) and job-p (paused); bob owns job-b. The
// tokens of root, ../x, a;b and an empty username verify but map to no allowed
// account: 403 on protected routes, and nothing reaches Slurm or the store.
var validKinds = []string{"alice", "bob", "admin", "root", "../x", "a;b", "empty username"}

type authzRoute struct {
	class, method, path, body string
	// want is the status for alice, bob, admin and the refused accounts (root and the
	// other bad usernames); invalid kinds get 401 on protected routes and 200 on
	// public ones.
	want [4]int
	// jobs, when set, is how many jobs the list answers for alice, bob and admin.
	jobs *[3]int
}

var authzRoutes = []authzRoute{
	{class: "public", method: "GET", path: "/health", want: [4]int{200, 200, 200, 200}},
	{class: "public", method: "GET", path: "/api/auth/config", want: [4]int{200, 200, 200, 200}},
	{class: "public", method: "GET", path: "/api/openapi.json", want: [4]int{200, 200, 200, 200}},
	{class: "public", method: "GET", path: "/ready", want: [4]int{200, 200, 200, 200}},
	{class: "public", method: "GET", path: "/metrics", want: [4]int{200, 200, 200, 200}},
	{class: "user", method: "GET", path: "/api/whoami", want: [4]int{200, 200, 200, 403}},
	{class: "user", method: "GET", path: "/api/system/status", want: [4]int{200, 200, 200, 403}},
	{class: "user", method: "GET", path: "/api/usage", want: [4]int{200, 200, 200, 403}},
	{class: "user", method: "POST", path: "/api/training/execute", body: authzSpec, want: [4]int{202, 202, 202, 403}},
	{class: "user", method: "GET", path: "/api/jobs", want: [4]int{200, 200, 200, 403}, jobs: &[3]int{2, 1, 3}},
	{class: "user", method: "GET", path: "/api/training/status/job-a", want: [4]int{200, 404, 200, 403}},
	{class: "user", method: "GET", path: "/api/training/status/job-b", want: [4]int{404, 200, 200, 403}},
	{class: "user", method: "GET", path: "/api/training/status/nope", want: [4]int{404, 404, 404, 403}},
	{class: "user", method: "POST", path: "/api/training/cancel/job-a", want: [4]int{200, 404, 200, 403}},
	{class: "user", method: "POST", path: "/api/training/pause/job-a", want: [4]int{200, 404, 200, 403}},
	{class: "user", method: "POST", path: "/api/training/resume/job-p", want: [4]int{200, 404, 200, 403}},
	// Streams and artifacts: this matrix has no event hub or file system behind the
	// cluster, so the owner and admin get 503 once authorization has passed (409 for
	// purging a queued job); another user gets 404 before anything is read.
	{class: "user", method: "GET", path: "/api/events", want: [4]int{503, 503, 503, 403}},
	{class: "user", method: "GET", path: "/api/training/job-a/events", want: [4]int{503, 404, 503, 403}},
	{class: "user", method: "GET", path: "/api/training/job-a/ws", want: [4]int{503, 404, 503, 403}},
	{class: "user", method: "GET", path: "/api/training/job-a/metrics", want: [4]int{503, 404, 503, 403}},
	{class: "user", method: "GET", path: "/api/training/job-a/logs", want: [4]int{503, 404, 503, 403}},
	{class: "user", method: "GET", path: "/api/training/job-a/checkpoints", want: [4]int{503, 404, 503, 403}},
	{class: "user", method: "GET", path: "/api/training/job-a/checkpoints/step-10", want: [4]int{503, 404, 503, 403}},
	{class: "user", method: "DELETE", path: "/api/training/job-a/checkpoints/step-10", want: [4]int{503, 404, 503, 403}},
	{class: "user", method: "GET", path: "/api/training/job-a/model", want: [4]int{503, 404, 503, 403}},
	{class: "user", method: "GET", path: "/api/training/job-a/model/manifest", want: [4]int{503, 404, 503, 403}},
	{class: "user", method: "PUT", path: "/api/training/job-a/pin", want: [4]int{200, 404, 200, 403}},
	{class: "user", method: "DELETE", path: "/api/training/job-a/pin", want: [4]int{200, 404, 200, 403}},
	{class: "user", method: "DELETE", path: "/api/training/job-a?purge=1", want: [4]int{409, 404, 409, 403}},
	// Templates: this matrix has no template store (503 once authorization has passed).
	{class: "user", method: "GET", path: "/api/templates", want: [4]int{503, 503, 503, 403}},
	{class: "user", method: "POST", path: "/api/templates", body: `{"name":"t","spec":{}}`, want: [4]int{503, 503, 503, 403}},
	{class: "user", method: "GET", path: "/api/templates/t", want: [4]int{503, 503, 503, 403}},
	{class: "user", method: "PUT", path: "/api/templates/t", body: `{"spec":{}}`, want: [4]int{503, 503, 503, 403}},
	{class: "user", method: "DELETE", path: "/api/templates/t", want: [4]int{503, 503, 503, 403}},
	{class: "user", method: "POST", path: "/api/training/execute", body: `{"template":"t"}`, want: [4]int{503, 503, 503, 403}},
	// Webhooks: alice owns hook-a. Another user's endpoint answers 404.
	{class: "user", method: "POST", path: "/api/webhooks", body: `{"url":"http://127.0.0.1:9/x","events":["job.failed"]}`, want: [4]int{201, 201, 201, 403}},
	{class: "user", method: "GET", path: "/api/webhooks", want: [4]int{200, 200, 200, 403}},
	{class: "user", method: "DELETE", path: "/api/webhooks/" + hookA, want: [4]int{200, 404, 200, 403}},
	{class: "user", method: "GET", path: "/api/webhooks/" + hookA + "/deliveries", want: [4]int{200, 404, 200, 403}},
	{class: "admin", method: "GET", path: "/api/jobs?user=bob", want: [4]int{403, 200, 200, 403}, jobs: &[3]int{0, 1, 1}},
	{class: "admin", method: "GET", path: "/api/usage?user=bob", want: [4]int{403, 200, 200, 403}},
	{class: "admin", method: "GET", path: "/api/jobs?user=alice", want: [4]int{200, 403, 200, 403}, jobs: &[3]int{2, 0, 2}},
}

func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	p := authtest.New(t)
	v, err := auth.New(context.Background(), config.OIDC{
		Issuer: p.Issuer, Audiences: []string{authtest.Audience}, ClientID: authtest.ClientID,
		UsernameClaim: "preferred_username", GroupsClaim: "groups", AdminGroups: []string{"ftgate-admins"},
		DenyUsers: []string{"root", "daemon"}, ClockSkew: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	tokens := authzTokens(t, p)

	for _, rt := range authzRoutes {
		for _, kind := range append(slices.Clone(invalidKinds), validKinds...) {
			want := http.StatusUnauthorized
			if i := slices.Index(validKinds, kind); i >= 0 {
				want = rt.want[min(i, 3)]
			} else if rt.class == "public" {
				want = http.StatusOK
			}
			t.Run(rt.class+" "+rt.method+" "+rt.path+" as "+kind, func(t *testing.T) {
				t.Parallel()
				store, fs, hooks := newMemStore(), newFakeSlurm(), &authzHooks{}
				srv := &Server{Auth: v, Store: store, MaxBody: 4096, Version: "test", Metrics: metrics.New(),
					Webhooks:   Webhooks{Store: hooks, Check: func(_ context.Context, _, raw string) (string, error) { return raw, nil }},
					AuthConfig: AuthConfig{Issuer: p.Issuer, ClientID: authtest.ClientID, Audience: authtest.Audience},
					Clusters: []*Cluster{{
						Config: config.Cluster{Name: "dev", JobRoot: "/jobs", Partitions: []string{"gpu"}, DefaultPartition: "gpu", ProbeUser: "alice"},
						Slurm:  fs, Files: fs, Ping: func(context.Context) error { return nil },
					}},
				}
				req := httptest.NewRequest(rt.method, rt.path, strings.NewReader(rt.body))
				if tok := tokens[kind]; tok != "" {
					req.Header.Set("Authorization", "Bearer "+tok)
				}
				rec := httptest.NewRecorder()
				srv.Handler().ServeHTTP(rec, req)
				if rec.Code != want {
					t.Fatalf("status %d, want %d: %s", rec.Code, want, rec.Body)
				}
				if rec.Code == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
					t.Errorf("401 without WWW-Authenticate")
				}
				if rec.Code == http.StatusUnauthorized || rec.Code == http.StatusForbidden || rec.Code == http.StatusNotFound {
					if calls := fs.Calls(); calls != "" {
						t.Errorf("refused request reached Slurm: %s", calls)
					}
					if changed := store.changed() + hooks.changed(); changed != "" {
						t.Errorf("refused request changed the store: %s", changed)
					}
				}
				if i := slices.Index(validKinds, kind); rt.jobs != nil && i >= 0 && i < 3 && rec.Code == http.StatusOK {
					var body struct {
						Jobs []job.Job `json:"jobs"`
					}
					if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
						t.Fatal(err)
					}
					if len(body.Jobs) != rt.jobs[i] {
						t.Errorf("listed %d jobs, want %d", len(body.Jobs), rt.jobs[i])
					}
					for _, j := range body.Jobs {
						if kind != "admin" && j.User != kind {
							t.Errorf("%s sees %s's job %s", kind, j.User, j.ID)
						}
					}
				}
			})
		}
	}
}

// authzTokens returns a bearer token per credential kind.
func authzTokens(t *testing.T, p *authtest.Provider) map[string]string {
	t.Helper()
	foreign, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(mod func(map[string]any)) string {
		c := p.Claims("sub-alice")
		mod(c)
		tok, err := p.Sign(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	now := time.Now()
	toks := map[string]string{
		"no token":      "",
		"malformed":     "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln",
		"opaque":        "2YotnFZFEjr1zCsicMWpAA",
		"expired":       sign(func(c map[string]any) { c["exp"] = now.Add(-2 * time.Minute).Unix() }),
		"not yet valid": sign(func(c map[string]any) { c["nbf"] = now.Add(2 * time.Minute).Unix() }),
		"wrong issuer":  sign(func(c map[string]any) { c["iss"] = "http://127.0.0.1:1/other" }),
		// The CLI's own client id is not the API's audience.
		"wrong audience": sign(func(c map[string]any) { c["aud"] = []string{authtest.ClientID} }),
		"alg none":       authtest.Unsigned(p.Claims("sub-alice")),
	}
	if toks["unknown signing key"], err = authtest.SignWith(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: foreign, KeyID: "key-1"}},
		(&jose.SignerOptions{}).WithType("JWT"), p.Claims("sub-alice")); err != nil {
		t.Fatal(err)
	}
	if toks["HS256 with public key"], err = p.HS256WithPublicKey(p.Claims("sub-alice")); err != nil {
		t.Fatal(err)
	}
	// The valid kinds are real tokens from the provider (authorization code + PKCE).
	for kind, sub := range map[string]string{"alice": "sub-alice", "bob": "sub-bob", "admin": "sub-admin", "root": "sub-root",
		"../x": "sub-dotdot", "a;b": "sub-semicolon", "empty username": "sub-empty"} {
		toks[kind] = p.AccessToken(t, sub)
	}
	for _, k := range append(slices.Clone(invalidKinds), validKinds...) {
		if _, ok := toks[k]; !ok {
			t.Fatalf("no token for %q", k)
		}
	}
	return toks
}

// memStore is an in-memory Store holding alice's queued job-a and paused job-p and
// bob's queued job-b.
type memStore struct {
	mu      sync.Mutex
	jobs    map[string]job.Job
	changes []string
	pinned  map[string]bool
	purged  map[string]bool
	runs    map[string][]quota.Run // by Unix user, for GPU-hours
	groups  map[string][]string    // UserGroups' answers
}

// seedSpec is the spec of memStore's jobs: authzSpec, normalised.
var seedSpec = func() job.Spec {
	spec, err := job.DecodeSpec(strings.NewReader(authzSpec))
	if err != nil {
		panic(err)
	}
	spec.Resources.Cluster = "dev"
	spec.Normalize()
	return spec
}()

func newMemStore() *memStore {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &memStore{jobs: map[string]job.Job{}, pinned: map[string]bool{}, purged: map[string]bool{}}
	for i, j := range []job.Job{
		{ID: "job-a", OwnerSubject: "sub-alice", User: "alice", State: job.Queued, SlurmID: "101"},
		{ID: "job-p", OwnerSubject: "sub-alice", User: "alice", State: job.Paused, SlurmID: "102"},
		{ID: "job-b", OwnerSubject: "sub-bob", User: "bob", State: job.Queued, SlurmID: "103"},
	} {
		j.Cluster, j.JobDir, j.CreatedAt = "dev", "/jobs/"+j.User+"/"+j.ID, t0.Add(time.Duration(i)*time.Minute)
		j.Spec = seedSpec
		s.jobs[j.ID] = j
	}
	return s
}

func (s *memStore) changed() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.changes, "; ")
}

func (s *memStore) Create(_ context.Context, j job.Job, lim quota.Limits) (job.Job, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := lim.Check(s.usage(j.User), quota.Add{Active: 1, Queued: 1, GPUs: j.Spec.Resources.TotalGPUs()}); err != nil {
		return job.Job{}, false, err
	}
	j.CreatedAt = time.Now()
	s.jobs[j.ID] = j
	s.changes = append(s.changes, "create "+j.ID)
	return j, true, nil
}

func (s *memStore) Get(_ context.Context, id string) (job.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return job.Job{}, job.Errorf(job.ENotFound, "job %s not found", id)
	}
	return j, nil
}

func (s *memStore) List(_ context.Context, f postgres.Filter) ([]job.Job, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := make([]job.Job, 0, len(s.jobs))
	for _, j := range s.jobs {
		all = append(all, j)
	}
	return postgres.Page(f, all, time.Now())
}

func (s *memStore) Transition(_ context.Context, id string, c job.Change) (job.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return job.Job{}, job.Errorf(job.ENotFound, "job %s not found", id)
	}
	if j.State != c.From {
		return job.Job{}, job.Errorf(job.EConflict, "job %s is %s, not %s", id, j.State, c.From)
	}
	j.State = c.To
	s.jobs[id] = j
	s.changes = append(s.changes, "transition "+id+" to "+string(c.To))
	return j, nil
}

func (s *memStore) CountByState(context.Context) ([]postgres.StateCount, error) { return nil, nil }

func (s *memStore) Runs(context.Context) (map[string]postgres.Run, error) {
	return map[string]postgres.Run{}, nil
}

func (s *memStore) Ping(context.Context) error { return nil }

// usage counts user's jobs as the Postgres store does, with the runs in s.runs.
func (s *memStore) usage(user string) quota.Usage {
	u := quota.Usage{At: time.Now(), Runs: s.runs[user]}
	for _, j := range s.jobs {
		if j.User == user {
			u.Count(j.State, j.Spec.Resources.TotalGPUs())
		}
	}
	return u
}

func (s *memStore) Usage(_ context.Context, user string, _ quota.Limits) (quota.Usage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.usage(user), nil
}

func (s *memStore) UserGroups(_ context.Context, user string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.groups[user], nil
}

func (s *memStore) ByIdempotencyKey(_ context.Context, owner, key string) (job.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range s.jobs {
		if j.OwnerSubject == owner && j.IdempotencyKey == key {
			return j, nil
		}
	}
	return job.Job{}, job.Errorf(job.ENotFound, "job not found")
}

func (s *memStore) SetPinned(_ context.Context, id string, pinned bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pinned[id] = pinned
	s.changes = append(s.changes, fmt.Sprintf("pin %s %v", id, pinned))
	return nil
}

func (s *memStore) MarkPurged(_ context.Context, id string, _ time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purged[id] = true
	return nil
}

// TestAuditThroughRouter wraps the real route table as cmd/gateway does and checks one
// audit record per state-changing request: who, what, which job, result.
func TestAuditThroughRouter(t *testing.T) {
	t.Parallel()
	p := authtest.New(t)
	v, err := auth.New(context.Background(), config.OIDC{
		Issuer: p.Issuer, Audiences: []string{authtest.Audience}, UsernameClaim: "preferred_username",
		GroupsClaim: "groups", AdminGroups: []string{"ftgate-admins"}, DenyUsers: []string{"root"}, ClockSkew: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	fs := newFakeSlurm()
	srv := &Server{Auth: v, Store: newMemStore(), MaxBody: 4096, Clusters: []*Cluster{{
		Config: config.Cluster{Name: "dev", JobRoot: "/jobs", Partitions: []string{"gpu"}, DefaultPartition: "gpu"},
		Slurm:  fs, Files: fs,
	}}}
	var buf bytes.Buffer
	h := auth.NewAudit(slog.New(slog.NewJSONHandler(&buf, nil))).Middleware(srv.Handler())
	alice, bob, root := p.AccessToken(t, "sub-alice"), p.AccessToken(t, "sub-bob"), p.AccessToken(t, "sub-root")
	for _, rq := range []struct{ method, path, tok, body string }{
		{"POST", "/api/training/cancel/job-a", bob, ""},
		{"POST", "/api/training/cancel/job-a", alice, ""},
		{"GET", "/api/training/status/job-a", alice, ""},
		{"POST", "/api/training/pause/job-b", root, ""},
		{"POST", "/api/training/resume/job-p", "", ""},
		{"POST", "/api/training/execute", alice, authzSpec},
	} {
		req := httptest.NewRequest(rq.method, rq.path, strings.NewReader(rq.body))
		if rq.tok != "" {
			req.Header.Set("Authorization", "Bearer "+rq.tok)
		}
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		if m["msg"] != "audit" {
			continue
		}
		jobID, _ := m["job"].(string)
		if strings.HasPrefix(rqPath(m), "/api/training/execute") && jobID != "" {
			jobID = "<new>"
		}
		if rid, _ := m["request_id"].(string); rid == "" {
			t.Errorf("audit record without request_id: %v", m)
		}
		got = append(got, fmt.Sprintf("%v %v job=%s user=%v status=%v result=%v reason=%v", m["method"], m["route"], jobID, m["user"], m["status"], m["result"], m["reason"]))
	}
	want := []string{
		"POST /api/training/cancel/{job_id} job=job-a user=bob status=404 result=error reason=<nil>",
		"POST /api/training/cancel/{job_id} job=job-a user=alice status=200 result=ok reason=<nil>",
		`POST /api/training/pause/{job_id} job=job-b user=<nil> status=403 result=denied reason=username "root" may not use the gateway`,
		"POST /api/training/resume/{job_id} job=job-p user=<nil> status=401 result=denied reason=missing Authorization header: send Authorization: Bearer <token> (ftctl auth token prints one)",
		"POST /api/training/execute job=<new> user=alice status=202 result=ok reason=<nil>",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func rqPath(m map[string]any) string { s, _ := m["path"].(string); return s }

// TestAuthorizationMatrixCoversEveryRoute fails when a route is added without a row in
// the matrix.
func TestAuthorizationMatrixCoversEveryRoute(t *testing.T) {
	t.Parallel()
	covered := map[string]bool{}
	for _, rt := range authzRoutes {
		p, _, _ := strings.Cut(rt.path, "?")
		for _, id := range []string{"job-a", "job-b", "job-p"} {
			p = strings.ReplaceAll(p, "/"+id, "/{job_id}")
		}
		p = strings.ReplaceAll(p, "/step-10", "/{name}")
		p = strings.ReplaceAll(p, "/api/templates/t", "/api/templates/{name}")
		p = strings.ReplaceAll(p, "/"+hookA, "/{webhook_id}")
		covered[rt.method+" "+p] = true
	}
	routes, ok := (&Server{}).Handler().(chi.Routes)
	if !ok {
		t.Fatal("Handler is not a chi router")
	}
	err := chi.Walk(routes, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if !covered[method+" "+route] {
			t.Errorf("route %s %s has no row in the authorization matrix", method, route)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// hookA is alice's webhook endpoint in the authorization matrix.
const hookA = "00000000-0000-4000-8000-0000000000a1"

// authzHooks is the matrix's webhook store: alice's hookA, and a record of changes.
type authzHooks struct {
	mu      sync.Mutex
	changes []string
}

func (h *authzHooks) changed() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.changes, "; ")
}

func (h *authzHooks) CreateEndpoint(_ context.Context, e webhook.Endpoint, _ int) (webhook.Endpoint, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.changes = append(h.changes, "create "+e.OwnerSubject)
	e.ID = "00000000-0000-4000-8000-0000000000b1"
	return e, nil
}

func (h *authzHooks) Endpoint(_ context.Context, id string) (webhook.Endpoint, error) {
	if id != hookA {
		return webhook.Endpoint{}, job.Errorf(job.ENotFound, "webhook %s not found", id)
	}
	return webhook.Endpoint{ID: hookA, OwnerSubject: "sub-alice", User: "alice", URL: "http://127.0.0.1:9/a", Events: []string{"job.failed"}}, nil
}

func (h *authzHooks) Endpoints(_ context.Context, owner, _ string, _ int) ([]webhook.Endpoint, string, error) {
	if owner != "sub-alice" {
		return nil, "", nil
	}
	e, err := h.Endpoint(context.Background(), hookA)
	return []webhook.Endpoint{e}, "", err
}

func (h *authzHooks) DeleteEndpoint(_ context.Context, id string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.changes = append(h.changes, "delete "+id)
	return nil
}

func (h *authzHooks) Deliveries(_ context.Context, _, _ string, _ int) ([]webhook.Delivery, string, error) {
	return nil, "", nil
}
