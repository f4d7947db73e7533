package docs

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/deliver"
	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/webhook"
)

// fenceRE finds a fenced code block of a language in markdown.
var fenceRE = regexp.MustCompile("(?s)```(go|python)\n(.*?)```")

// TestWebhookReceiverSnippets runs the Go and Python receivers of docs/webhooks.md
// against the gateway's own sender: a signed delivery is accepted (also 4 minutes
// old), a wrong secret, a tampered body and a timestamp outside the replay window are
// refused. The snippets are what users copy, so they must verify what the gateway
// signs.
func TestWebhookReceiverSnippets(t *testing.T) {
	t.Parallel()
	text := read(t, repoRoot(t), "docs/webhooks.md")
	blocks := map[string]string{}
	for _, m := range fenceRE.FindAllStringSubmatch(text, -1) {
		if _, dup := blocks[m[1]]; dup {
			t.Fatalf("docs/webhooks.md has more than one %s block", m[1])
		}
		blocks[m[1]] = m[2]
	}
	if len(blocks) != 2 {
		t.Fatalf("docs/webhooks.md: found %d of the go and python receiver blocks", len(blocks))
	}
	dir := t.TempDir()
	goSrc := filepath.Join(dir, "receiver.go")
	pySrc := filepath.Join(dir, "receiver.py")
	if err := os.WriteFile(goSrc, []byte(blocks["go"]), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pySrc, []byte(blocks["python"]), 0o644); err != nil {
		t.Fatal(err)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is needed to build the Go receiver: %v", err)
	}
	bin := filepath.Join(dir, "receiver")
	build := exec.Command(goTool, "build", "-o", bin, goSrc)
	build.Dir = dir
	build.Env = append(withoutGoFlags(os.Environ()), "GO111MODULE=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the Go receiver of docs/webhooks.md: %v\n%s", err, out)
	}
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is needed to run the Python receiver (dev/stack install provides it): %v", err)
	}
	for name, argv := range map[string][]string{"go": {bin}, "python": {python, pySrc}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			checkReceiver(t, argv)
		})
	}
}

func withoutGoFlags(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "GOFLAGS=") {
			out = append(out, kv)
		}
	}
	return out
}

// checkReceiver starts argv as a receiver on a free loopback port and sends it
// deliveries through the gateway's sender.
func checkReceiver(t *testing.T, argv []string) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	const secret = "whsec_docs-test-secret"
	var logs bytes.Buffer
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "FTGATE_WEBHOOK_SECRET="+secret, "FTGATE_WEBHOOK_ADDR="+addr)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the receiver did not listen on %s: %s", addr, logs.String())
		}
	}
	p, _ := webhook.ParsePolicy([]string{"127.0.0.1"}, false)
	client := deliver.NewClient(&deliver.Guard{Policy: p}, 5*time.Second)
	j := job.Job{ID: "00000000-0000-4000-8000-000000000001", State: job.Succeeded, User: "alice", Cluster: "dev"}
	payload, _ := json.Marshal(webhook.NewBody(webhook.EventSucceeded, time.Now(), j, nil))
	out := webhook.Outgoing{ID: "00000000-0000-4000-8000-0000000000d1", URL: "http://" + addr + "/ftgate", Secret: secret,
		Event: webhook.EventSucceeded, Attempt: 1, Payload: payload}
	send := func(o webhook.Outgoing, skew time.Duration) int {
		s := &deliver.Sender{Client: client, Now: func() time.Time { return time.Now().Add(skew) }}
		status, _ := s.Send(context.Background(), o)
		return status
	}
	wrong := out
	wrong.Secret = "whsec_another"
	for _, tc := range []struct {
		name string
		o    webhook.Outgoing
		skew time.Duration
		want int
	}{
		{"signed", out, 0, http.StatusNoContent},
		{"repeat of the same id", out, 0, http.StatusNoContent},
		{"4 minutes old", out, -4 * time.Minute, http.StatusNoContent},
		{"6 minutes old", out, -6 * time.Minute, http.StatusUnauthorized},
		{"6 minutes ahead", out, 6 * time.Minute, http.StatusUnauthorized},
		{"wrong secret", wrong, 0, http.StatusUnauthorized},
	} {
		if got := send(tc.o, tc.skew); got != tc.want {
			t.Errorf("%s: %d, want %d\nreceiver output:\n%s", tc.name, got, tc.want, logs.String())
		}
	}
	// A body changed after signing.
	body, _ := out.Body()
	ts := time.Now().Unix()
	req, _ := http.NewRequest("POST", out.URL, bytes.NewReader(append(bytes.Clone(body[:len(body)-1]), []byte(`,"x":1}`)...)))
	req.Header.Set(webhook.HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(webhook.HeaderSignature, webhook.Sign(secret, ts, body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("tampered body: %d, want 401", resp.StatusCode)
	}
	// Accepted once: the receiver processed the id a single time.
	time.Sleep(100 * time.Millisecond)
	if n := strings.Count(logs.String(), "job.succeeded"); n != 1 {
		t.Errorf("the receiver processed the event %d times, want once:\n%s", n, logs.String())
	}
}
