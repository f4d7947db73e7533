// Package doctor checks a gateway deployment before users hit it: the configuration,
// Postgres, the identity provider and, per cluster, the login node, Slurm, the job
// root and the trainer on a compute node. Each check prints one line saying what is
// wrong and what to fix; `gateway doctor` exits non-zero when one failed.
package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/postgres"
)

// Status is a check's outcome.
type Status string

// Outcomes, printed as the first word of a line.
const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "FAIL"
	Skip Status = "skip"
)

// Result is one printed line.
type Result struct {
	Name   string // e.g. "postgres", "dev: host key"
	Status Status
	Detail string // what was found
	Fix    string // what to do about it (Fail and Warn)
}

// String is the printed line.
func (r Result) String() string {
	s := fmt.Sprintf("%-4s %s: %s", r.Status, r.Name, r.Detail)
	if r.Fix != "" {
		s += " — fix: " + r.Fix
	}
	return s
}

// Options configure one run.
type Options struct {
	ConfigPath string   // YAML file (may be empty: environment only)
	Environ    []string // os.Environ() form, for FTGATE_* overrides
	Out        io.Writer
	// CheckTimeout bounds each check (default 20s); TrainerTimeout the compute-node
	// job (default 3m).
	CheckTimeout   time.Duration
	TrainerTimeout time.Duration
	HTTP           *http.Client // provider discovery (default: 5s timeout)
	Logger         *slog.Logger // SSH connection events (default: discarded)
}

// Run runs every check in order, printing each result to o.Out as it completes, and
// returns the results.
func Run(ctx context.Context, o Options) []Result {
	if o.CheckTimeout <= 0 {
		o.CheckTimeout = 20 * time.Second
	}
	if o.TrainerTimeout <= 0 {
		o.TrainerTimeout = 3 * time.Minute
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: 5 * time.Second}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r := &run{o: o}
	cfg, err := config.Load(o.ConfigPath, o.Environ)
	if err != nil {
		r.add(Result{Name: "config", Status: Fail, Detail: oneLine(err.Error()), Fix: "correct the named keys (docs/config.md)"})
		return r.results
	}
	where := o.ConfigPath
	if where == "" {
		where = "environment"
	}
	r.add(Result{Name: "config", Status: OK, Detail: fmt.Sprintf("%s is valid (%d clusters)", where, len(cfg.Clusters))})
	r.add(r.postgres(ctx, cfg))
	r.add(r.discovery(ctx, cfg.OIDC))
	r.add(audience(cfg.OIDC))
	for i := range cfg.Clusters {
		r.cluster(ctx, i, &cfg.Clusters[i])
	}
	return r.results
}

// Failed counts the failed results.
func Failed(rs []Result) int {
	n := 0
	for _, r := range rs {
		if r.Status == Fail {
			n++
		}
	}
	return n
}

type run struct {
	o       Options
	results []Result
}

func (r *run) add(res Result) {
	r.results = append(r.results, res)
	if r.o.Out != nil {
		fmt.Fprintln(r.o.Out, res.String())
	}
}

func (r *run) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.o.CheckTimeout)
}

func (r *run) postgres(ctx context.Context, cfg *config.Config) Result {
	res := Result{Name: "postgres"}
	ctx, cancel := r.timeout(ctx)
	defer cancel()
	pool, err := postgres.Open(ctx, cfg.Database.URL, 2)
	if err == nil {
		defer pool.Close()
		err = pool.Ping(ctx)
	}
	if err != nil {
		res.Status, res.Detail = Fail, "cannot connect: "+oneLine(err.Error())
		res.Fix = "check database.url (or FTGATE_DATABASE_URL_FILE), that Postgres listens there and pg_hba.conf admits the gateway"
		return res
	}
	ms, err := postgres.MigrationStatus(ctx, pool)
	if err != nil {
		res.Status, res.Detail = Fail, "read migrations: "+oneLine(err.Error())
		res.Fix = "grant the gateway's database user ownership of its database"
		return res
	}
	var pending []string
	for _, m := range ms {
		if m.AppliedAt == nil {
			pending = append(pending, fmt.Sprintf("%04d_%s", m.Version, m.Name))
		}
	}
	if len(pending) > 0 {
		res.Status, res.Detail = Fail, fmt.Sprintf("reachable; %d migrations pending: %s", len(pending), strings.Join(pending, ", "))
		res.Fix = "run `gateway migrate up` (or set database.migrate_on_start)"
		return res
	}
	res.Status, res.Detail = OK, fmt.Sprintf("reachable; %d migrations applied, none pending", len(ms))
	return res
}

// discovery fetches the provider's OpenID configuration and checks its issuer.
func (r *run) discovery(ctx context.Context, o config.OIDC) Result {
	res := Result{Name: "oidc discovery"}
	ctx, cancel := r.timeout(ctx)
	defer cancel()
	url := strings.TrimSuffix(o.Issuer, "/") + "/.well-known/openid-configuration"
	fix := "check oidc.issuer and that the gateway host can reach the provider"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		res.Status, res.Detail, res.Fix = Fail, oneLine(err.Error()), fix
		return res
	}
	resp, err := r.o.HTTP.Do(req)
	if err != nil {
		res.Status, res.Detail, res.Fix = Fail, "provider unreachable: "+oneLine(err.Error()), fix
		return res
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		res.Status, res.Detail, res.Fix = Fail, fmt.Sprintf("GET %s: HTTP %d", url, resp.StatusCode), fix
		return res
	}
	var doc struct {
		Issuer       string `json:"issuer"`
		JWKSURI      string `json:"jwks_uri"`
		DeviceAuthEP string `json:"device_authorization_endpoint"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc); err != nil {
		res.Status, res.Detail, res.Fix = Fail, "discovery document: "+oneLine(err.Error()), fix
		return res
	}
	switch {
	case doc.Issuer != o.Issuer:
		res.Status, res.Detail = Fail, fmt.Sprintf("provider says issuer %q, config says %q", doc.Issuer, o.Issuer)
		res.Fix = "set oidc.issuer to exactly the provider's issuer"
	case doc.JWKSURI == "":
		res.Status, res.Detail, res.Fix = Fail, "discovery document has no jwks_uri", "use an OpenID Connect provider"
	case doc.DeviceAuthEP == "":
		res.Status, res.Detail = Warn, "issuer matches, but the provider offers no device flow"
		res.Fix = "enable the device authorization grant for `ftctl auth login` on a headless machine"
	default:
		res.Status, res.Detail = OK, "issuer "+o.Issuer+" matches; keys at "+doc.JWKSURI
	}
	return res
}

func audience(o config.OIDC) Result {
	res := Result{Name: "oidc audience/client"}
	if o.ClientID == "" {
		res.Status, res.Detail = Fail, fmt.Sprintf("audiences %v, but no client_id for ftctl", o.Audiences)
		res.Fix = "register a public client (device flow, PKCE) at the provider and set oidc.client_id"
		return res
	}
	res.Status, res.Detail = OK, fmt.Sprintf("audiences %v, ftctl client %q", o.Audiences, o.ClientID)
	return res
}

// oneLine keeps the first line of a message, at most 300 characters.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// errText is err's message on one line, or "" for nil.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return oneLine(err.Error())
}

var errNoProbeUser = errors.New("probe_user is not set")
