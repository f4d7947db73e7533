package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/postgres/pgtest"
	"github.com/ftgate/ftgate/internal/stacktest"
)

// dashboardAddr is fixed: Dex has the dashboard's redirect URI registered for it
// (dev/stack).
const dashboardAddr = "127.0.0.1:18080"

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

// TestIntegrationDashboardBrowser builds and starts a real gateway on the stack with the
// dashboard's Dex client, then runs the browser test web/e2e/dashboard.e2e.mjs
// (headless Debian Chromium driven by playwright-core): login through Dex's page,
// submit from the editor after a bad field's error, the live loss chart, pause/resume to
// success, a model file checked against the manifest, bob's isolation, an ended session
// returning to its page, a cancelled job's reason, webhooks (a bad URL's error, the
// secret shown once, the cancelled job's delivery to a receiver this test runs, delete),
// the usage page against /api/usage (and an admin's lookup), and the job page's paint
// time with 2,000 points. Screenshots land in web/.artifacts/.
func TestIntegrationDashboardBrowser(t *testing.T) {
	st := stacktest.Require(t)
	root := repoRoot()
	need := func(what, hint string, err error) {
		if err == nil {
			return
		}
		if stacktest.Required() {
			t.Fatalf("FTGATE_REQUIRE_STACK=1 but %s is missing: %v (%s)", what, err, hint)
		}
		t.Skipf("%s is missing: %v (%s)", what, err, hint)
	}
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	_, err := os.Stat(chromium)
	need("chromium", "dev/stack install", err)
	node, err := exec.LookPath("node")
	need("node", "install Node.js 20", err)
	_, err = os.Stat(filepath.Join(root, "web", "node_modules", "playwright-core"))
	need("web/node_modules", "make web-deps", err)
	if resp, err := http.Get("http://" + dashboardAddr + "/health"); err == nil {
		resp.Body.Close()
		t.Fatalf("%s is taken by another gateway; the dashboard test needs it (Dex's registered redirect URI)", dashboardAddr)
	}

	// The webhook receiver: on loopback, which the gateway's webhooks.allow lists.
	var (
		hooksMu sync.Mutex
		hooks   []http.Header
	)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hooksMu.Lock()
		hooks = append(hooks, r.Header.Clone())
		hooksMu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()

	bin := filepath.Join(t.TempDir(), "gateway")
	build := exec.Command("go", "build", "-o", bin, "./cmd/gateway")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	_, schema := pgtest.Open(t, st.PGURL, true)
	sep := "?"
	if strings.Contains(st.PGURL, "?") {
		sep = "&"
	}
	logPath := filepath.Join(t.TempDir(), "gateway.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	gw := exec.Command(bin, "serve", "--config", st.GatewayConfig)
	gw.Env = append(os.Environ(), "FTGATE_DATABASE_URL="+st.PGURL+sep+"search_path="+schema+",public",
		"FTGATE_LISTEN="+dashboardAddr, "FTGATE_PUBLIC_URL=http://"+dashboardAddr, "FTGATE_CLUSTERS_0_POLL_INTERVAL=1s",
		"FTGATE_WEB_CLIENT_ID=ftgate-dashboard", "FTGATE_WEB_CLIENT_SECRET=ftgate-dashboard-dev-secret",
		"FTGATE_WEB_SESSION_KEY="+strings.Repeat("ab", 32),
		// Limits the usage page draws bars for (the defaults leave three without one).
		"FTGATE_LIMITS_MAX_QUEUED_JOBS_PER_USER=4", "FTGATE_LIMITS_MAX_GPUS_PER_USER=4", "FTGATE_LIMITS_GPU_HOURS_PER_WINDOW=50",
		"FTGATE_WEBHOOKS_ALLOW=127.0.0.1,::1")
	gw.Stdout, gw.Stderr = logf, logf
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = gw.Process.Kill()
		_, _ = gw.Process.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("gateway log (tail):\n%s", b)
		}
	})
	up := false
	for i := 0; i < 150 && !up; i++ {
		if resp, err := http.Get("http://" + dashboardAddr + "/health"); err == nil {
			resp.Body.Close()
			up = true
		} else {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !up {
		b, _ := os.ReadFile(logPath)
		t.Fatalf("gateway did not start:\n%s", b)
	}

	// The API still takes bearer tokens exactly as before on the same gateway.
	if who := bearerWhoami(t, st, "alice"); who != "alice" {
		t.Fatalf("bearer whoami: %q", who)
	}

	// The browser test gets what is left of go test's deadline (less time to report).
	deadline := time.Now().Add(9 * time.Minute)
	if d, ok := t.Deadline(); ok {
		deadline = d.Add(-20 * time.Second)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	artifacts := filepath.Join(root, "web", ".artifacts")
	e2e := exec.CommandContext(ctx, node, "--test", "--test-concurrency=1", "--test-reporter=spec", filepath.Join("e2e", "dashboard.e2e.mjs"))
	e2e.Dir = filepath.Join(root, "web")
	e2e.Env = append(os.Environ(), "DASHBOARD_URL=http://"+dashboardAddr, "EXAMPLES_DIR="+filepath.Join(root, "examples"),
		"ARTIFACTS_DIR="+artifacts, "CHROMIUM="+chromium, "STACK_PASSWORD="+st.Password, "WEBHOOK_URL="+receiver.URL+"/hook")
	out, err := e2e.CombinedOutput()
	t.Logf("browser test:\n%s", out)
	if err != nil {
		t.Fatalf("browser test failed: %v", err)
	}
	// The delivery the browser saw in the log reached the receiver, signed.
	hooksMu.Lock()
	got := hooks
	hooksMu.Unlock()
	cancelled := 0
	for _, hd := range got {
		if hd.Get("Ftgate-Webhook-Event") == "job.cancelled" && strings.HasPrefix(hd.Get("Ftgate-Webhook-Signature"), "v1=") {
			cancelled++
		}
	}
	if cancelled == 0 {
		t.Errorf("the receiver got no signed job.cancelled delivery (%d requests)", len(got))
	}
	for _, f := range []string{"jobs.png", "job-running.png", "webhooks.png", "usage.png"} {
		if fi, err := os.Stat(filepath.Join(artifacts, f)); err != nil || fi.Size() < 10000 {
			t.Errorf("screenshot %s: %v", f, err)
		}
	}
}

// bearerWhoami calls /api/whoami with a Dex token from the password grant.
func bearerWhoami(t *testing.T, st *stacktest.Stack, user string) string {
	form := url.Values{"grant_type": {"password"}, "username": {user + "@example.com"}, "password": {st.Password},
		"client_id": {st.OIDCClientID}, "scope": {"openid profile email groups audience:server:client_id:" + st.OIDCAudience}}
	resp, err := http.PostForm(st.OIDCIssuer+"/token", form)
	if err != nil {
		t.Fatalf("dex token: %v", err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("dex token: status %d, %v", resp.StatusCode, err)
	}
	req, _ := http.NewRequest("GET", "http://"+dashboardAddr+"/api/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var who struct {
		Username string `json:"username"`
	}
	_ = json.NewDecoder(r.Body).Decode(&who)
	return who.Username
}
