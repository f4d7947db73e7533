package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/stacktest"
)

// dashboardAddr is fixed: Dex has the dashboard's redirect URI registered for it
// (dev/stack).
const dashboardAddr = "127.0.0.1:18080"

// TestIntegrationDashboardBrowser runs the dashboard's browser test (web/e2e, headless
// Chromium driven by playwright-core) against a real gateway on the stack with the
// dashboard's Dex client: login through Dex's page, submit from the editor, live loss
// chart, pause/resume to success, model download checked against the manifest,
// isolation from bob, a cancelled job's reason, and the job page's paint time. Screenshots
// land in web/.artifacts/.
func TestIntegrationDashboardBrowser(t *testing.T) {
	st := stacktest.Require(t)
	root := repoRoot()
	need := func(what, hint string, ok bool) {
		if ok {
			return
		}
		if stacktest.Required() {
			t.Fatalf("FTGATE_REQUIRE_STACK=1 but %s is missing (%s)", what, hint)
		}
		t.Skipf("%s is missing (%s)", what, hint)
	}
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	_, err := os.Stat(chromium)
	need("chromium", "dev/stack install", err == nil)
	node, err := exec.LookPath("node")
	need("node", "install Node.js 20", err == nil)
	_, err = os.Stat(filepath.Join(root, "web", "node_modules", "playwright-core"))
	need("web/node_modules", "make web-deps", err == nil)
	if resp, err := http.Get("http://" + dashboardAddr + "/health"); err == nil {
		resp.Body.Close()
		t.Fatalf("%s is taken by another gateway; the dashboard test needs it (Dex's registered redirect URI)", dashboardAddr)
	}

	g := newGatewayProc(t, st, "FTGATE_LISTEN="+dashboardAddr, "FTGATE_PUBLIC_URL=http://"+dashboardAddr,
		"FTGATE_WEB_CLIENT_ID=ftgate-dashboard", "FTGATE_WEB_CLIENT_SECRET=ftgate-dashboard-dev-secret",
		"FTGATE_WEB_SESSION_KEY="+strings.Repeat("ab", 32))
	g.addr = dashboardAddr
	cmd := g.start()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(g.logPath)
			t.Logf("gateway log (tail):\n%s", tail(string(b), 4000))
		}
	})

	// The API still takes bearer tokens exactly as before on the same gateway.
	code, who, err := g.call("GET", "/api/whoami", nil)
	if err != nil || code != 200 || who["username"] != "alice" {
		t.Fatalf("bearer whoami: %d %v %v", code, who, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	artifacts := filepath.Join(root, "web", ".artifacts")
	e2e := exec.CommandContext(ctx, node, "--test", "--test-concurrency=1", "--test-reporter=spec", filepath.Join("e2e", "dashboard.e2e.mjs"))
	e2e.Dir = filepath.Join(root, "web")
	e2e.Env = append(os.Environ(), "DASHBOARD_URL=http://"+dashboardAddr, "EXAMPLES_DIR="+filepath.Join(root, "examples"),
		"ARTIFACTS_DIR="+artifacts, "CHROMIUM="+chromium, "STACK_PASSWORD="+st.Password)
	out, err := e2e.CombinedOutput()
	t.Logf("browser test:\n%s", out)
	if err != nil {
		t.Fatalf("browser test failed: %v", err)
	}
	for _, f := range []string{"jobs.png", "job-running.png"} {
		if fi, err := os.Stat(filepath.Join(artifacts, f)); err != nil || fi.Size() < 10000 {
			t.Errorf("screenshot %s: %v", f, err)
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
