// Command gateway is the ftgate server.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/ftgate/ftgate/internal/api"
	"github.com/ftgate/ftgate/internal/artifact"
	"github.com/ftgate/ftgate/internal/auth"
	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/deliver"
	"github.com/ftgate/ftgate/internal/event"
	"github.com/ftgate/ftgate/internal/metrics"
	"github.com/ftgate/ftgate/internal/postgres"
	"github.com/ftgate/ftgate/internal/reconcile"
	"github.com/ftgate/ftgate/internal/slurm"
	"github.com/ftgate/ftgate/internal/sshconn"
	"github.com/ftgate/ftgate/internal/submit"
	"github.com/ftgate/ftgate/internal/version"
	"github.com/ftgate/ftgate/internal/wiring"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	var cfgPath string
	root := &cobra.Command{
		Use:           "gateway",
		Short:         "The ftgate server: OIDC-authenticated REST gateway to Slurm fine-tuning jobs",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version.String(),
	}
	root.SetVersionTemplate("gateway {{.Version}}\n")
	root.PersistentFlags().StringVarP(&cfgPath, "config", "c", os.Getenv("FTGATE_CONFIG"), "config file (YAML); FTGATE_* variables override it")
	load := func() (*config.Config, error) { return config.Load(cfgPath, os.Environ()) }
	root.AddCommand(&cobra.Command{
		Use:   "serve",
		Short: "Run the HTTP server, the submitter and the reconciler",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			if err := config.CheckFileModes(cfgPath, cfg); err != nil {
				return err
			}
			return serve(cmd.Context(), cfg)
		},
	})
	root.AddCommand(newMigrate(load), newCA(load), newDoctor(&cfgPath))
	return root
}

func newMigrate(load func() (*config.Config, error)) *cobra.Command {
	cmd := &cobra.Command{
		Use:       "migrate up|down|status",
		Short:     "Apply, revert (newest one) or list the embedded database migrations",
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"up", "down", "status"},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Minute)
			defer cancel()
			pool, err := postgres.Open(ctx, cfg.Database.URL, 2)
			if err != nil {
				return err
			}
			defer pool.Close()
			return migrate(ctx, pool, args[0], cmd.OutOrStdout())
		},
	}
	return cmd
}

func migrate(ctx context.Context, p *pgxpool.Pool, op string, out io.Writer) error {
	switch op {
	case "up":
		done, err := postgres.MigrateUp(ctx, p)
		if err != nil {
			return err
		}
		if len(done) == 0 {
			fmt.Fprintln(out, "migrations: up to date")
		}
		for _, v := range done {
			fmt.Fprintf(out, "applied %04d\n", v)
		}
	case "down":
		v, err := postgres.MigrateDown(ctx, p)
		if err != nil {
			return err
		}
		if v == 0 {
			fmt.Fprintln(out, "migrations: nothing to revert")
		} else {
			fmt.Fprintf(out, "reverted %04d\n", v)
		}
	case "status":
		ms, err := postgres.MigrationStatus(ctx, p)
		if err != nil {
			return err
		}
		for _, m := range ms {
			at := "pending"
			if m.AppliedAt != nil {
				at = "applied " + m.AppliedAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(out, "%04d_%s\t%s\n", m.Version, m.Name, at)
		}
	default:
		return fmt.Errorf("migrate: want up, down or status, got %q", op)
	}
	return nil
}

func newCA(load func() (*config.Config, error)) *cobra.Command {
	var cluster string
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Print the SSH user CA public key of each cluster (for sshd's TrustedUserCAKeys)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			n := 0
			for _, cl := range cfg.Clusters {
				if cluster != "" && cl.Name != cluster {
					continue
				}
				if cl.UserCAKey == "" {
					continue
				}
				s, err := sshconn.LoadSigner(cl.UserCAKey)
				if err != nil {
					return fmt.Errorf("cluster %s user_ca_key: %w", cl.Name, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s ftgate-user-ca-%s\n", sshconn.AuthorizedKey(s), cl.Name)
				n++
			}
			if n == 0 {
				return errors.New("no cluster with a user_ca_key (certificate mode) matches")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", "", "only this cluster")
	return cmd
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

func serve(ctx context.Context, cfg *config.Config) error {
	log := newLogger(cfg.LogLevel)
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	pool, err := postgres.Open(ctx, cfg.Database.URL, cfg.Database.MaxConns)
	if err != nil {
		return err
	}
	defer pool.Close()
	if cfg.Database.MigrateOnStart {
		done, err := postgres.MigrateUp(ctx, pool)
		if err != nil {
			return err
		}
		log.Info("migrations applied", "versions", done)
	}
	a, err := assemble(ctx, cfg, pool, log)
	if err != nil {
		return err
	}
	defer a.close()
	// SIGHUP reloads the mapping file (instead of ending the process).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	a.hup = hup
	var wg sync.WaitGroup
	wctx, cancelWorkers := context.WithCancel(ctx)
	defer cancelWorkers()
	wg.Add(1)
	go func() { defer wg.Done(); a.run(wctx) }()

	servers := []*http.Server{newHTTPServer(cfg.Listen, a.handler)}
	if cfg.Metrics.Listen != "" {
		servers = append(servers, newHTTPServer(cfg.Metrics.Listen, a.metrics))
	}
	hts, err := tlsServer(cfg, servers[0], log)
	if err != nil {
		cancelWorkers()
		wg.Wait()
		return err
	}
	errc := make(chan error, len(servers)+1)
	for _, hs := range servers {
		go func() { errc <- hs.ListenAndServe() }()
	}
	if hts != nil {
		go func() { errc <- hts.ListenAndServeTLS("", "") }()
	}
	log.Info("gateway listening", "addr", cfg.Listen, "tls_addr", cfg.ListenTLS, "metrics", cfg.Metrics.Listen, "version", version.Version, "commit", version.Commit, "clusters", len(cfg.Clusters))
	select {
	case err := <-errc:
		for _, hs := range servers {
			_ = hs.Close()
		}
		if hts != nil {
			_ = hts.Close()
		}
		cancelWorkers()
		wg.Wait()
		return fmt.Errorf("listen: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if hts != nil {
		_ = hts.Shutdown(shutCtx)
	}
	for _, hs := range servers[1:] {
		_ = hs.Shutdown(shutCtx)
	}
	err = servers[0].Shutdown(shutCtx)
	cancelWorkers()
	wg.Wait()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// Server limits: headers within 10 s and 64 KiB, a whole request within 60 s, idle
// keep-alive connections closed after 120 s. No write timeout: downloads and streams
// are long; streams clear the read deadline and bound each write themselves.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 60 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
)

// newHTTPServer returns the gateway's HTTP server for addr with its bounds.
func newHTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}

// app is the assembled gateway: the HTTP handler and the background workers.
type app struct {
	handler http.Handler
	// metrics serves /metrics on metrics.listen (when set).
	metrics http.Handler
	sub     *submit.Submitter
	rec     *reconcile.Reconciler
	hub     *event.Hub
	ret     *artifact.Retainer
	hooks   *deliver.Worker
	closers []func() error
	// probed are the clusters with a probe account: run reads their capacity once at
	// start, so the first submissions do not wait for scontrol.
	probed []*slurm.Client
	// verifier's mapping file is reloaded when it changes (checked every
	// mappingInterval) and whenever hup delivers (SIGHUP; serve sets it).
	verifier        *auth.Verifier
	mappingInterval time.Duration
	hup             <-chan os.Signal
}

// run runs the event hub, retention, the submitter, the reconciler, the webhook
// sender and the mapping file's reloads until ctx ends.
func (a *app) run(ctx context.Context) {
	for _, c := range a.probed {
		go func() { _, _ = c.CachedCapacity(ctx) }() // a failure shows at the first submission's check
	}
	var wg sync.WaitGroup
	wg.Add(6)
	go func() { defer wg.Done(); a.hooks.Run(ctx) }()
	go func() { defer wg.Done(); _ = a.hub.Run(ctx) }()
	go func() { defer wg.Done(); a.verifier.WatchMapping(ctx, a.mappingInterval, a.hup) }()
	go func() {
		defer wg.Done()
		if len(a.ret.Clusters) > 0 {
			a.ret.Run(ctx)
		}
	}()
	go func() { defer wg.Done(); a.sub.Run(ctx) }()
	go func() { defer wg.Done(); a.rec.Run(ctx) }()
	wg.Wait()
}

func (a *app) close() {
	for _, c := range a.closers {
		_ = c()
	}
}

// The wiring below hands these implementations to their consumers' interfaces; the
// checks make a missing method a build error instead of a 503 at run time (e.g. an
// SSH pool that is not an artifact.FS would fail every artifact route).
var (
	_ api.Store               = (*postgres.Store)(nil)
	_ api.Templates           = (*postgres.Store)(nil)
	_ api.Slurm               = (*slurm.Client)(nil)
	_ api.Files               = (*sshconn.Pool)(nil)
	_ api.Authenticator       = (*auth.Verifier)(nil)
	_ artifact.FS             = (*sshconn.Pool)(nil)
	_ artifact.RetentionStore = (*postgres.Store)(nil)
	_ event.Log               = (*postgres.Store)(nil)
	_ submit.Store            = (*postgres.Store)(nil)
	_ submit.Slurm            = (*slurm.Client)(nil)
	_ submit.Files            = (*sshconn.Pool)(nil)
	_ reconcile.Store         = (*postgres.Store)(nil)
	_ reconcile.Slurm         = (*slurm.Client)(nil)
	_ reconcile.Lease         = (*postgres.Leader)(nil)
	_ api.WebhookStore        = (*postgres.Store)(nil)
	_ deliver.Store           = (*postgres.Store)(nil)
)

// assemble builds the gateway on pool from cfg: OIDC verifier, one SSH pool and Slurm
// client per cluster, the API server, the submitter and the reconciler.
func assemble(ctx context.Context, cfg *config.Config, pool *pgxpool.Pool, log *slog.Logger) (*app, error) {
	store := postgres.New(pool)
	ocfg := cfg.OIDC
	ocfg.DenyUsers = append(slices.Clone(ocfg.DenyUsers), cfg.TrustedAccounts()...) // probe and service accounts are no users
	m := metrics.New()
	aopts := []auth.Option{auth.WithLogger(log), auth.WithMappingReloaded(func(err error) {
		result := "ok"
		if err != nil {
			result = "error"
		}
		m.MappingReloads.WithLabelValues(result).Inc()
	})}
	if ocfg.PinAccounts {
		aopts = append(aopts, auth.WithPinner(store))
	}
	verifier, err := auth.New(ctx, ocfg, aopts...)
	if err != nil {
		return nil, fmt.Errorf("oidc: %w", err)
	}
	m.RegisterJobs(func(ctx context.Context) ([]metrics.JobCount, error) {
		cs, err := store.CountByState(ctx)
		out := make([]metrics.JobCount, len(cs))
		for i, c := range cs {
			out[i] = metrics.JobCount{Cluster: c.Cluster, State: string(c.State), N: c.N}
		}
		return out, err
	})
	m.RegisterWebhookOutbox(store.PendingDeliveries)
	policy, err := cfg.Webhooks.Policy()
	if err != nil {
		return nil, fmt.Errorf("webhooks.allow: %w", err)
	}
	guard := &deliver.Guard{Policy: policy}
	wh := cfg.Webhooks
	a := &app{verifier: verifier, mappingInterval: cfg.OIDC.MappingReloadInterval,
		hooks: &deliver.Worker{Store: store, Sender: &deliver.Sender{Client: deliver.NewClient(guard, wh.Timeout)},
			Interval: wh.PollInterval, Timeout: wh.Timeout, MaxAttempts: wh.MaxAttempts, RetryMin: wh.RetryMin, RetryMax: wh.RetryMax,
			Keep: wh.Keep, Metrics: m, Log: log.With("worker", "webhooks")}}
	a.sub = &submit.Submitter{Store: store, Clusters: map[string]submit.Cluster{}, Log: log.With("worker", "submit"), Metrics: m}
	a.rec = &reconcile.Reconciler{Store: store, Log: log.With("worker", "reconcile"), Metrics: m,
		Lead: func(ctx context.Context) (reconcile.Lease, error) {
			l, err := postgres.TryLead(ctx, pool, "reconcile")
			if l == nil {
				return nil, err
			}
			return l, nil
		}}
	srv := &api.Server{Log: log, Version: version.Version, Auth: verifier, Store: store, Templates: store, Metrics: m,
		MaxBody: cfg.Limits.MaxBodyBytes, Limits: cfg.Limits, Submitter: a.sub,
		AuthConfig: authConfig(cfg.OIDC), MetricsToken: cfg.Metrics.BearerToken, MetricsSeparate: cfg.Metrics.Listen != "",
		MaxStreamsPerUser: cfg.Limits.MaxStreamsPerUser, MaxStreams: cfg.Limits.MaxStreams,
		Webhooks: api.Webhooks{Store: store, Check: guard.Check, MaxPerUser: wh.MaxEndpointsPerUser}}
	if srv.Auth, srv.Web, err = dashboard(ctx, cfg, verifier, log); err != nil {
		return nil, err
	}
	a.hub = event.New(pool, store, event.Config{Logger: log.With("worker", "events")})
	srv.Streams = api.Streams{Hub: a.hub, Events: store}
	a.ret = &artifact.Retainer{Store: store, Log: log.With("worker", "retention"),
		Lead: func(ctx context.Context) (func(), error) {
			l, err := postgres.TryLead(ctx, pool, "retention")
			if l == nil {
				return nil, err
			}
			return l.Release, nil
		}}
	for i := range cfg.Clusters {
		cl := &cfg.Clusters[i]
		scfg, err := wiring.SSHConfig(cl)
		if err != nil {
			a.close()
			return nil, err
		}
		scfg.Logger = log.With("cluster", cl.Name)
		scfg.OnDialFailure = func(err error) {
			m.SSHDialFailures.WithLabelValues(cl.Name, dialFailureReason(err)).Inc()
		}
		ssh, err := sshconn.New(scfg)
		if err != nil {
			a.close()
			return nil, fmt.Errorf("cluster %s: %w", cl.Name, err)
		}
		a.closers = append(a.closers, ssh.Close)
		client, err := slurm.New(ssh, wiring.SlurmOptions(cl))
		if err != nil {
			a.close()
			return nil, fmt.Errorf("cluster %s: %w", cl.Name, err)
		}
		ac := &api.Cluster{Config: *cl, Slurm: client, Files: ssh}
		if cl.ProbeUser != "" {
			ac.Ping = probePing(ssh, cl)
			a.probed = append(a.probed, client)
		}
		srv.Clusters = append(srv.Clusters, ac)
		if r := cl.Retention; r.KeepLast > 0 || r.MaxAge > 0 {
			a.ret.Clusters = append(a.ret.Clusters, artifact.Cluster{Name: cl.Name, Root: cl.JobRoot, FS: ssh,
				Policy: artifact.Policy{KeepLast: r.KeepLast, KeepBest: r.KeepBest, MaxAge: r.MaxAge}})
			if a.ret.Interval == 0 || r.Interval < a.ret.Interval {
				a.ret.Interval = r.Interval
			}
		}
		a.sub.Clusters[cl.Name] = submit.Cluster{Slurm: client, Files: ssh}
		a.rec.Clusters = append(a.rec.Clusters, reconcile.Cluster{Name: cl.Name, Slurm: client, Interval: cl.PollInterval,
			PollUser: cl.ProbeUser, ServiceUser: cl.ServiceUser,
			Policy: reconcile.Policy{RestartBudget: cl.RestartBudget, PauseGrace: cl.PauseGrace, LostGrace: max(time.Minute, 10*cl.PollInterval)}})
	}
	if a.handler, err = trustProxies(cfg, auth.NewAudit(log).Middleware(srv.Handler())); err != nil {
		a.close()
		return nil, err
	}
	a.metrics = srv.MetricsHandler()
	return a, nil
}

func authConfig(o config.OIDC) api.AuthConfig {
	ac := api.AuthConfig{Issuer: o.Issuer, ClientID: o.ClientID, Scopes: o.Scopes, MinClientVersion: version.MinClient}
	if len(o.Audiences) > 0 {
		ac.Audience = o.Audiences[0]
	}
	return ac
}

// probePing is /ready's cluster check: `scontrol ping` as the probe account and, unless
// probe_operator_check is false, that the probe account has Slurm operator rights
// (needed to see every job under PrivateData=jobs).
func probePing(ssh *sshconn.Pool, cl *config.Cluster) func(ctx context.Context) error {
	user := cl.ProbeUser
	env := []string{}
	if cl.SlurmConf != "" {
		env = []string{"env", "SLURM_CONF=" + cl.SlurmConf}
	}
	checkOperator := cl.ProbeOperatorCheck == nil || *cl.ProbeOperatorCheck
	return func(ctx context.Context) error {
		if _, _, err := ssh.Run(ctx, user, append(env, "scontrol", "ping"), nil); err != nil {
			return fmt.Errorf("scontrol ping as %s: %w", user, err)
		}
		if !checkOperator {
			return nil
		}
		out, _, err := ssh.Run(ctx, user, append(env, "sacctmgr", "-n", "-P", "show", "user", user, "format=AdminLevel"), nil)
		if err != nil {
			return fmt.Errorf("sacctmgr show user %s: %w", user, err)
		}
		switch level := strings.TrimSpace(string(out)); level {
		case "Operator", "Administrator":
			return nil
		default:
			return fmt.Errorf("probe account %s has Slurm AdminLevel %q; it needs Operator to see every job "+
				"(sacctmgr modify user %s set AdminLevel=Operator), or set probe_operator_check: false", user, level, user)
		}
	}
}
