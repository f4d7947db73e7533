package sshconn

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/ftgate/ftgate/internal/job"
)

// Pool holds one persistent SSH connection per Unix user to one login node.
// It is safe for concurrent use.
type Pool struct {
	cfg      Config
	hostKey  ssh.HostKeyCallback
	hostAlgs []string

	mu     sync.Mutex
	conns  map[string]*conn
	closed bool
}

// New validates cfg, fills defaults and returns a Pool. It does not connect yet.
func New(cfg Config) (*Pool, error) {
	if cfg.Addr == "" {
		return nil, fmt.Errorf("sshconn config addr: is required")
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("sshconn config addr: want host:port: %w", err)
	}
	if cfg.KnownHostsFile == "" {
		return nil, fmt.Errorf("sshconn config known_hosts: is required: host keys are always pinned")
	}
	if (cfg.UserCA == nil) == (cfg.ServiceKey == nil) {
		return nil, fmt.Errorf("sshconn config: set exactly one of user CA (certificates) or service key")
	}
	if cfg.ServiceKey != nil && !job.ValidUser(cfg.ServiceUser) {
		return nil, fmt.Errorf("sshconn config service_user: must match %s, got %q", job.UserRE, cfg.ServiceUser)
	}
	setDur(&cfg.CertTTL, 5*time.Minute)
	setDur(&cfg.CommandTimeout, 30*time.Second)
	setDur(&cfg.KeepAlive, 15*time.Second)
	setDur(&cfg.IdleTimeout, 5*time.Minute)
	setDur(&cfg.DialTimeout, 10*time.Second)
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 8
	}
	if cfg.MaxOutput <= 0 {
		cfg.MaxOutput = 16 << 20
	}
	if cfg.DialAttempts <= 0 {
		cfg.DialAttempts = 3
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	cb, err := knownhosts.New(cfg.KnownHostsFile)
	if err != nil {
		return nil, fmt.Errorf("sshconn config known_hosts: %w", err)
	}
	algs, err := hostKeyAlgorithms(cfg.KnownHostsFile, cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("sshconn config known_hosts: %w", err)
	}
	return &Pool{cfg: cfg, hostKey: pinned(cb), hostAlgs: algs, conns: map[string]*conn{}}, nil
}

func setDur(d *time.Duration, v time.Duration) {
	if *d <= 0 {
		*d = v
	}
}

// conn is the shared connection of one user.
type conn struct {
	p    *Pool
	user string // remote login user
	sem  chan struct{}
	dial chan struct{} // held while dialling

	mu       sync.Mutex
	client   *ssh.Client
	sftp     *sftp.Client
	lastUsed time.Time
	active   int
	cert     ssh.Signer
	certEnd  time.Time
	authFail authFailure // the last refused login (authfail.go)
}

func (p *Pool) conn(user string) (*conn, error) {
	if p.cfg.ServiceKey != nil {
		user = p.cfg.ServiceUser
	} else if !job.ValidUser(user) {
		return nil, job.Errorf(job.EInvalid, "ssh user: must match %s, got %q", job.UserRE, user)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	c := p.conns[user]
	if c == nil {
		c = &conn{p: p, user: user, sem: make(chan struct{}, p.cfg.MaxSessions), dial: make(chan struct{}, 1)}
		p.conns[user] = c
	}
	return c, nil
}

// acquire takes a session slot, waiting with ctx.
func (c *conn) acquire(ctx context.Context) error {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("wait for an ssh session slot: %w", ctx.Err())
	}
	c.mu.Lock()
	c.active++
	c.lastUsed = c.p.cfg.now()
	c.mu.Unlock()
	return nil
}

func (c *conn) release() {
	c.mu.Lock()
	c.active--
	c.lastUsed = c.p.cfg.now()
	c.mu.Unlock()
	<-c.sem
}

// get returns the live client, dialling with backoff when there is none.
func (c *conn) get(ctx context.Context) (*ssh.Client, error) {
	c.mu.Lock()
	cl := c.client
	c.mu.Unlock()
	if cl != nil {
		return cl, nil
	}
	select {
	case c.dial <- struct{}{}:
	case <-ctx.Done():
		return nil, unavailable(c.p.cfg.Addr, fmt.Errorf("wait for ssh dial: %w", ctx.Err()))
	}
	defer func() { <-c.dial }()
	c.mu.Lock()
	cl = c.client
	c.mu.Unlock()
	if cl != nil {
		return cl, nil
	}
	if err := c.authFail.check(c.p.cfg.now(), c.p.cfg.Addr, c.user); err != nil {
		return nil, err
	}
	var err error
	for attempt := 0; attempt < c.p.cfg.DialAttempts; attempt++ {
		if attempt > 0 {
			if werr := sleepCtx(ctx, backoff(attempt)); werr != nil {
				break
			}
		}
		cl, err = c.dialOnce(ctx)
		if err == nil {
			c.mu.Lock()
			c.client = cl
			c.lastUsed = c.p.cfg.now()
			c.mu.Unlock()
			go c.watch(cl)
			c.authFail.forget()
			return cl, nil
		}
		if errors.Is(err, ErrAuth) {
			c.authFail.remember(c.p.cfg.now(), err)
			break
		}
		if errors.Is(err, ErrHostKey) {
			break
		}
		c.p.cfg.Logger.Warn("ssh dial failed", "addr", c.p.cfg.Addr, "user", c.user, "attempt", attempt+1, "err", err)
	}
	if c.p.cfg.OnDialFailure != nil {
		c.p.cfg.OnDialFailure(err)
	}
	return nil, unavailable(c.p.cfg.Addr, err)
}

func unavailable(addr string, err error) error {
	return &job.Error{Code: job.EUnavailable, Message: "cluster login node " + addr + " is unreachable", Err: err}
}

// backoff returns 200ms * 2^(attempt-1), capped at 5s, with ±50% jitter.
func backoff(attempt int) time.Duration {
	d := 200 * time.Millisecond << (attempt - 1)
	if d > 5*time.Second || d <= 0 {
		d = 5 * time.Second
	}
	n, err := rand.Int(rand.Reader, big.NewInt(int64(d)))
	if err != nil {
		return d
	}
	return d/2 + time.Duration(n.Int64())
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *conn) dialOnce(ctx context.Context) (*ssh.Client, error) {
	auth, err := c.auth()
	if err != nil {
		return nil, err
	}
	cfg := &ssh.ClientConfig{
		User:              c.user,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(auth)},
		HostKeyCallback:   c.p.hostKey,
		HostKeyAlgorithms: c.p.hostAlgs,
		Timeout:           c.p.cfg.DialTimeout,
		ClientVersion:     "SSH-2.0-ftgate",
	}
	dctx, cancel := context.WithTimeout(ctx, c.p.cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(dctx, "tcp", c.p.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", c.p.cfg.Addr, err)
	}
	if dl, ok := dctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	sc, chans, reqs, err := ssh.NewClientConn(nc, c.p.cfg.Addr, cfg)
	if err != nil {
		nc.Close()
		if errors.Is(err, ErrHostKey) {
			return nil, err
		}
		if authRefused(err) {
			return nil, fmt.Errorf("%w as %s at %s: %v", ErrAuth, c.user, c.p.cfg.Addr, err)
		}
		return nil, fmt.Errorf("ssh handshake with %s: %w", c.p.cfg.Addr, err)
	}
	_ = nc.SetDeadline(time.Time{})
	c.p.cfg.Logger.Info("ssh connected", "addr", c.p.cfg.Addr, "user", c.user)
	return ssh.NewClient(sc, chans, reqs), nil
}

// watch sends keepalives, closes the connection when idle, and forgets it when it dies.
func (c *conn) watch(cl *ssh.Client) {
	done := make(chan struct{})
	go func() { _ = cl.Wait(); close(done) }()
	t := time.NewTicker(c.p.cfg.KeepAlive)
	defer t.Stop()
	for {
		select {
		case <-done:
			c.drop(cl)
			return
		case <-t.C:
		}
		c.mu.Lock()
		idle := c.active == 0 && c.p.cfg.now().Sub(c.lastUsed) >= c.p.cfg.IdleTimeout
		c.mu.Unlock()
		if idle {
			c.p.cfg.Logger.Info("ssh idle close", "addr", c.p.cfg.Addr, "user", c.user)
			c.drop(cl)
			return
		}
		ok := make(chan error, 1)
		go func() { _, _, err := cl.SendRequest("keepalive@openssh.com", true, nil); ok <- err }()
		select {
		case err := <-ok:
			if err != nil {
				c.p.cfg.Logger.Warn("ssh keepalive failed", "addr", c.p.cfg.Addr, "user", c.user, "err", err)
				c.drop(cl)
				return
			}
		case <-time.After(c.p.cfg.KeepAlive):
			c.p.cfg.Logger.Warn("ssh keepalive timed out", "addr", c.p.cfg.Addr, "user", c.user)
			c.drop(cl)
			return
		case <-done:
			c.drop(cl)
			return
		}
	}
}

// drop closes cl and forgets it if it is still the current client.
func (c *conn) drop(cl *ssh.Client) {
	c.mu.Lock()
	var sc *sftp.Client
	if c.client == cl {
		c.client = nil
		sc = c.sftp
		c.sftp = nil
	}
	c.mu.Unlock()
	if sc != nil {
		sc.Close()
	}
	cl.Close()
}

// Close closes every connection. Calls after Close fail with ErrClosed.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	conns := p.conns
	p.conns = map[string]*conn{}
	p.mu.Unlock()
	for _, c := range conns {
		c.mu.Lock()
		cl := c.client
		c.mu.Unlock()
		if cl != nil {
			c.drop(cl)
		}
	}
	return nil
}
