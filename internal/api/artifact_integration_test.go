package api

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/postgres/pgtest"
	"github.com/ftgate/ftgate/internal/sshconn"
)

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// remote runs argv on the login node as user (argv is quoted by sshconn).
func remote(t testing.TB, p *sshconn.Pool, user string, argv ...string) string {
	t.Helper()
	out, stderr, err := p.Run(context.Background(), user, argv, nil)
	if err != nil {
		t.Fatalf("remote %q: %v: %s", argv, err, stderr)
	}
	return string(out)
}

func wsRead(t testing.TB, url, user string) <-chan client.WSMessage {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	conn, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + user}}})
	if err != nil {
		cancel()
		t.Fatalf("dial %s: %v (%v)", url, err, resp)
	}
	ch := make(chan client.WSMessage, 1024)
	go func() {
		defer close(ch)
		for {
			_, b, err := conn.Read(ctx)
			if err != nil {
				return
			}
			var m client.WSMessage
			if json.Unmarshal(b, &m) == nil {
				ch <- m
			}
		}
	}()
	t.Cleanup(func() { conn.CloseNow(); cancel() })
	return ch
}

// recordingFS records every path the API reads or deletes through SFTP.
type recordingFS struct {
	*sshconn.Pool
	mu    sync.Mutex
	paths []string
}

func (r *recordingFS) rec(op, p string) {
	r.mu.Lock()
	r.paths = append(r.paths, op+" "+p)
	r.mu.Unlock()
}

func (r *recordingFS) Open(ctx context.Context, user, p string, off int64) (io.ReadCloser, error) {
	r.rec("open", p)
	return r.Pool.Open(ctx, user, p, off)
}

func (r *recordingFS) OpenStream(ctx context.Context, user, p string, off int64) (io.ReadCloser, error) {
	r.rec("open", p)
	return r.Pool.OpenStream(ctx, user, p, off)
}

func (r *recordingFS) ReadFile(ctx context.Context, user, p string, max int64) ([]byte, error) {
	r.rec("read", p)
	return r.Pool.ReadFile(ctx, user, p, max)
}

func (r *recordingFS) ReadDir(ctx context.Context, user, p string) ([]os.FileInfo, error) {
	r.rec("list", p)
	return r.Pool.ReadDir(ctx, user, p)
}

func (r *recordingFS) Run(ctx context.Context, user string, argv []string, stdin io.Reader) ([]byte, []byte, error) {
	r.rec("run", strings.Join(argv, " "))
	return r.Pool.Run(ctx, user, argv, stdin)
}

func (r *recordingFS) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.paths
	r.paths = nil
	return out
}

// fixture builds a job directory as the trainer leaves it, plus hostile symlinks.
const fixture = `
import hashlib, json, os, sys
d, big = sys.argv[1], int(sys.argv[2])
os.makedirs(d, exist_ok=True)
def write(rel, data):
    p = os.path.join(d, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)
def manifest(rel, extra):
    root = os.path.join(d, rel)
    files = {}
    for dp, _, fns in os.walk(root):
        for fn in fns:
            p = os.path.join(dp, fn)
            if os.path.islink(p) or fn == "manifest.json":
                continue
            data = open(p, "rb").read()
            files[os.path.relpath(p, root)] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    m = dict(extra, format=1, files=files)
    write(rel + "/manifest.json", json.dumps(m).encode())
write("job.json", b'{"secret": "job spec"}')
write("slurm-123.out", b"".join(b"line %d\n" % i for i in range(1, 101)))
write("metrics.jsonl", b"".join(json.dumps({"step": s, "loss": 3.0 / s, "learning_rate": 1e-4, "time": 1.0}).encode() + b"\n" for s in range(1, 31)) + b'{"step": 30, "eval_loss": 0.5}\nnot json\n{"step": 31, "lo')
for step, metric in ((10, 0.7), (20, 0.9)):
    write("checkpoints/step-%d/weights.pt" % step, os.urandom(50000 + step))
    write("checkpoints/step-%d/trainer_state.json" % step, b'{"step": %d}' % step)
    manifest("checkpoints/step-%d" % step, {"step": step, "metric": metric, "created_at": 1700000000.5})
os.makedirs(os.path.join(d, "checkpoints/.tmp-step-30-1"))
os.symlink("/etc", os.path.join(d, "checkpoints/step-99"))
os.makedirs(os.path.join(d, "model"), exist_ok=True)
with open(os.path.join(d, "model/weights.bin"), "wb") as f:
    left = big
    while left > 0:
        n = min(left, 1 << 20)
        f.write(os.urandom(n))
        left -= n
write("model/config.json", b'{"hidden": 8}')
write("model/tok/vocab.json", b'{"a": 1}')
manifest("model", {"step": 30})
os.symlink("/etc/passwd", os.path.join(d, "model/evil"))
os.symlink("/etc", os.path.join(d, "model/etc"))
os.symlink("../job.json", os.path.join(d, "model/inner"))
`

type artClient struct {
	t    *testing.T
	base string
}

func (c artClient) get(user, path string, hdr ...string) (*http.Response, []byte) {
	c.t.Helper()
	return c.do("GET", user, path, hdr...)
}

func (c artClient) do(method, user, path string, hdr ...string) (*http.Response, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+user)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestIntegrationArtifacts(t *testing.T) {
	pool0, st := stackFS(t)
	fsys := &recordingFS{Pool: pool0}
	pool := pgtest.Schema(t)
	rep := startReplica(t, pool, fsys, st.JobRoot, 0)
	j := createJob(t, rep.store, "alice", st.JobRoot)
	const big = 8<<20 + 12345
	remote(t, pool0, "alice", st.Python, "-c", fixture, j.JobDir, strconv.Itoa(big))
	t.Cleanup(func() { remote(t, pool0, "alice", "rm", "-rf", "--", j.JobDir) })
	ctx := context.Background()
	if _, err := rep.store.Transition(ctx, j.ID, job.Change{From: job.Submitting, To: job.Queued, SlurmID: "123"}); err != nil {
		t.Fatal(err)
	}
	if _, err := rep.store.Transition(ctx, j.ID, job.Change{From: job.Queued, To: job.Running}); err != nil {
		t.Fatal(err)
	}
	c := artClient{t: t, base: rep.http.URL + "/api/training/" + j.ID}

	t.Run("metrics", func(t *testing.T) {
		resp, b := c.get("alice", "/metrics?since_step=25")
		var m struct {
			LastStep int64                   `json:"last_step"`
			Series   map[string][][2]float64 `json:"series"`
			Skipped  int                     `json:"skipped_lines"`
		}
		if resp.StatusCode != 200 || json.Unmarshal(b, &m) != nil {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		if m.LastStep != 30 || len(m.Series["loss"]) != 5 || m.Series["loss"][0][0] != 26 || len(m.Series["eval_loss"]) != 1 || m.Skipped != 1 {
			t.Fatalf("metrics %+v", m)
		}
		if resp, _ := c.get("alice", "/metrics?since_step=abc"); resp.StatusCode != 400 {
			t.Errorf("since_step=abc: %d, want 400", resp.StatusCode)
		}
	})

	t.Run("logs", func(t *testing.T) {
		resp, b := c.get("alice", "/logs?tail=3")
		if resp.StatusCode != 200 || string(b) != "line 98\nline 99\nline 100\n" {
			t.Fatalf("tail=3: %d %q", resp.StatusCode, b)
		}
		off := resp.Header.Get("X-Log-Offset")
		resp, b = c.get("alice", "/logs?offset="+off)
		if string(b) != "line 98\nline 99\nline 100\n" || resp.Header.Get("X-Log-Next-Offset") != "792" {
			t.Fatalf("offset=%s: %q next %s", off, b, resp.Header.Get("X-Log-Next-Offset"))
		}
		if resp, _ := c.get("alice", "/logs?offset=1&tail=2"); resp.StatusCode != 400 {
			t.Errorf("offset and tail: %d, want 400", resp.StatusCode)
		}
		// follow: new output streams until the job ends.
		type result struct {
			body string
			err  error
		}
		done := make(chan result, 1)
		go func() {
			req, _ := http.NewRequest("GET", c.base+"/logs?offset=792&follow=1", nil)
			req.Header.Set("Authorization", "Bearer alice")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				done <- result{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			done <- result{string(b), err}
		}()
		time.Sleep(500 * time.Millisecond)
		remote(t, pool0, "alice", "sh", "-c", `printf 'line 101\n' >> "$1"`, "sh", j.JobDir+"/slurm-123.out")
		time.Sleep(1500 * time.Millisecond)
		if _, err := rep.store.Transition(ctx, j.ID, job.Change{From: job.Running, To: job.Succeeded}); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-done:
			if r.err != nil || r.body != "line 101\n" {
				t.Fatalf("follow: %q, %v", r.body, r.err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("follow did not end after the job ended")
		}
		// back to running for the checkpoint rules below
		if _, err := rep.store.Pool.Exec(ctx, `UPDATE jobs SET state = 'running' WHERE id = $1`, j.ID); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("checkpoints", func(t *testing.T) {
		resp, b := c.get("alice", "/checkpoints")
		var l struct {
			Checkpoints []struct {
				Name     string
				Step     int64
				Size     int64
				Loss     *float64
				Complete bool
				Best     bool
			}
		}
		if resp.StatusCode != 200 || json.Unmarshal(b, &l) != nil {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		if len(l.Checkpoints) != 2 || l.Checkpoints[0].Name != "step-10" || !l.Checkpoints[0].Complete || !l.Checkpoints[0].Best ||
			l.Checkpoints[1].Step != 20 || l.Checkpoints[1].Best || *l.Checkpoints[1].Loss != 0.9 {
			t.Fatalf("checkpoints %s", b)
		}
		resp, b = c.get("alice", "/checkpoints/step-10")
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-tar" {
			t.Fatalf("tar: %d %s", resp.StatusCode, b)
		}
		tr := tar.NewReader(strings.NewReader(string(b)))
		var names []string
		var man []byte
		sums := map[string]string{}
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("tar: %v", err)
			}
			data, _ := io.ReadAll(tr)
			names = append(names, h.Name)
			sum := sha256.Sum256(data)
			sums[strings.TrimPrefix(h.Name, strings.Split(j.ID, "-")[0]+"-step-10/")] = hex.EncodeToString(sum[:])
			if strings.HasSuffix(h.Name, "/manifest.json") {
				man = data
			}
		}
		if len(names) != 3 {
			t.Fatalf("tar entries %v", names)
		}
		var m struct {
			Files map[string]struct{ SHA256 string }
		}
		_ = json.Unmarshal(man, &m)
		for n, f := range m.Files {
			if sums[n] != f.SHA256 {
				t.Errorf("tar %s sha256 %s, manifest %s", n, sums[n], f.SHA256)
			}
		}
		// The newest complete checkpoint of a running job is kept; an older one goes.
		if resp, b := c.do("DELETE", "alice", "/checkpoints/step-20"); resp.StatusCode != 409 {
			t.Errorf("delete newest while running: %d %s, want 409", resp.StatusCode, b)
		}
		if resp, b := c.do("DELETE", "alice", "/checkpoints/step-10"); resp.StatusCode != 204 {
			t.Fatalf("delete step-10: %d %s", resp.StatusCode, b)
		}
		if resp, _ := c.get("alice", "/checkpoints/step-10"); resp.StatusCode != 404 {
			t.Errorf("deleted checkpoint: %d, want 404", resp.StatusCode)
		}
		if out := remote(t, pool0, "alice", "ls", "/etc/passwd"); !strings.Contains(out, "passwd") {
			t.Fatal("lost /etc/passwd?!")
		}
	})

	t.Run("model range resume and manifest", func(t *testing.T) {
		resp, b := c.get("alice", "/model/manifest")
		var m struct {
			Files map[string]struct {
				Size   int64
				SHA256 string
			}
		}
		if resp.StatusCode != 200 || json.Unmarshal(b, &m) != nil || len(m.Files) != 3 {
			t.Fatalf("manifest: %d %s", resp.StatusCode, b)
		}
		want := m.Files["weights.bin"]
		if want.Size != big {
			t.Fatalf("manifest size %d, want %d", want.Size, big)
		}
		resp, part1 := c.get("alice", "/model?file=weights.bin", "Range", "bytes=0-999999")
		etag := resp.Header.Get("ETag")
		if resp.StatusCode != 206 || len(part1) != 1000000 || etag != `"sha256-`+want.SHA256+`"` {
			t.Fatalf("first range: %d, %d bytes, etag %s", resp.StatusCode, len(part1), etag)
		}
		resp, part2 := c.get("alice", "/model?file=weights.bin", "Range", "bytes=1000000-", "If-Range", etag)
		if resp.StatusCode != 206 {
			t.Fatalf("resume: %d", resp.StatusCode)
		}
		sum := sha256.Sum256(append(part1, part2...))
		if hex.EncodeToString(sum[:]) != want.SHA256 {
			t.Fatal("resumed download does not match the manifest's sha256")
		}
		resp, _ = c.get("alice", "/model?file=weights.bin", "If-None-Match", etag)
		if resp.StatusCode != 304 {
			t.Errorf("If-None-Match: %d, want 304", resp.StatusCode)
		}
		resp, b = c.get("alice", "/model?file=tok/vocab.json")
		if resp.StatusCode != 200 || string(b) != `{"a": 1}` {
			t.Errorf("nested file: %d %q", resp.StatusCode, b)
		}
		resp, b = c.get("alice", "/model")
		tr := tar.NewReader(strings.NewReader(string(b)))
		var names []string
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			names = append(names, h.Name[strings.Index(h.Name, "/")+1:])
		}
		slices.Sort(names)
		if resp.StatusCode != 200 || strings.Join(names, ",") != "config.json,manifest.json,tok/vocab.json,weights.bin" {
			t.Errorf("model tar: %d %v (symlinks must be skipped)", resp.StatusCode, names)
		}
	})

	t.Run("traversal", func(t *testing.T) {
		fsys.take()
		for _, p := range []string{
			"/model?file=../job.json",
			"/model?file=..%2Fjob.json",
			"/model?file=%2e%2e/job.json",
			"/model?file=/etc/passwd",
			"/model?file=%2Fetc%2Fpasswd",
			"/model?file=tok/../../job.json",
			"/model?file=evil",
			"/model?file=etc/passwd",
			"/model?file=inner",
			"/model?file=.",
			"/model?file=",
			"/model?file=%00",
			"/model?file=..%252fjob.json",
			"/checkpoints/step-99",
			"/checkpoints/step-99?file=passwd",
			"/checkpoints/..",
			"/checkpoints/..%2F..%2Fjob.json",
			"/checkpoints/%2e%2e%2f%2e%2e%2fetc",
			"/checkpoints/step-20?file=../../job.json",
			"/checkpoints/step-20/../../job.json",
		} {
			resp, b := c.get("alice", p)
			if resp.StatusCode != 400 && resp.StatusCode != 404 {
				t.Errorf("GET %s: %d, want 400 or 404", p, resp.StatusCode)
			}
			if strings.Contains(string(b), "root:") || strings.Contains(string(b), "secret") {
				t.Errorf("GET %s leaked file content: %q", p, b)
			}
		}
		for _, p := range []string{"/checkpoints/step-99", "/checkpoints/..%2F..", "/checkpoints/step-20%2F..%2F.."} {
			if resp, _ := c.do("DELETE", "alice", p); resp.StatusCode != 400 && resp.StatusCode != 404 {
				t.Errorf("DELETE %s: %d, want 400 or 404", p, resp.StatusCode)
			}
		}
		for _, op := range fsys.take() {
			_, p, _ := strings.Cut(op, " ")
			if strings.HasPrefix(op, "run") || !strings.HasPrefix(p, j.JobDir) || strings.Contains(p, "evil") || strings.Contains(p, "step-99") || strings.Contains(p, "/etc") {
				t.Errorf("a traversal attempt reached the cluster: %s", op)
			}
		}
		if out := remote(t, pool0, "alice", "ls", "-d", "/etc", j.JobDir+"/checkpoints/step-20"); !strings.Contains(out, "step-20") {
			t.Fatalf("something was deleted: %q", out)
		}
	})

	t.Run("other users and purge", func(t *testing.T) {
		for _, p := range []string{"/logs", "/metrics", "/checkpoints", "/checkpoints/step-20", "/model", "/model/manifest", "/model?file=config.json", "/events"} {
			if resp, _ := c.get("bob", p); resp.StatusCode != 404 {
				t.Errorf("bob GET %s: %d, want 404", p, resp.StatusCode)
			}
		}
		if resp, _ := c.do("PUT", "bob", "/pin"); resp.StatusCode != 404 {
			t.Errorf("bob pin: %d, want 404", resp.StatusCode)
		}
		if resp, b := c.do("PUT", "alice", "/pin"); resp.StatusCode != 200 || !strings.Contains(string(b), `"pinned":true`) {
			t.Errorf("pin: %d %s", resp.StatusCode, b)
		}
		if p, _, _ := rep.store.Pinned(ctx, j.ID); !p {
			t.Error("pin not stored")
		}
		if resp, _ := c.do("DELETE", "alice", "/pin"); resp.StatusCode != 200 {
			t.Errorf("unpin: %d", resp.StatusCode)
		}
		if resp, _ := c.do("DELETE", "bob", "?purge=1"); resp.StatusCode != 404 {
			t.Errorf("bob purge: %d, want 404", resp.StatusCode)
		}
		if resp, _ := c.do("DELETE", "alice", "?purge=1"); resp.StatusCode != 409 {
			t.Errorf("purge of a running job: %d, want 409", resp.StatusCode)
		}
		if resp, _ := c.do("DELETE", "alice", ""); resp.StatusCode != 400 {
			t.Errorf("DELETE without purge: %d, want 400", resp.StatusCode)
		}
		if _, err := rep.store.Pool.Exec(ctx, `UPDATE jobs SET state = 'succeeded' WHERE id = $1`, j.ID); err != nil {
			t.Fatal(err)
		}
		if resp, b := c.do("DELETE", "admin", "?purge=1"); resp.StatusCode != 200 {
			t.Fatalf("admin purge: %d %s", resp.StatusCode, b)
		}
		if out, _, err := pool0.Run(ctx, "alice", []string{"ls", "-d", j.JobDir}, nil); err == nil {
			t.Fatalf("job directory still there: %s", out)
		}
		if _, purged, _ := rep.store.Pinned(ctx, j.ID); purged == nil {
			t.Error("purge not recorded")
		}
		if out := remote(t, pool0, "alice", "ls", "-d", st.JobRoot+"/alice"); !strings.Contains(out, "alice") {
			t.Fatal("purge removed the user's job root")
		}
		if resp, _ := c.do("DELETE", "alice", "?purge=1"); resp.StatusCode != 200 {
			t.Errorf("second purge: %d, want 200 (idempotent)", resp.StatusCode)
		}
	})
}
