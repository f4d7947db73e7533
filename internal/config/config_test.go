package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const minimal = `
database:
  url: postgres://u:p@127.0.0.1:5432/ftgate
oidc:
  issuer: http://127.0.0.1:5556/dex
  audiences: [ftgate-api]
clusters:
- name: dev
  host: 127.0.0.1
  port: 2222
  known_hosts: /etc/ftgate/known_hosts
  user_ca_key: /etc/ftgate/user_ca
  job_root: /scratch/ftgate
  partitions: [gpu, urgent]
`

func write(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	c, err := Load(write(t, "c.yaml", minimal), nil)
	if err != nil {
		t.Fatal(err)
	}
	cl := c.Clusters[0]
	if c.Listen != "127.0.0.1:8080" || c.LogLevel != "info" || c.Limits.MaxActiveJobsPerUser != 10 || c.Limits.MaxBodyBytes != 1<<20 ||
		c.OIDC.UsernameClaim != "preferred_username" || c.OIDC.ClockSkew != 30*time.Second ||
		cl.DefaultPartition != "gpu" || cl.CheckpointSignal != "USR2" || cl.RestartBudget != 3 || cl.PollInterval != 2*time.Second ||
		cl.CertTTL != 5*time.Minute || cl.MaxSessions != 8 || cl.PauseGrace != 2*time.Minute || cl.Python != "python3" {
		t.Fatalf("defaults not applied: %+v", c)
	}
	if got, ok := c.Cluster("dev"); !ok || got.Name != "dev" {
		t.Fatal("Cluster(dev) not found")
	}
}

func TestEnvOverridesAndFile(t *testing.T) {
	t.Parallel()
	secret := write(t, "dburl", "postgres://u:secret@127.0.0.1:5432/ftgate\n")
	env := []string{
		"FTGATE_LISTEN=127.0.0.1:9999",
		"FTGATE_DATABASE_URL_FILE=" + secret,
		"FTGATE_DATABASE_MIGRATE_ON_START=true",
		"FTGATE_LIMITS_MAX_ACTIVE_JOBS_PER_USER=4",
		"FTGATE_OIDC_AUDIENCES=a, b",
		"FTGATE_CLUSTERS_0_POLL_INTERVAL=750ms",
		"FTGATE_CLUSTERS_0_PROBE_USER=alice",
		"FTGATE_CLUSTERS_1_NAME=second",
		"FTGATE_CLUSTERS_1_HOST=login2",
		"FTGATE_CLUSTERS_1_KNOWN_HOSTS=/k",
		"FTGATE_CLUSTERS_1_SERVICE_KEY=/key",
		"FTGATE_CLUSTERS_1_SERVICE_USER=svc",
		"FTGATE_CLUSTERS_1_JOB_ROOT=/jobs",
		"FTGATE_CLUSTERS_1_PARTITIONS=batch",
		"OTHER_VAR=ignored",
	}
	c, err := Load(write(t, "c.yaml", minimal), env)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9999" || c.Database.URL != "postgres://u:secret@127.0.0.1:5432/ftgate" || !c.Database.MigrateOnStart ||
		c.Limits.MaxActiveJobsPerUser != 4 || strings.Join(c.OIDC.Audiences, "|") != "a|b" {
		t.Fatalf("env not applied: %+v", c)
	}
	if len(c.Clusters) != 2 || c.Clusters[0].PollInterval != 750*time.Millisecond || c.Clusters[0].ProbeUser != "alice" ||
		c.Clusters[1].Name != "second" || c.Clusters[1].Port != 22 || c.Clusters[1].ProbeUser != "svc" {
		t.Fatalf("cluster env not applied: %+v", c.Clusters)
	}
}

func TestLoadErrorsNameTheKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		env        []string
		want       string
	}{
		{"no database", strings.Replace(minimal, "url: postgres://u:p@127.0.0.1:5432/ftgate", "url: ''", 1), nil, "config database.url: is required"},
		{"no issuer", strings.Replace(minimal, "issuer: http://127.0.0.1:5556/dex", "issuer: ''", 1), nil, "config oidc.issuer"},
		{"no audience", strings.Replace(minimal, "audiences: [ftgate-api]", "audiences: []", 1), nil, "config oidc.audiences"},
		{"unknown key", minimal + "bogus: 1\n", nil, "field bogus not found"},
		{"bad log level", minimal + "log_level: loud\n", nil, "config log_level"},
		{"bad port", strings.Replace(minimal, "port: 2222", "port: 70000", 1), nil, "config clusters[0].port"},
		{"no known_hosts", strings.Replace(minimal, "known_hosts: /etc/ftgate/known_hosts", "known_hosts: ''", 1), nil, "clusters[0].known_hosts: is required"},
		{"relative job root", strings.Replace(minimal, "job_root: /scratch/ftgate", "job_root: scratch", 1), nil, "clusters[0].job_root"},
		{"bad partition", strings.Replace(minimal, "[gpu, urgent]", "[gpu, 'a b']", 1), nil, "clusters[0].partitions"},
		{"default not allowed", minimal + "  default_partition: debug\n", nil, "clusters[0].default_partition"},
		{"bad signal", minimal + "  checkpoint_signal: KILL\n", nil, "clusters[0].checkpoint_signal"},
		{"bad probe user", minimal + "  probe_user: Root!\n", nil, "clusters[0].probe_user"},
		{"both auth modes", minimal + "  service_key: /k\n  service_user: svc\n", nil, "clusters[0].user_ca_key"},
		{"duplicate cluster", minimal + strings.Join(strings.Split(minimal, "clusters:\n")[1:], ""), nil, `duplicate cluster "dev"`},
		{"env bad int", minimal, []string{"FTGATE_LIMITS_MAX_ACTIVE_JOBS_PER_USER=ten"}, "config env FTGATE_LIMITS_MAX_ACTIVE_JOBS_PER_USER: want an integer"},
		{"env bad duration", minimal, []string{"FTGATE_CLUSTERS_0_POLL_INTERVAL=2"}, "FTGATE_CLUSTERS_0_POLL_INTERVAL: want a duration"},
		{"env bad bool", minimal, []string{"FTGATE_DATABASE_MIGRATE_ON_START=maybe"}, "FTGATE_DATABASE_MIGRATE_ON_START: want true or false"},
		{"env missing file", minimal, []string{"FTGATE_DATABASE_URL_FILE=/nonexistent/secret"}, "config env FTGATE_DATABASE_URL_FILE"},
		{"env bad cluster index", minimal, []string{"FTGATE_CLUSTERS_X_HOST=h"}, "bad cluster index"},
		{"env bad number", minimal, []string{"FTGATE_LIMITS_GPU_HOURS_PER_WINDOW=lots"}, "FTGATE_LIMITS_GPU_HOURS_PER_WINDOW: want a number"},
		{"negative queue cap", minimal + "limits:\n  max_queued_jobs_per_user: -1\n", nil, "config limits.max_queued_jobs_per_user: must be >= 0"},
		{"negative gpus", minimal + "limits:\n  max_gpus_per_user: -2\n", nil, "config limits.max_gpus_per_user"},
		{"negative gpu hours", minimal + "limits:\n  gpu_hours_per_window: -5\n", nil, "config limits.gpu_hours_per_window"},
		{"short window", minimal + "limits:\n  window: 10m\n", nil, "config limits.window: must be between 1h and 8760h"},
		{"bad group override", minimal + "limits:\n  groups:\n    lab: {max_gpus_per_user: -1}\n", nil, "config limits.groups.lab.max_gpus_per_user"},
		{"unknown override key", minimal + "limits:\n  groups:\n    lab: {max_gpu: 1}\n", nil, "field max_gpu not found"},
		{"bad user override", minimal + "limits:\n  users:\n    Bad!: {max_gpus_per_user: 1}\n", nil, `config limits.users: "Bad!" is not a Unix account name`},
		{"no_wait without a probe", minimal + "  allow_no_wait: true\n", nil, "config clusters[0].allow_no_wait: needs probe_user"},
		{"bad reload interval", minimal, []string{"FTGATE_OIDC_MAPPING_RELOAD_INTERVAL=1ms"}, "config oidc.mapping_reload_interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(write(t, "c.yaml", tt.yaml), tt.env)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load error %v, want it to contain %q", err, tt.want)
			}
		})
	}
	if _, err := Load("/nonexistent/gateway.yaml", nil); err == nil || !strings.Contains(err.Error(), "read config") {
		t.Fatalf("missing file: %v", err)
	}
}

// TestWebhooks: defaults, YAML and FTGATE_WEBHOOKS_* overrides, and the errors that
// name the key.
func TestWebhooks(t *testing.T) {
	t.Parallel()
	c, err := Load(write(t, "c.yaml", minimal), nil)
	if err != nil {
		t.Fatal(err)
	}
	w := c.Webhooks
	if w.Timeout != 10*time.Second || w.MaxAttempts != 10 || w.RetryMin != 10*time.Second || w.RetryMax != time.Hour ||
		w.PollInterval != time.Second || w.MaxEndpointsPerUser != 20 || w.Keep != 720*time.Hour || len(w.Allow) != 0 || w.OnlyListed {
		t.Fatalf("webhook defaults: %+v", w)
	}
	c, err = Load(write(t, "c.yaml", minimal+"webhooks:\n  allow: [10.1.0.0/16, hooks.example.edu]\n  max_attempts: 3\n"),
		[]string{"FTGATE_WEBHOOKS_ALLOW=127.0.0.1,*.example.edu", "FTGATE_WEBHOOKS_ONLY_LISTED=true", "FTGATE_WEBHOOKS_RETRY_MIN=100ms"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Webhooks.Policy()
	if err != nil || len(p.Prefixes) != 1 || p.Prefixes[0].String() != "127.0.0.1/32" || len(p.Hosts) != 1 || p.Hosts[0] != "*.example.edu" ||
		!p.OnlyListed || c.Webhooks.MaxAttempts != 3 || c.Webhooks.RetryMin != 100*time.Millisecond {
		t.Fatalf("overrides: %+v %+v %v", c.Webhooks, p, err)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"webhooks:\n  allow: [http://hooks.example.edu]\n", `config webhooks.allow: entry "http://hooks.example.edu" is neither an address, a CIDR nor a host name`},
		{"webhooks:\n  allow: [10.0.0.0/40]\n", "config webhooks.allow: entry"},
		{"webhooks:\n  timeout: 5m\n", "config webhooks.timeout: must be between 100ms and 1m"},
		{"webhooks:\n  max_attempts: 1000\n", "config webhooks.max_attempts: must be between 1 and 100"},
		{"webhooks:\n  retry_min: 2h\n", "config webhooks.retry_min: must be at least 10ms and at most webhooks.retry_max"},
		{"webhooks:\n  poll_interval: 1ms\n", "config webhooks.poll_interval: must be at least 10ms"},
		{"webhooks:\n  max_endpoints_per_user: -1\n", "config webhooks.max_endpoints_per_user: must be >= 0"},
		{"webhooks:\n  keep: 1m\n", "config webhooks.keep: must be at least 1h"},
		{"webhooks:\n  allowed: [127.0.0.1]\n", "field allowed not found"},
	} {
		if _, err := Load(write(t, "c.yaml", minimal+tc.yaml), nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

// TestQuotaConfig: the quota keys load, the window defaults to a week, and For
// resolves per-user limits with group (most generous) and user (wins) overrides.
func TestQuotaConfig(t *testing.T) {
	t.Parallel()
	c, err := Load(write(t, "c.yaml", minimal+`  probe_user: ftgate-probe
  allow_no_wait: true
limits:
  max_active_jobs_per_user: 6
  max_queued_jobs_per_user: 3
  max_gpus_per_user: 4
  gpu_hours_per_window: 100
  groups:
    lab: {max_gpus_per_user: 8, gpu_hours_per_window: 500}
    big: {max_gpus_per_user: 16, max_queued_jobs_per_user: 0}
    small: {max_gpus_per_user: 2}
  users:
    carol: {max_gpus_per_user: 1, max_active_jobs_per_user: 20}
  group_budgets:
    lab: {gpu_hours_per_window: 2000}
    nlp: {gpu_hours_per_window: 300.5}
`), []string{"FTGATE_LIMITS_GPU_HOURS_PER_WINDOW=120.5"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits.Window != 168*time.Hour || c.Limits.GPUHoursPerWindow != 120.5 || !c.Clusters[0].AllowNoWait || c.OIDC.MappingReloadInterval != 5*time.Second {
		t.Fatalf("loaded %+v, allow_no_wait %v, reload %s", c.Limits, c.Clusters[0].AllowNoWait, c.OIDC.MappingReloadInterval)
	}
	l := c.Limits
	tests := []struct {
		user   string
		groups []string
		want   [4]float64 // active, queued, gpus, gpu-hours
	}{
		{"alice", nil, [4]float64{6, 3, 4, 120.5}},
		{"alice", []string{"other"}, [4]float64{6, 3, 4, 120.5}},
		{"alice", []string{"lab"}, [4]float64{6, 3, 8, 500}},
		// a group may lower a limit
		{"alice", []string{"small"}, [4]float64{6, 3, 2, 120.5}},
		// in several groups each limit is the most generous; 0 (none) beats any number
		{"alice", []string{"small", "lab", "big"}, [4]float64{6, 0, 16, 500}},
		// the user's override wins over the groups'
		{"carol", []string{"big"}, [4]float64{20, 0, 1, 120.5}},
	}
	for _, tt := range tests {
		got := l.For(tt.user, tt.groups)
		if g := [4]float64{float64(got.MaxActive), float64(got.MaxQueued), float64(got.MaxGPUs), got.GPUHours}; g != tt.want || got.Window != l.Window {
			t.Errorf("For(%s, %v) = %+v, want %v", tt.user, tt.groups, got, tt.want)
		}
	}
	// Group budgets: one pool per budgeted group of the user, sorted, once each.
	if got := l.For("alice", []string{"nlp", "other", "lab", "nlp"}).Pools; fmt.Sprint(got) != "[{lab 2000} {nlp 300.5}]" {
		t.Errorf("pools of lab+nlp member: %v", got)
	}
	if got := l.For("alice", []string{"other"}).Pools; len(got) != 0 {
		t.Errorf("pools of a member of no budgeted group: %v", got)
	}
	for _, bad := range []string{"  group_budgets:\n    lab: {gpu_hours_per_window: 0}\n", "  group_budgets:\n    lab: {gpu_hours_per_window: -1}\n",
		"  group_budgets:\n    lab: {gpu_hours: 5}\n"} {
		if _, err := Load(write(t, "b.yaml", minimal+"limits:\n"+bad), nil); err == nil || !strings.Contains(err.Error(), "limits.group_budgets.lab") && !strings.Contains(err.Error(), "gpu_hours") {
			t.Errorf("%q: %v, want an error naming limits.group_budgets.lab", bad, err)
		}
	}
}
