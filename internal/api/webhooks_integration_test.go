package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/ftgate/ftgate/internal/deliver"
	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/webhook"
)

// withWebhooks enables the webhook routes on h with 127.0.0.1 allowed.
func (h *harness) withWebhooks(max int) {
	p, err := webhook.ParsePolicy([]string{"127.0.0.1"}, false)
	if err != nil {
		h.t.Fatal(err)
	}
	g := &deliver.Guard{Policy: p}
	h.srv.Webhooks = Webhooks{Store: h.store, Check: g.Check, MaxPerUser: max}
}

// TestIntegrationWebhookRoutes: registration (secret once, validation, the per-user
// limit), listing, per-user isolation, the delivery log filled by job events (paged),
// and removal.
func TestIntegrationWebhookRoutes(t *testing.T) {
	h := newHarness(t)
	h.withWebhooks(2)
	code, a, hdr := h.do("POST", "/api/webhooks", "alice", `{"url":"http://127.0.0.1:9/done","events":["job.succeeded","job.failed","job.succeeded"]}`)
	secret, _ := a["secret"].(string)
	if code != http.StatusCreated || !strings.HasPrefix(secret, webhook.SecretPrefix) || hdr.Get("Location") != "/api/webhooks/"+a["id"].(string) ||
		fmt.Sprint(a["events"]) != "[job.failed job.succeeded]" || a["url"] != "http://127.0.0.1:9/done" {
		t.Fatalf("create: %d %v %v", code, a, hdr)
	}
	code, c, _ := h.do("POST", "/api/webhooks", "alice", `{"url":"http://127.0.0.1:9/ckpt","events":["job.checkpoint"]}`)
	if code != http.StatusCreated || c["secret"] == secret {
		t.Fatalf("create 2: %d %v", code, c)
	}
	for _, tc := range []struct {
		name, body string
		code       int
		want       string
	}{
		{"limit", `{"url":"http://127.0.0.1:9/x","events":["job.paused"]}`, 429, "too_many: you have 2 webhook endpoints, the limit is 2"},
		{"loopback not listed", `{"url":"http://[::1]:9/x","events":["job.paused"]}`, 422, "url: address ::1 is loopback"},
		{"private", `{"url":"http://[fd00::7]/x","events":["job.paused"]}`, 422, "url: address fd00::7 is private"},
		{"scheme", `{"url":"file:///etc/passwd","events":["job.paused"]}`, 422, "url: must be an http:// or https:// URL"},
		{"no url", `{"events":["job.paused"]}`, 422, "url: is required"},
		{"no events", `{"url":"http://127.0.0.1:9/x"}`, 422, "events: name at least one"},
		{"bad event", `{"url":"http://127.0.0.1:9/x","events":["job.started"]}`, 422, `events: unknown event "job.started"`},
		{"unknown field", `{"url":"http://127.0.0.1:9/x","events":["job.paused"],"secret":"mine"}`, 400, `unknown field "secret"`},
		{"malformed", `{"url":`, 400, "truncated JSON"},
	} {
		if code, m, _ := h.do("POST", "/api/webhooks", "alice", tc.body); code != tc.code || !strings.Contains(errMsg(m), tc.want) {
			t.Errorf("%s: %d %s, want %d %q", tc.name, code, errMsg(m), tc.code, tc.want)
		}
	}
	code, list, _ := h.do("GET", "/api/webhooks", "alice", "")
	hooks, _ := list["webhooks"].([]any)
	if code != 200 || len(hooks) != 2 || strings.Contains(fmt.Sprint(list), "whsec_") || hooks[0].(map[string]any)["id"] != c["id"] {
		t.Fatalf("list: %d %v (want both, newest first, no secrets)", code, list)
	}
	if code, list, _ := h.do("GET", "/api/webhooks", "bob", ""); code != 200 || len(list["webhooks"].([]any)) != 0 {
		t.Fatalf("bob's list: %d %v", code, list)
	}
	doneID, ckptID := a["id"].(string), c["id"].(string)
	for _, p := range []string{"/api/webhooks/" + doneID + "/deliveries", "/api/webhooks/" + doneID} {
		method := map[bool]string{true: "GET", false: "DELETE"}[strings.HasSuffix(p, "deliveries")]
		if code, m, _ := h.do(method, p, "bob", ""); code != 404 {
			t.Errorf("bob %s %s: %d %v, want 404", method, p, code, m)
		}
	}
	if code, _, _ := h.do("GET", "/api/webhooks/not-an-id/deliveries", "alice", ""); code != 404 {
		t.Errorf("deliveries of a malformed id: %d, want 404", code)
	}

	// Job events fill the outbox: one succeeded job for the first endpoint, five
	// checkpoints of another job for the second; bob's job reaches neither.
	ok := h.submit("alice")
	h.force(ok, job.Queued, job.Running, job.Succeeded)
	h.force(h.submit("bob"), job.Queued, job.Running, job.Succeeded)
	ck := h.submit("alice")
	h.force(ck, job.Queued, job.Running)
	for step := 1; step <= 5; step++ {
		p := job.Progress{Phase: "training", Step: int64(step * 10), TotalSteps: 100, LatestCheckpoint: fmt.Sprintf("checkpoints/step-%d", step*10)}
		if err := h.store.SetProgress(context.Background(), ck, p); err != nil {
			t.Fatal(err)
		}
	}
	h.force(ck, job.Cancelled) // job.cancelled: neither endpoint subscribed
	code, d, _ := h.do("GET", "/api/webhooks/"+doneID+"/deliveries", "alice", "")
	dl, _ := d["deliveries"].([]any)
	if code != 200 || len(dl) != 1 || d["next_cursor"] != "" {
		t.Fatalf("deliveries of %s: %d %v", doneID, code, d)
	}
	if e := dl[0].(map[string]any); e["event"] != "job.succeeded" || e["job_id"] != ok || e["state"] != "pending" || e["attempts"] != 0.0 || e["next_attempt_at"] == nil {
		t.Errorf("delivery %v", e)
	}
	var steps []string
	cursor := ""
	for page := 0; page < 5; page++ {
		q := url.Values{"limit": {"2"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		code, d, _ := h.do("GET", "/api/webhooks/"+ckptID+"/deliveries?"+q.Encode(), "alice", "")
		if code != 200 {
			t.Fatalf("page %d: %d %v", page, code, d)
		}
		for _, e := range d["deliveries"].([]any) {
			steps = append(steps, fmt.Sprint(e.(map[string]any)["event"], "/", e.(map[string]any)["job_id"] == ck))
		}
		if cursor, _ = d["next_cursor"].(string); cursor == "" {
			break
		}
	}
	if len(steps) != 5 || strings.Count(strings.Join(steps, " "), "job.checkpoint/true") != 5 {
		t.Errorf("checkpoint deliveries over pages of 2: %v, want 5", steps)
	}
	for _, q := range []string{"limit=0", "limit=201", "cursor=bogus", "page=2"} {
		if code, m, _ := h.do("GET", "/api/webhooks/"+ckptID+"/deliveries?"+q, "alice", ""); code != 400 {
			t.Errorf("deliveries?%s: %d %v, want 400", q, code, m)
		}
	}
	if code, _, _ := h.do("GET", "/api/webhooks/"+ckptID+"/deliveries", "admin", ""); code != 200 {
		t.Errorf("admin reads alice's log: %d", code)
	}

	if code, m, _ := h.do("DELETE", "/api/webhooks/"+doneID, "alice", ""); code != 200 || m["deleted"] != true {
		t.Fatalf("delete: %d %v", code, m)
	}
	if code, _, _ := h.do("GET", "/api/webhooks/"+doneID+"/deliveries", "alice", ""); code != 404 {
		t.Errorf("log of a removed endpoint: %d, want 404", code)
	}
	if code, m, _ := h.do("POST", "/api/webhooks", "alice", `{"url":"http://127.0.0.1:9/x","events":["job.paused"]}`); code != 201 {
		t.Errorf("create after a removal frees a place: %d %v", code, m)
	}
}
