package doctor

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"

	"github.com/ftgate/ftgate/internal/postgres/pgtest"
	"github.com/ftgate/ftgate/internal/stacktest"
)

// TestIntegrationDoctor runs `gateway doctor`'s checks against the dev stack, first on
// a copy of its gateway config (healthy: no check fails), then on copies with one piece
// broken at a time; each breakage fails its own line and no other.
func TestIntegrationDoctor(t *testing.T) {
	st := stacktest.Require(t)
	_, schema := pgtest.Open(t, st.PGURL, true)
	b, err := os.ReadFile(st.GatewayConfig)
	if err != nil {
		t.Fatal(err)
	}
	trainerDir, err := filepath.Abs("../../trainer") // this checkout's trainer, which has --check
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	emptyDir := filepath.Join(dir, "empty")
	if err := os.Mkdir(emptyDir, 0o755); err != nil {
		t.Fatal(err)
	}
	otherKnownHosts := filepath.Join(dir, "known_hosts")
	writeOtherKey(t, otherKnownHosts, st.SSHAddr)

	base := func() map[string]any {
		var m map[string]any
		if err := yaml.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		m["database"].(map[string]any)["url"] = st.PGURL + "&search_path=" + schema
		cluster(m)["trainer_dir"] = trainerDir
		cluster(m)["python"] = st.Python
		return m
	}
	for _, tc := range []struct {
		name   string
		break_ func(m map[string]any)
		fails  string // the one check that must fail ("" none)
	}{
		{"healthy", func(map[string]any) {}, ""},
		{"wrong host key", func(m map[string]any) { cluster(m)["known_hosts"] = otherKnownHosts }, "dev: host key"},
		{"unknown partition", func(m map[string]any) { cluster(m)["partitions"] = []string{"gpu", "nosuchpart"} }, "dev: partition nosuchpart"},
		{"python is /bin/false", func(m map[string]any) { cluster(m)["python"] = "/bin/false" }, "dev: trainer"},
		{"trainer_dir empty", func(m map[string]any) { cluster(m)["trainer_dir"] = emptyDir }, "dev: trainer"},
		{"provider down", func(m map[string]any) { m["oidc"].(map[string]any)["issuer"] = "http://" + unusedAddr(t) + "/dex" }, "oidc discovery"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := base()
			if tc.fails != "" {
				// One cluster is enough to see one breakage; every cluster's checks
				// (a trainer job on each) run in the healthy case.
				m["clusters"] = m["clusters"].([]any)[:1]
			}
			tc.break_(m)
			f := filepath.Join(t.TempDir(), "gateway.yaml")
			out, err := yaml.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(f, out, 0o600); err != nil {
				t.Fatal(err)
			}
			var printed bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			rs := Run(ctx, Options{ConfigPath: f, Out: &printed, TrainerTimeout: 2 * time.Minute})
			t.Logf("doctor printed:\n%s", printed.String())
			if lines := strings.Count(printed.String(), "\n"); lines != len(rs) {
				t.Errorf("%d lines printed for %d checks", lines, len(rs))
			}
			var failed []string
			for _, r := range rs {
				if r.Status == Fail {
					failed = append(failed, r.Name)
					if r.Fix == "" {
						t.Errorf("%s failed without a fix: %v", r.Name, r)
					}
				}
			}
			if tc.fails == "" {
				for _, c := range m["clusters"].([]any) {
					if name := c.(map[string]any)["name"].(string); !strings.Contains(printed.String(), name+": trainer") {
						t.Errorf("no trainer check for cluster %s", name)
					}
				}
			}
			want := []string{}
			if tc.fails != "" {
				want = []string{tc.fails}
			}
			if fmt.Sprint(failed) != fmt.Sprint(want) {
				t.Fatalf("failed checks %q, want %q", failed, want)
			}
			if tc.fails == "" {
				names := map[string]Status{}
				for _, r := range rs {
					names[r.Name] = r.Status
				}
				for _, n := range []string{"config", "postgres", "oidc discovery", "oidc audience/client", "dev: host key",
					"dev: login", "dev: scontrol ping", "dev: partition gpu", "dev: partition urgent", "dev: gpu type",
					"dev: job_root", "dev: trainer", "dev: signal lead"} {
					if s, ok := names[n]; !ok || s == Skip {
						t.Errorf("check %q: status %q, want it run", n, s)
					}
				}
			}
		})
	}
}

func cluster(m map[string]any) map[string]any {
	return m["clusters"].([]any)[0].(map[string]any)
}

// writeOtherKey writes a known_hosts file pinning a freshly generated key for addr.
func writeOtherKey(t *testing.T, path, addr string) {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(addr)
	line := fmt.Sprintf("[%s]:%s %s", host, port, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))))
	if err := os.WriteFile(path, []byte(line+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// unusedAddr returns a loopback address nothing listens on.
func unusedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}
