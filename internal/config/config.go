// Package config loads the gateway's configuration: a YAML file, then FTGATE_*
// environment overrides (and FTGATE_*_FILE variants for secrets), then defaults and
// validation with errors that name the key.
package config

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/quota"
	"github.com/ftgate/ftgate/internal/webhook"
)

// Config is the whole gateway configuration.
type Config struct {
	// Listen is the HTTP listen address, e.g. 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
	// PublicURL is the gateway's external base URL, used in links and clients.
	PublicURL string `yaml:"public_url"`
	// ListenTLS, when set, is an HTTPS listen address served with TLSCertFile and
	// TLSKeyFile, re-read when they change (see serving.go).
	ListenTLS   string `yaml:"listen_tls"`
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
	// TrustedProxies are CIDRs (or addresses) whose X-Forwarded-For/-Proto/-Host
	// headers are honoured; from other peers those headers are dropped.
	TrustedProxies []string `yaml:"trusted_proxies"`

	Database Database  `yaml:"database"`
	OIDC     OIDC      `yaml:"oidc"`
	Limits   Limits    `yaml:"limits"`
	Metrics  Metrics   `yaml:"metrics"`
	Clusters []Cluster `yaml:"clusters"`
	Web      Web       `yaml:"web"`
	Webhooks Webhooks  `yaml:"webhooks"`
}

// Webhooks configures signed webhooks (docs/webhooks.md): which targets users may
// register, and how the outbox is sent.
type Webhooks struct {
	// Allow lists addresses, CIDRs and host names ("*.example.edu" for a domain).
	// Loopback, private, link-local, unspecified and other non-public addresses are
	// refused unless they lie in a listed address or CIDR; a listed host name never
	// opens a non-public address.
	Allow []string `yaml:"allow"`
	// OnlyListed also refuses public addresses of hosts that are not listed: webhooks
	// reach listed targets only.
	OnlyListed bool `yaml:"only_listed"`
	// Timeout bounds one delivery attempt (default 10s, at most 1m).
	Timeout time.Duration `yaml:"timeout"`
	// MaxAttempts before a delivery fails for good (default 10).
	MaxAttempts int `yaml:"max_attempts"`
	// RetryMin and RetryMax bound the exponential backoff between attempts (default
	// 10s doubling up to 1h, with ±20% jitter).
	RetryMin time.Duration `yaml:"retry_min"`
	RetryMax time.Duration `yaml:"retry_max"`
	// PollInterval is how often each replica looks for due deliveries (default 1s).
	PollInterval time.Duration `yaml:"poll_interval"`
	// MaxEndpointsPerUser caps a user's registered endpoints (default 20).
	MaxEndpointsPerUser int `yaml:"max_endpoints_per_user"`
	// Keep is how long finished deliveries stay in the delivery log (default 720h).
	Keep time.Duration `yaml:"keep"`
}

// Policy is the target policy of Allow and OnlyListed.
func (w Webhooks) Policy() (webhook.Policy, error) { return webhook.ParsePolicy(w.Allow, w.OnlyListed) }

// Web configures the dashboard served at / and its login: the gateway is the
// dashboard's OIDC client (authorization code + PKCE, exchanged on the server) and keeps
// the session in a sealed HttpOnly cookie.
type Web struct {
	// ClientID of the dashboard's client at oidc.issuer; empty disables login (the pages
	// are still served and say so).
	ClientID string `yaml:"client_id"`
	// ClientSecret of a confidential client (empty: a public client, PKCE only).
	ClientSecret string `yaml:"client_secret" secret:"true"`
	// RedirectURL registered at the provider (default public_url + /auth/callback).
	RedirectURL string `yaml:"redirect_url"`
	// Scopes requested at login.
	Scopes []string `yaml:"scopes"`
	// SessionKey seals session cookies: 32 bytes as 64 hex digits or base64. Empty: a
	// random key per process (sessions end when the gateway restarts; one replica only).
	SessionKey string `yaml:"session_key" secret:"true"`
	// SecureCookies marks cookies Secure; they are also Secure when public_url is https
	// or the request came over TLS.
	SecureCookies bool `yaml:"secure_cookies"`
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	// Listen, when set, serves /metrics on this address only (not on listen).
	Listen string `yaml:"listen"`
	// BearerToken, when set, is required as "Authorization: Bearer <token>" on /metrics.
	BearerToken string `yaml:"bearer_token" secret:"true"`
}

// Database configures the Postgres connection.
type Database struct {
	// URL is a libpq/pgx connection string.
	URL string `yaml:"url" secret:"true"`
	// MigrateOnStart runs pending migrations when `gateway serve` starts.
	MigrateOnStart bool `yaml:"migrate_on_start"`
	// MaxConns caps the pool size (0: pgx default).
	MaxConns int `yaml:"max_conns"`
}

// OIDC configures bearer-token verification and the identity mapping.
type OIDC struct {
	// Issuer is the exact issuer URL (no trailing slash differences tolerated).
	Issuer string `yaml:"issuer"`
	// Audiences accepted in the token's aud claim: the API's own identifier.
	Audiences []string `yaml:"audiences"`
	// AllowedClients, when set, restricts azp/client_id.
	AllowedClients []string `yaml:"allowed_clients"`
	// ClientID is the public client ftctl uses (served by /api/auth/config).
	ClientID string `yaml:"client_id"`
	// Scopes ftctl requests.
	Scopes []string `yaml:"scopes"`
	// UsernameClaim names the claim holding the Unix account.
	UsernameClaim string `yaml:"username_claim"`
	// GroupsClaim names the claim holding group names.
	GroupsClaim string `yaml:"groups_claim"`
	// AdminGroups grant the admin role.
	AdminGroups []string `yaml:"admin_groups"`
	// DenyUsers are Unix accounts never mapped, in addition to the ones always denied:
	// root, the system and daemon accounts (auth.DefaultDenyUsers), every account whose
	// UID on the gateway host is below MinUID, and each cluster's probe_user and
	// service_user.
	DenyUsers []string `yaml:"deny_users"`
	// MinUID: an account that exists on the gateway host (NSS: passwd, LDAP, SSSD) with a
	// UID below it is never mapped (default 1000; system accounts).
	MinUID int `yaml:"min_uid"`
	// MappingFile is an optional YAML map of subject -> Unix account that wins over the claim.
	// The file is read again when its size or modification time changes (checked
	// every MappingReloadInterval, default 5s) and on SIGHUP; a file that cannot be read
	// or has a bad entry keeps the mapping in force (logged, and counted in
	// ftgate_mapping_reloads_total{result="error"}).
	MappingFile string `yaml:"mapping_file"`
	// MappingReloadInterval is how often the mapping file is checked for changes.
	MappingReloadInterval time.Duration `yaml:"mapping_reload_interval"`
	// MappingMode is "claim" (default: the mapping file, else username_claim) or "file"
	// (the mapping file only; a subject it does not list is refused). Use "file", or a
	// username_claim users cannot change, where the provider lets users edit
	// preferred_username.
	MappingMode string `yaml:"mapping_mode"`
	// PinAccounts pins each Unix account to the first OIDC subject that maps to it
	// (stored in Postgres); a second subject mapping to the same account is refused.
	PinAccounts bool `yaml:"pin_accounts"`
	// AdminClaim names the claim whose values are matched against admin_groups
	// (default: groups_claim).
	AdminClaim string `yaml:"admin_claim"`
	// ClockSkew tolerated on exp and nbf.
	ClockSkew time.Duration `yaml:"clock_skew"`
}

// Limits are admin limits applied to every submission. The per-user limits count a
// Unix account's jobs (every OIDC subject mapped to it together); Groups and Users
// override them (see For).
type Limits struct {
	// MaxActiveJobsPerUser caps a user's unfinished jobs (submitting, queued,
	// running, pausing and paused; default 10).
	MaxActiveJobsPerUser int `yaml:"max_active_jobs_per_user"`
	// MaxQueuedJobsPerUser caps a user's jobs waiting to start (submitting or
	// queued): the queue cap (0: none).
	MaxQueuedJobsPerUser int `yaml:"max_queued_jobs_per_user"`
	// MaxGPUsPerUser caps the GPUs of a user's submitting, queued, running and
	// pausing jobs together, the new job's included (0: none).
	MaxGPUsPerUser int `yaml:"max_gpus_per_user"`
	// GPUHoursPerWindow caps the GPU-hours a user's runs used in the last Window
	// (0: none); a new job is refused once the user has used them all.
	GPUHoursPerWindow float64 `yaml:"gpu_hours_per_window"`
	// Window is the rolling window of GPUHoursPerWindow (default 168h, 1h..8760h).
	Window time.Duration `yaml:"window"`
	// Groups override the per-user limits above for members of an OIDC group (the
	// groups claim); in several such groups, each limit is the most generous one.
	Groups map[string]LimitOverride `yaml:"groups"`
	// Users override them for one Unix account, over its groups.
	Users map[string]LimitOverride `yaml:"users"`
	// GroupBudgets are GPU-hour budgets an OIDC group's members share: a job of a
	// member (by the groups at its submission) is refused once all the group's runs
	// used the budget in the last Window, whatever each member's own limit.
	GroupBudgets map[string]GroupBudget `yaml:"group_budgets"`
	// MaxBodyBytes caps request bodies.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxStreamsPerUser and MaxStreams cap open event streams, WebSockets and
	// followed logs per user and in all (429 above them).
	MaxStreamsPerUser int `yaml:"max_streams_per_user"`
	MaxStreams        int `yaml:"max_streams"`
}

// GroupBudget is one group's shared budget.
type GroupBudget struct {
	GPUHoursPerWindow float64 `yaml:"gpu_hours_per_window"`
}

// LimitOverride replaces the limits it sets (0: no limit); unset ones stay.
type LimitOverride struct {
	MaxActiveJobsPerUser *int     `yaml:"max_active_jobs_per_user"`
	MaxQueuedJobsPerUser *int     `yaml:"max_queued_jobs_per_user"`
	MaxGPUsPerUser       *int     `yaml:"max_gpus_per_user"`
	GPUHoursPerWindow    *float64 `yaml:"gpu_hours_per_window"`
}

// For resolves the limits of Unix account user in groups: the per-user limits, each
// replaced by the most generous value among the user's groups that set it (0, no
// limit, is the most generous), then by the user's own override.
func (l Limits) For(user string, groups []string) quota.Limits {
	out := quota.Limits{MaxActive: l.MaxActiveJobsPerUser, MaxQueued: l.MaxQueuedJobsPerUser, MaxGPUs: l.MaxGPUsPerUser,
		GPUHours: l.GPUHoursPerWindow, Window: l.Window}
	var set [4]bool // which limits a group set so far
	generous := func(i int, cur *float64, v float64) {
		if !set[i] || *cur != 0 && (v == 0 || v > *cur) {
			*cur = v
		}
		set[i] = true
	}
	vals := [4]float64{}
	for _, g := range groups {
		o, ok := l.Groups[g]
		if !ok {
			continue
		}
		for i, p := range o.values() {
			if p != nil {
				generous(i, &vals[i], *p)
			}
		}
	}
	if o, ok := l.Users[user]; ok {
		for i, p := range o.values() {
			if p != nil {
				vals[i], set[i] = *p, true
			}
		}
	}
	for i, dst := range []*int{&out.MaxActive, &out.MaxQueued, &out.MaxGPUs} {
		if set[i] {
			*dst = int(vals[i])
		}
	}
	if set[3] {
		out.GPUHours = vals[3]
	}
	for _, g := range groups {
		if b, ok := l.GroupBudgets[g]; ok && !slices.ContainsFunc(out.Pools, func(p quota.Pool) bool { return p.Group == g }) {
			out.Pools = append(out.Pools, quota.Pool{Group: g, GPUHours: b.GPUHoursPerWindow})
		}
	}
	slices.SortFunc(out.Pools, func(a, b quota.Pool) int { return strings.Compare(a.Group, b.Group) })
	return out
}

// values lists the override's limits in For's order, as float64.
func (o LimitOverride) values() [4]*float64 {
	var out [4]*float64
	for i, p := range []*int{o.MaxActiveJobsPerUser, o.MaxQueuedJobsPerUser, o.MaxGPUsPerUser} {
		if p != nil {
			v := float64(*p)
			out[i] = &v
		}
	}
	out[3] = o.GPUHoursPerWindow
	return out
}

// Cluster describes one Slurm cluster reached over SSH.
type Cluster struct {
	Name string `yaml:"name"`
	// Host and Port of the login node's sshd.
	Host string `yaml:"host"`
	Port int    `yaml:"port"`
	// KnownHosts is the known_hosts file pinning the login node's host key.
	KnownHosts string `yaml:"known_hosts"`
	// UserCAKey is the gateway's SSH user CA private key (certificate mode).
	UserCAKey string `yaml:"user_ca_key" secret:"true"`
	// CertTTL is the validity of minted user certificates (1m..1h, default 5m).
	CertTTL time.Duration `yaml:"cert_ttl"`
	// ServiceKey and ServiceUser select service-account mode instead of certificates.
	ServiceKey  string `yaml:"service_key" secret:"true"`
	ServiceUser string `yaml:"service_user"`
	// ProbeUser is the trusted Unix account for cluster-wide reads that belong to no
	// job: the reconciler's one squeue/sacct per pass over all users' jobs, capacity
	// (the submit check and /api/system/status) and /ready's `scontrol ping`
	// (default: service_user). It must be an account whose shell and startup files the
	// site controls and that owns no jobs (it is never mapped to a gateway user). Under
	// PrivateData=jobs it needs Slurm operator rights (sacctmgr modify user NAME set
	// AdminLevel=Operator), which /ready checks unless probe_operator_check is false.
	// Without a probe account, each owner's jobs are polled through that owner's own
	// login and capacity is not checked before sbatch.
	ProbeUser string `yaml:"probe_user"`
	// ProbeOperatorCheck makes /ready fail unless the probe account has Slurm
	// AdminLevel Operator or Administrator (default true; set false on clusters without
	// PrivateData=jobs or without slurmdbd).
	ProbeOperatorCheck *bool `yaml:"probe_operator_check"`
	// MaxSessions caps concurrent SSH sessions per connection (below sshd's MaxSessions).
	MaxSessions int `yaml:"max_sessions"`
	// SlurmConf, when set, is exported as SLURM_CONF for remote commands.
	SlurmConf string `yaml:"slurm_conf"`
	// JobRoot holds <job_root>/<unix-user>/<job-id>/.
	JobRoot string `yaml:"job_root"`
	// Partitions users may submit to, and the default one.
	Partitions       []string `yaml:"partitions"`
	DefaultPartition string   `yaml:"default_partition"`
	// Account passed to sbatch when set.
	Account string `yaml:"account"`
	// GPUType, when set, is requested as gpu:<type>:<n>.
	GPUType string `yaml:"gpu_type"`
	// AllowNoWait honours a spec's resources.no_wait: such a job is refused (409,
	// with the free GPU count) instead of queued when its partition has no room for
	// it now, as the probe account reads the nodes (needs probe_user). Without it, a
	// spec asking for no_wait is refused with 422.
	AllowNoWait bool `yaml:"allow_no_wait"`
	// Python is the interpreter on the compute nodes.
	Python string `yaml:"python"`
	// TrainerDir is put on PYTHONPATH so `python -m ftgate_trainer` imports.
	TrainerDir string `yaml:"trainer_dir"`
	// GPUStat is the path of the ftgate-gpustat binary, the GPU sampler (optional).
	GPUStat string `yaml:"gpustat"`
	// TemplateDir overrides the embedded sbatch templates.
	TemplateDir string `yaml:"template_dir"`
	// CheckpointSignal is the signal name sent to request a checkpoint (USR2).
	CheckpointSignal string `yaml:"checkpoint_signal"`
	// SignalLead is how long before the time limit the checkpoint signal fires.
	SignalLead time.Duration `yaml:"signal_lead"`
	// PollInterval is the reconciler interval.
	PollInterval time.Duration `yaml:"poll_interval"`
	// RestartBudget bounds automatic resumes after TIMEOUT/PREEMPTED/NODE_FAIL.
	RestartBudget int `yaml:"restart_budget"`
	// PauseGrace is how long a pausing job may take before it is cancelled.
	PauseGrace time.Duration `yaml:"pause_grace"`
	// CommandTimeout is the deadline of every remote command.
	CommandTimeout time.Duration `yaml:"command_timeout"`
	// Retention is the checkpoint rotation and artifact retention the gateway enforces.
	Retention Retention `yaml:"retention"`
}

// Retention is a cluster's artifact retention policy.
type Retention struct {
	// KeepLast keeps each job's newest complete checkpoints (0: the gateway does not rotate).
	KeepLast int `yaml:"keep_last"`
	// KeepBest also keeps the complete checkpoint with the lowest loss.
	KeepBest bool `yaml:"keep_best"`
	// MaxAge deletes a finished, unpinned job's directory this long after it ended (0: never).
	MaxAge time.Duration `yaml:"max_age"`
	// Interval between retention passes (default 10m).
	Interval time.Duration `yaml:"interval"`
}

// Load reads the YAML file at path (may be empty), applies environment overrides
// from environ (os.Environ() form), fills defaults and validates.
func Load(path string, environ []string) (*Config, error) {
	var c Config
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("parse config %s: %w", path, err)
		}
	}
	if err := applyEnv(&c, environ); err != nil {
		return nil, err
	}
	c.setDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) setDefaults() {
	def(&c.Listen, "127.0.0.1:8080")
	def(&c.LogLevel, "info")
	if c.OIDC.UsernameClaim == "" {
		c.OIDC.UsernameClaim = "preferred_username"
	}
	def(&c.OIDC.GroupsClaim, "groups")
	def(&c.OIDC.MappingMode, "claim")
	def(&c.OIDC.AdminClaim, c.OIDC.GroupsClaim)
	if c.OIDC.MinUID == 0 {
		c.OIDC.MinUID = 1000
	}
	if len(c.OIDC.Scopes) == 0 {
		c.OIDC.Scopes = []string{"openid", "profile", "email", "groups", "offline_access"}
	}
	if c.OIDC.ClockSkew == 0 {
		c.OIDC.ClockSkew = 30 * time.Second
	}
	if c.OIDC.MappingReloadInterval == 0 {
		c.OIDC.MappingReloadInterval = 5 * time.Second
	}
	if len(c.Web.Scopes) == 0 {
		c.Web.Scopes = []string{"openid", "profile", "email", "groups"}
	}
	if c.Web.RedirectURL == "" && c.PublicURL != "" {
		c.Web.RedirectURL = strings.TrimRight(c.PublicURL, "/") + "/auth/callback"
	}
	if strings.HasPrefix(c.PublicURL, "https://") {
		c.Web.SecureCookies = true
	}
	if c.Limits.MaxActiveJobsPerUser == 0 {
		c.Limits.MaxActiveJobsPerUser = 10
	}
	if c.Limits.MaxBodyBytes == 0 {
		c.Limits.MaxBodyBytes = 1 << 20
	}
	if c.Limits.MaxStreamsPerUser == 0 {
		c.Limits.MaxStreamsPerUser = 16
	}
	if c.Limits.MaxStreams == 0 {
		c.Limits.MaxStreams = 1000
	}
	if c.Limits.Window == 0 {
		c.Limits.Window = 168 * time.Hour
	}
	c.Webhooks.setDefaults()
	for i := range c.Clusters {
		cl := &c.Clusters[i]
		if cl.Port == 0 {
			cl.Port = 22
		}
		if cl.CertTTL == 0 {
			cl.CertTTL = 5 * time.Minute
		}
		if cl.MaxSessions == 0 {
			cl.MaxSessions = 8
		}
		def(&cl.ProbeUser, cl.ServiceUser)
		if cl.ProbeOperatorCheck == nil {
			t := true
			cl.ProbeOperatorCheck = &t
		}
		def(&cl.Python, "python3")
		def(&cl.CheckpointSignal, "USR2")
		if cl.SignalLead == 0 {
			cl.SignalLead = 90 * time.Second
		}
		if cl.PollInterval == 0 {
			cl.PollInterval = 2 * time.Second
		}
		if cl.RestartBudget == 0 {
			cl.RestartBudget = 3
		}
		if cl.PauseGrace == 0 {
			cl.PauseGrace = 2 * time.Minute
		}
		if cl.CommandTimeout == 0 {
			cl.CommandTimeout = 30 * time.Second
		}
		if cl.Retention.Interval == 0 {
			cl.Retention.Interval = 10 * time.Minute
		}
		if cl.DefaultPartition == "" && len(cl.Partitions) > 0 {
			cl.DefaultPartition = cl.Partitions[0]
		}
	}
}

func (w *Webhooks) setDefaults() {
	defDur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	defDur(&w.Timeout, 10*time.Second)
	defDur(&w.RetryMin, 10*time.Second)
	defDur(&w.RetryMax, time.Hour)
	defDur(&w.PollInterval, time.Second)
	defDur(&w.Keep, 30*24*time.Hour)
	if w.MaxAttempts == 0 {
		w.MaxAttempts = 10
	}
	if w.MaxEndpointsPerUser == 0 {
		w.MaxEndpointsPerUser = webhook.DefaultMaxEndpoints
	}
}

func (w Webhooks) validate(bad func(key, format string, a ...any)) {
	if _, err := w.Policy(); err != nil {
		bad("webhooks.allow", "%v", err)
	}
	if w.Timeout < 100*time.Millisecond || w.Timeout > time.Minute {
		bad("webhooks.timeout", "must be between 100ms and 1m, got %s", w.Timeout)
	}
	if w.MaxAttempts < 1 || w.MaxAttempts > 100 {
		bad("webhooks.max_attempts", "must be between 1 and 100, got %d", w.MaxAttempts)
	}
	if w.RetryMin < 10*time.Millisecond || w.RetryMax < w.RetryMin {
		bad("webhooks.retry_min", "must be at least 10ms and at most webhooks.retry_max (%s), got %s", w.RetryMax, w.RetryMin)
	}
	if w.PollInterval < 10*time.Millisecond {
		bad("webhooks.poll_interval", "must be at least 10ms, got %s", w.PollInterval)
	}
	if w.MaxEndpointsPerUser < 0 {
		bad("webhooks.max_endpoints_per_user", "must be >= 0")
	}
	if w.Keep < time.Hour {
		bad("webhooks.keep", "must be at least 1h, got %s", w.Keep)
	}
}

func def(s *string, v string) {
	if *s == "" {
		*s = v
	}
}

var (
	signalRE = regexp.MustCompile(`^(USR1|USR2|TERM|INT|HUP|URG)$`)
)

// Validate checks the configuration and names the offending key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("config %s: %s", key, fmt.Sprintf(format, a...)))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level", "must be debug, info, warn or error, got %q", c.LogLevel)
	}
	c.validateServing(bad)
	if c.Database.URL == "" {
		bad("database.url", "is required")
	}
	if c.OIDC.Issuer == "" {
		bad("oidc.issuer", "is required (authentication is mandatory)")
	}
	if len(c.OIDC.Audiences) == 0 {
		bad("oidc.audiences", "needs at least one audience (the API's own identifier)")
	}
	switch c.OIDC.MappingMode {
	case "claim":
	case "file":
		if c.OIDC.MappingFile == "" {
			bad("oidc.mapping_mode", "file needs oidc.mapping_file")
		}
	default:
		bad("oidc.mapping_mode", "must be claim or file, got %q", c.OIDC.MappingMode)
	}
	if c.OIDC.MinUID < 0 {
		bad("oidc.min_uid", "must be >= 0")
	}
	if c.OIDC.MappingReloadInterval < 100*time.Millisecond || c.OIDC.MappingReloadInterval > time.Hour {
		bad("oidc.mapping_reload_interval", "must be between 100ms and 1h, got %s", c.OIDC.MappingReloadInterval)
	}
	if c.Limits.MaxActiveJobsPerUser < 0 {
		bad("limits.max_active_jobs_per_user", "must be >= 0")
	}
	if c.Limits.MaxStreamsPerUser < 0 || c.Limits.MaxStreams < 0 {
		bad("limits.max_streams_per_user and max_streams", "must be >= 0")
	}
	c.Limits.validate(bad)
	if c.Metrics.Listen != "" && c.Metrics.Listen == c.Listen {
		bad("metrics.listen", "must differ from listen (%s); leave it empty to serve /metrics there", c.Listen)
	}
	if c.Web.ClientID != "" && c.Web.RedirectURL == "" {
		bad("web.redirect_url", "is required with web.client_id (or set public_url)")
	}
	if c.Web.SessionKey != "" {
		if _, err := c.Web.Key(); err != nil {
			bad("web.session_key", "%v", err)
		}
	}
	c.Webhooks.validate(bad)
	seen := map[string]bool{}
	for i, cl := range c.Clusters {
		k := func(f string) string { return fmt.Sprintf("clusters[%d].%s", i, f) }
		if !job.NameRE.MatchString(cl.Name) {
			bad(k("name"), "must match %s, got %q", job.NameRE, cl.Name)
		}
		if seen[cl.Name] {
			bad(k("name"), "duplicate cluster %q", cl.Name)
		}
		seen[cl.Name] = true
		if cl.Host == "" {
			bad(k("host"), "is required")
		}
		if cl.Port < 1 || cl.Port > 65535 {
			bad(k("port"), "must be 1..65535, got %d", cl.Port)
		}
		if cl.KnownHosts == "" {
			bad(k("known_hosts"), "is required: host keys are always pinned")
		}
		if (cl.UserCAKey == "") == (cl.ServiceKey == "") {
			bad(k("user_ca_key"), "set exactly one of user_ca_key (per-user certificates) or service_key")
		}
		if cl.ServiceKey != "" && cl.ServiceUser == "" {
			bad(k("service_user"), "is required with service_key")
		}
		if cl.Retention.KeepLast < 0 {
			bad(k("retention.keep_last"), "must be >= 0")
		}
		if cl.Retention.MaxAge < 0 {
			bad(k("retention.max_age"), "must be >= 0 (0 keeps job directories forever)")
		}
		if cl.Retention.Interval < time.Minute {
			bad(k("retention.interval"), "must be at least 1m")
		}
		if cl.ProbeUser != "" && !job.UserRE.MatchString(cl.ProbeUser) {
			bad(k("probe_user"), "must be a Unix account name matching %s, got %q", job.UserRE, cl.ProbeUser)
		}
		if cl.JobRoot == "" || !strings.HasPrefix(cl.JobRoot, "/") {
			bad(k("job_root"), "must be an absolute path, got %q", cl.JobRoot)
		}
		if len(cl.Partitions) == 0 {
			bad(k("partitions"), "needs at least one partition")
		}
		for _, p := range cl.Partitions {
			if !job.NameRE.MatchString(p) {
				bad(k("partitions"), "invalid partition name %q", p)
			}
		}
		if cl.DefaultPartition != "" && !contains(cl.Partitions, cl.DefaultPartition) {
			bad(k("default_partition"), "%q is not in partitions", cl.DefaultPartition)
		}
		if cl.GPUType != "" && !job.NameRE.MatchString(cl.GPUType) {
			bad(k("gpu_type"), "invalid GPU type %q", cl.GPUType)
		}
		if !signalRE.MatchString(cl.CheckpointSignal) {
			bad(k("checkpoint_signal"), "must be one of USR1 USR2 TERM INT HUP URG, got %q", cl.CheckpointSignal)
		}
		if cl.SignalLead < 0 || cl.SignalLead > time.Hour {
			bad(k("signal_lead"), "must be between 0 and 1h")
		}
		if cl.CertTTL < time.Minute || cl.CertTTL > time.Hour {
			bad(k("cert_ttl"), "must be between 1m and 1h (a leaked certificate is valid that long), got %s", cl.CertTTL)
		}
		if cl.MaxSessions < 1 {
			bad(k("max_sessions"), "must be >= 1")
		}
		if cl.RestartBudget < 0 {
			bad(k("restart_budget"), "must be >= 0")
		}
		if cl.AllowNoWait && cl.ProbeUser == "" {
			bad(k("allow_no_wait"), "needs probe_user (or service_user): the free GPUs are read as the probe account")
		}
	}
	return errors.Join(errs...)
}

// validate checks the quota limits and their overrides.
func (l Limits) validate(bad func(key, format string, a ...any)) {
	if l.MaxQueuedJobsPerUser < 0 {
		bad("limits.max_queued_jobs_per_user", "must be >= 0 (0: no queue cap)")
	}
	if l.MaxGPUsPerUser < 0 {
		bad("limits.max_gpus_per_user", "must be >= 0 (0: no limit)")
	}
	if l.GPUHoursPerWindow < 0 || math.IsNaN(l.GPUHoursPerWindow) || math.IsInf(l.GPUHoursPerWindow, 0) {
		bad("limits.gpu_hours_per_window", "must be a number >= 0 (0: no limit)")
	}
	if l.Window < time.Hour || l.Window > 8760*time.Hour {
		bad("limits.window", "must be between 1h and 8760h (a year), got %s", l.Window)
	}
	check := func(key string, o LimitOverride) {
		for _, f := range []struct {
			name string
			v    *int
		}{{"max_active_jobs_per_user", o.MaxActiveJobsPerUser}, {"max_queued_jobs_per_user", o.MaxQueuedJobsPerUser}, {"max_gpus_per_user", o.MaxGPUsPerUser}} {
			if f.v != nil && *f.v < 0 {
				bad(key+"."+f.name, "must be >= 0 (0: no limit)")
			}
		}
		if h := o.GPUHoursPerWindow; h != nil && (*h < 0 || math.IsNaN(*h) || math.IsInf(*h, 0)) {
			bad(key+".gpu_hours_per_window", "must be a number >= 0 (0: no limit)")
		}
	}
	for _, g := range sortedKeys(l.Groups) {
		if strings.TrimSpace(g) == "" {
			bad("limits.groups", "a group name is empty")
		}
		check("limits.groups."+g, l.Groups[g])
	}
	for _, g := range sortedKeys(l.GroupBudgets) {
		if strings.TrimSpace(g) == "" {
			bad("limits.group_budgets", "a group name is empty")
		}
		if h := l.GroupBudgets[g].GPUHoursPerWindow; !(h > 0) || math.IsInf(h, 0) {
			bad("limits.group_budgets."+g+".gpu_hours_per_window", "must be a number > 0 (leave the group out for no budget)")
		}
	}
	for _, u := range sortedKeys(l.Users) {
		if !job.UserRE.MatchString(u) {
			bad("limits.users", "%q is not a Unix account name (must match %s)", u, job.UserRE)
		}
		check("limits.users."+u, l.Users[u])
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TrustedAccounts are the clusters' probe and service accounts: never gateway users.
func (c *Config) TrustedAccounts() []string {
	var out []string
	for _, cl := range c.Clusters {
		for _, u := range []string{cl.ProbeUser, cl.ServiceUser} {
			if u != "" && !contains(out, u) {
				out = append(out, u)
			}
		}
	}
	return out
}

// Key decodes SessionKey: nil when unset, else exactly 32 bytes.
func (w Web) Key() ([]byte, error) {
	if w.SessionKey == "" {
		return nil, nil
	}
	k, err := hex.DecodeString(w.SessionKey)
	if err != nil {
		if k, err = base64.StdEncoding.DecodeString(w.SessionKey); err != nil {
			return nil, errors.New("want 32 bytes as 64 hex digits or base64")
		}
	}
	if len(k) != 32 {
		return nil, fmt.Errorf("want 32 bytes, got %d", len(k))
	}
	return k, nil
}

// Cluster returns the named cluster.
func (c *Config) Cluster(name string) (*Cluster, bool) {
	for i := range c.Clusters {
		if c.Clusters[i].Name == name {
			return &c.Clusters[i], true
		}
	}
	return nil, false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// applyEnv overlays FTGATE_<PATH> variables, where PATH is the upper-cased yaml path
// joined by '_' (FTGATE_DATABASE_URL, FTGATE_CLUSTERS_0_HOST). A FTGATE_<PATH>_FILE
// variable reads the value from a file (for secrets). Lists take comma-separated values.
func applyEnv(c *Config, environ []string) error {
	env := map[string]string{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, "FTGATE_") {
			env[k] = v
		}
	}
	if len(env) == 0 {
		return nil
	}
	// Grow the cluster list to the highest index mentioned.
	for k := range env {
		rest, ok := strings.CutPrefix(k, "FTGATE_CLUSTERS_")
		if !ok {
			continue
		}
		idx, _, _ := strings.Cut(rest, "_")
		n, err := strconv.Atoi(idx)
		if err != nil || n < 0 || n > 64 {
			return fmt.Errorf("config env %s: bad cluster index", k)
		}
		for len(c.Clusters) <= n {
			c.Clusters = append(c.Clusters, Cluster{})
		}
	}
	return walk(reflect.ValueOf(c).Elem(), "FTGATE", env)
}

func walk(v reflect.Value, prefix string, env map[string]string) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		key := prefix + "_" + strings.ToUpper(tag)
		fv := v.Field(i)
		switch {
		case f.Type.Kind() == reflect.Struct:
			if err := walk(fv, key, env); err != nil {
				return err
			}
			continue
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			for j := 0; j < fv.Len(); j++ {
				if err := walk(fv.Index(j), fmt.Sprintf("%s_%d", key, j), env); err != nil {
					return err
				}
			}
			continue
		}
		val, ok := env[key]
		if file, fok := env[key+"_FILE"]; fok {
			b, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("config env %s_FILE: %w", key, err)
			}
			val, ok = strings.TrimRight(string(b), "\r\n"), true
		}
		if !ok {
			continue
		}
		if err := set(fv, val); err != nil {
			return fmt.Errorf("config env %s: %w", key, err)
		}
	}
	return nil
}

func set(fv reflect.Value, val string) error {
	switch {
	case fv.Type() == reflect.TypeOf(time.Duration(0)):
		d, err := time.ParseDuration(val)
		if err != nil {
			return fmt.Errorf("want a duration like 30s: %w", err)
		}
		fv.SetInt(int64(d))
	case fv.Kind() == reflect.String:
		fv.SetString(val)
	case fv.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(val)
		if err != nil {
			return fmt.Errorf("want true or false")
		}
		fv.SetBool(b)
	case fv.Kind() == reflect.Float64:
		f, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return fmt.Errorf("want a number")
		}
		fv.SetFloat(f)
	case fv.Kind() == reflect.Int || fv.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			return fmt.Errorf("want an integer")
		}
		fv.SetInt(n)
	case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.String:
		var parts []string
		for _, p := range strings.Split(val, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		fv.Set(reflect.ValueOf(parts))
	default:
		return fmt.Errorf("unsupported type %s", fv.Type())
	}
	return nil
}
