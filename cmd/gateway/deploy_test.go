package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"

	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/metrics"
	"github.com/ftgate/ftgate/internal/sshconn"
)

// unitCredentials returns the systemd unit's Environment=FTGATE_*_FILE=%d/<name>
// variables with %d replaced by dir, after checking that each names a LoadCredential.
func unitCredentials(t *testing.T, unit, dir string) map[string]string {
	t.Helper()
	f, err := os.Open(unit)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	creds := map[string]bool{}
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if v, ok := strings.CutPrefix(line, "LoadCredential="); ok {
			name, _, _ := strings.Cut(v, ":")
			creds[name] = true
		}
		if v, ok := strings.CutPrefix(line, "Environment="); ok {
			k, val, _ := strings.Cut(v, "=")
			if strings.HasPrefix(k, "FTGATE_") {
				env[k] = val
			}
		}
	}
	out := map[string]string{}
	for k, v := range env {
		name, ok := strings.CutPrefix(v, "%d/")
		if !strings.HasSuffix(k, "_FILE") || !ok || !creds[name] {
			t.Errorf("unit: %s=%s is not a _FILE variable reading a LoadCredential", k, v)
			continue
		}
		out[k] = filepath.Join(dir, name)
	}
	if len(out) == 0 {
		t.Fatal("unit passes no credentials")
	}
	return out
}

// TestDeployExampleConfigValidates loads deploy/gateway.example.yaml with the real
// loader, its secrets coming the way the systemd unit passes them.
func TestDeployExampleConfigValidates(t *testing.T) {
	dir := t.TempDir()
	vars := unitCredentials(t, "../../deploy/systemd/ftgate-gateway.service", dir)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{
		"FTGATE_DATABASE_URL_FILE":           "postgres://ftgate@db.example/ftgate?sslmode=verify-full\n",
		"FTGATE_CLUSTERS_0_USER_CA_KEY_FILE": string(pem.EncodeToMemory(block)),
		"FTGATE_METRICS_BEARER_TOKEN_FILE":   "scrape-token-123\n",
	}
	var environ []string
	for k, path := range vars {
		v, ok := secrets[k]
		if !ok {
			t.Fatalf("unit passes %s; the test has no value for it", k)
		}
		if err := os.WriteFile(path, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		environ = append(environ, k+"="+path)
	}
	cfg, err := config.Load("../../deploy/gateway.example.yaml", environ)
	if err != nil {
		t.Fatalf("example config: %v", err)
	}
	if cfg.Database.URL != strings.TrimSpace(secrets["FTGATE_DATABASE_URL_FILE"]) {
		t.Errorf("database.url = %q", cfg.Database.URL)
	}
	if cfg.Metrics.BearerToken != "scrape-token-123" || cfg.Metrics.Listen == "" {
		t.Errorf("metrics %+v", cfg.Metrics)
	}
	if len(cfg.Clusters) != 1 {
		t.Fatalf("clusters: %d", len(cfg.Clusters))
	}
	if _, err := sshconn.LoadSigner(cfg.Clusters[0].UserCAKey); err != nil {
		t.Errorf("user CA key from the credential: %v", err)
	}
}

// registeredMetrics returns the names of every metric the gateway registers.
func registeredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	m := metrics.New()
	m.RegisterJobs(func(context.Context) ([]metrics.JobCount, error) {
		return []metrics.JobCount{{Cluster: "c", State: "queued", N: 1}}, nil
	})
	m.RegisterWebhookOutbox(func(context.Context) (int, error) { return 0, nil })
	names := map[string]bool{}
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		names[f.GetName()] = true
	}
	// Vectors without children are not gathered: describe them.
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	v := reflect.ValueOf(m).Elem()
	for i := 0; i < v.NumField(); i++ {
		c, ok := v.Field(i).Interface().(prometheus.Collector)
		if !ok || v.Field(i).IsNil() {
			continue
		}
		ch := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			if mm := fq.FindStringSubmatch(d.String()); mm != nil {
				names[mm[1]] = true
				names[mm[1]+"_bucket"], names[mm[1]+"_sum"], names[mm[1]+"_count"] = true, true, true
			}
		}
	}
	return names
}

// TestDeployAlertRulesNameRegisteredMetrics checks that every ftgate_* metric in the
// alert rules is one the gateway registers (a renamed metric would silence an alert).
func TestDeployAlertRulesNameRegisteredMetrics(t *testing.T) {
	b, err := os.ReadFile("../../deploy/prometheus/ftgate-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	have := registeredMetrics(t)
	if !have["ftgate_submit_attempts_total"] || have["ftgate_no_such_metric"] {
		t.Fatalf("registered metrics look wrong: %d names", len(have))
	}
	name := regexp.MustCompile(`\bftgate_[a-z0-9_]+`)
	used := map[string]bool{}
	rules := 0
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			rules++
			if r.Alert == "" || r.Expr == "" {
				t.Errorf("group %s: rule %+v lacks alert or expr", g.Name, r)
			}
			for _, n := range name.FindAllString(r.Expr, -1) {
				used[n] = true
				if !have[n] {
					t.Errorf("alert %s uses %s, which the gateway does not register", r.Alert, n)
				}
			}
		}
	}
	var list []string
	for n := range used {
		list = append(list, n)
	}
	sort.Strings(list)
	t.Logf("%d rules use %v", rules, list)
	for _, want := range []string{"ftgate_reconcile_last_success_timestamp_seconds", "ftgate_submit_attempts_total", "ftgate_ssh_dial_failures_total"} {
		if !used[want] {
			t.Errorf("no alert on %s (reconciler lag, submit failures, SSH auth failures)", want)
		}
	}
}
