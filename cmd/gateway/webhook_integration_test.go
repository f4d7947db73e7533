package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/stacktest"
	"github.com/ftgate/ftgate/internal/webhook"
)

// receiver is a webhook receiver on 127.0.0.1: it verifies each request with the
// secret set for its path (401 without one) and keeps the bodies it accepted (204).
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	secrets map[string]string
	got     []webhook.Body
	bad     []string
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{secrets: map[string]string{}}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		secret, ok := rc.secrets[r.URL.Path]
		err := webhook.Verify(secret, r.Header.Get(webhook.HeaderTimestamp), r.Header.Get(webhook.HeaderSignature), body, time.Now(), webhook.ReplayWindow)
		if !ok || err != nil {
			rc.bad = append(rc.bad, fmt.Sprintf("%s: secret set %v: %v", r.URL.Path, ok, err))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var b webhook.Body
		_ = json.Unmarshal(body, &b)
		rc.got = append(rc.got, b)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) setSecret(path, secret string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.secrets[path] = secret
}

// bodies returns what the receiver accepted and what it refused, so far.
func (rc *receiver) bodies() (got []webhook.Body, bad []string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got), slices.Clone(rc.bad)
}

// TestIntegrationWebhookSurvivesKill registers a webhook through the gateway's API,
// makes a job event that triggers it (a queued job cancelled), and kills the gateway
// with SIGKILL at the point where its webhook worker has claimed the delivery and not
// sent it (a test hook in this binary). The restarted gateway delivers it from the
// outbox: the receiver on 127.0.0.1 gets one signed request, and the delivery log
// shows two attempts, the first interrupted.
func TestIntegrationWebhookSurvivesKill(t *testing.T) {
	st := stacktest.Require(t)
	recv := newReceiver(t)
	gp := newGatewayProc(t, st, "FTGATE_TEST_CRASH_AFTER_WEBHOOK_CLAIM=1", "FTGATE_WEBHOOKS_ALLOW=127.0.0.1",
		"FTGATE_WEBHOOKS_POLL_INTERVAL=100ms", "FTGATE_WEBHOOKS_RETRY_MIN=100ms")
	gw := gp.start()
	t.Cleanup(func() { _ = gw.Process.Kill(); _, _ = gw.Process.Wait() })
	exited := make(chan *os.ProcessState, 1)
	go func() { ps, _ := gw.Process.Wait(); exited <- ps }()

	code, hook, err := gp.call("POST", "/api/webhooks", map[string]any{"url": recv.URL + "/ftgate", "events": []string{"job.cancelled"}})
	if err != nil || code != http.StatusCreated {
		t.Fatalf("register: %d %v %v", code, hook, err)
	}
	hookID := hook["id"].(string)
	recv.setSecret("/ftgate", hook["secret"].(string))
	code, m, err := gp.call("POST", "/api/training/execute", (&e2e{}).spec(50, 0))
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("execute: %d %v %v", code, m, err)
	}
	id := m["id"].(string)
	// Cancel once Slurm has the job, so the cancel reaches Slurm before the crash.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		code, m, err = gp.call("GET", "/api/training/status/"+id, nil)
		if err != nil || code != 200 {
			t.Fatalf("status: %d %v", code, err)
		}
		if m["state"] != "submitting" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job still submitting after a minute: %v", m["reason"])
		}
	}
	if code, m, err = gp.call("POST", "/api/training/cancel/"+id, nil); err != nil || code != 200 || m["state"] != "cancelled" {
		t.Fatalf("cancel: %d %v %v", code, m, err)
	}
	select {
	case ps := <-exited:
		if ws, ok := ps.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			b, _ := os.ReadFile(gp.logPath)
			t.Fatalf("gateway exited with %v, want killed by its hook:\n%s", ps, b)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the gateway's webhook worker never claimed the delivery")
	}
	log, _ := os.ReadFile(gp.logPath)
	if !strings.Contains(string(log), "test hook: crashing after claiming webhook delivery") {
		t.Fatalf("no hook line in the gateway log:\n%s", log)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var attempts int
	var delivered bool
	if err := gp.pool.QueryRow(ctx, `SELECT attempts, delivered_at IS NOT NULL FROM webhook_deliveries WHERE endpoint_id = $1`, hookID).Scan(&attempts, &delivered); err != nil {
		t.Fatal(err)
	}
	got, _ := recv.bodies()
	if n := len(got); attempts != 1 || delivered || n != 0 {
		t.Fatalf("after the kill: attempts %d delivered %v, receiver got %d; want 1 claimed attempt, nothing sent", attempts, delivered, n)
	}
	// End the dead process's claim lease (timeout + 30 s) instead of waiting it out;
	// that leases expire is TestIntegrationWebhookClaims' concern.
	if _, err := gp.pool.Exec(ctx, `UPDATE webhook_deliveries SET next_attempt_at = now() WHERE endpoint_id = $1`, hookID); err != nil {
		t.Fatal(err)
	}
	env := gp.env[:0:0]
	for _, kv := range gp.env {
		if !strings.HasPrefix(kv, "FTGATE_TEST_CRASH_AFTER_WEBHOOK_CLAIM=") {
			env = append(env, kv)
		}
	}
	gp.env = env
	gw = gp.start()
	var d map[string]any
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		code, m, err := gp.call("GET", "/api/webhooks/"+hookID+"/deliveries", nil)
		if err != nil || code != 200 {
			t.Fatalf("deliveries: %d %v %v", code, m, err)
		}
		ds, _ := m["deliveries"].([]any)
		if len(ds) != 1 {
			t.Fatalf("delivery log %v, want one entry", m)
		}
		if d = ds[0].(map[string]any); d["state"] == "delivered" {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(gp.logPath)
			t.Fatalf("not delivered 30 s after the restart: %v\ngateway log:\n%s", d, b)
		}
	}
	got, bad := recv.bodies()
	if len(bad) > 0 || len(got) != 1 || got[0].Event != "job.cancelled" || got[0].Job.ID != id || got[0].ID != d["id"] {
		t.Fatalf("receiver got %+v (bad signatures %v); want one job.cancelled of job %s", got, bad, id)
	}
	if d["attempts"] != 2.0 || d["last_status"] != 204.0 || d["delivered_at"] == nil || d["event"] != "job.cancelled" {
		t.Errorf("delivery log entry %v, want 2 attempts (the first interrupted by the kill), delivered with 204", d)
	}
	t.Logf("killed the gateway after it claimed delivery %s; the restarted gateway delivered it: %s", d["id"], fmt.Sprint(d))
}

// TestIntegrationJobWebhook: a spec's notify.webhook gets an endpoint of its own with
// the job: its id and secret come back once, in the 202; the receiver on 127.0.0.1
// gets that job's events signed with that secret and no other job's; the endpoint is
// not listed with the registered ones nor counted against their limit; another user
// cannot see it; a refused target or an unknown event is a 422 naming the field.
func TestIntegrationJobWebhook(t *testing.T) {
	e := startE2E(t)
	recv := newReceiver(t)

	for _, tc := range []struct {
		notify map[string]any
		field  string
	}{
		{map[string]any{"webhook": map[string]any{"url": "http://10.11.12.13/hook"}}, "notify.webhook.url"},
		{map[string]any{"webhook": map[string]any{"url": recv.URL + "/a", "events": []string{"job.nope"}}}, "notify.webhook.events"},
		{map[string]any{"webhook": map[string]any{"events": []string{"job.failed"}}}, "notify.webhook.url"},
		{map[string]any{}, "notify.webhook"},
	} {
		spec := e.spec(20, 0)
		spec["notify"] = tc.notify
		code, m := e.do("POST", "/api/training/execute", spec)
		msg, _ := m["error"].(map[string]any)["message"].(string)
		if code != http.StatusUnprocessableEntity || !strings.Contains(msg, tc.field) {
			t.Errorf("notify %v: %d %v, want 422 naming %s", tc.notify, code, m, tc.field)
		}
	}

	spec := e.spec(20, 0)
	spec["notify"] = map[string]any{"webhook": map[string]any{"url": recv.URL + "/a", "events": []string{"job.cancelled", "job.succeeded"}}}
	code, m := e.do("POST", "/api/training/execute", spec)
	if code != http.StatusAccepted {
		t.Fatalf("execute with notify: %d %v", code, m)
	}
	a := m["id"].(string)
	hook, _ := m["webhook"].(map[string]any)
	hookID, _ := hook["id"].(string)
	secret, _ := hook["secret"].(string)
	if hookID == "" || !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("202 answer's webhook: %v, want its id and secret", m["webhook"])
	}
	recv.setSecret("/a", secret)
	if _, st := e.do("GET", "/api/training/status/"+a, nil); st["webhook"] != nil {
		t.Errorf("status shows the webhook secret again: %v", st["webhook"])
	}
	// Another job of the same user, cancelled: its event must not reach a's endpoint.
	b := e.execute(2000, 0)
	if code, m := e.do("POST", "/api/training/cancel/"+b, nil); code != 200 {
		t.Fatalf("cancel b: %d %v", code, m)
	}
	e.wait(a, 3*time.Minute, "succeeded", stateIs("succeeded"))
	var ds []any
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		code, m := e.do("GET", "/api/webhooks/"+hookID+"/deliveries", nil)
		if code != 200 {
			t.Fatalf("deliveries: %d %v", code, m)
		}
		ds, _ = m["deliveries"].([]any)
		if len(ds) == 1 && ds[0].(map[string]any)["state"] == "delivered" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery log %v, want one delivered entry", m)
		}
	}
	time.Sleep(2 * time.Second) // a stray delivery of b's event would have been sent by now
	if got, bad := recv.bodies(); len(bad) > 0 || len(got) != 1 || got[0].Event != "job.succeeded" || got[0].Job.ID != a {
		t.Errorf("receiver got %+v (refused: %v); want one job.succeeded of job %s", got, bad, a)
	}
	code, m = e.do("GET", "/api/webhooks", nil)
	if list, _ := m["webhooks"].([]any); code != 200 || len(list) != 0 {
		t.Errorf("GET /api/webhooks: %d %v, want no registered endpoints (the job's own is not one)", code, m)
	}
	st := stacktest.Require(t)
	bob := dexToken(t, st, "bob")
	if code, m := e.doAs(bob, "GET", "/api/webhooks/"+hookID+"/deliveries", nil); code != http.StatusNotFound {
		t.Errorf("bob reads alice's job webhook: %d %v, want 404", code, m)
	}
}
