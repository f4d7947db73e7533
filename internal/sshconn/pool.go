package sshconn

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path"
	"strings"
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

// pinned wraps a knownhosts callback so that every refusal wraps ErrHostKey.
func pinned(cb ssh.HostKeyCallback) ssh.HostKeyCallback {
	return func(host string, remote net.Addr, key ssh.PublicKey) error {
		err := cb(host, remote, key)
		if err == nil {
			return nil
		}
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) && len(ke.Want) > 0 {
			return fmt.Errorf("%w: %s presented a %s key that does not match known_hosts (possible man-in-the-middle): %v",
				ErrHostKey, host, key.Type(), err)
		}
		return fmt.Errorf("%w: %s is not in known_hosts: %v", ErrHostKey, host, err)
	}
}

// hostKeyAlgorithms returns the key algorithms known_hosts pins for addr, so that the
// server is asked for a key we can verify. Nil means the library's default order.
func hostKeyAlgorithms(file, addr string) ([]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	want := knownhosts.Normalize(addr)
	var algs []string
	seen := map[string]bool{}
	add := func(a ...string) {
		for _, x := range a {
			if !seen[x] {
				seen[x] = true
				algs = append(algs, x)
			}
		}
	}
	for len(b) > 0 {
		marker, hosts, key, _, rest, err := ssh.ParseKnownHosts(b)
		if err != nil {
			break
		}
		b = rest
		if marker == "revoked" {
			continue
		}
		match := false
		for _, h := range hosts {
			if knownhosts.Normalize(h) == want {
				match = true
			}
		}
		if !match && marker != "cert-authority" {
			continue
		}
		if marker == "cert-authority" {
			// Any host key type may be certified; keep the default list for those.
			return nil, nil
		}
		switch key.Type() {
		case ssh.KeyAlgoRSA:
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		default:
			add(key.Type())
		}
	}
	return algs, nil
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
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, fmt.Errorf("%w as %s at %s: %v", ErrAuth, c.user, c.p.cfg.Addr, err)
		}
		return nil, fmt.Errorf("ssh handshake with %s: %w", c.p.cfg.Addr, err)
	}
	_ = nc.SetDeadline(time.Time{})
	c.p.cfg.Logger.Info("ssh connected", "addr", c.p.cfg.Addr, "user", c.user)
	return ssh.NewClient(sc, chans, reqs), nil
}

// auth returns the signer to log in with: the service key, or this user's
// certificate, minted anew when it is missing or within a fifth of its validity
// (at most a minute) of expiry.
func (c *conn) auth() (ssh.Signer, error) {
	if c.p.cfg.ServiceKey != nil {
		return c.p.cfg.ServiceKey, nil
	}
	now := c.p.cfg.now()
	margin := c.p.cfg.CertTTL / 5
	if margin > time.Minute {
		margin = time.Minute
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cert != nil && now.Add(margin).Before(c.certEnd) {
		return c.cert, nil
	}
	s, end, _, err := MintCert(c.p.cfg.UserCA, c.user, now, c.p.cfg.CertTTL)
	if err != nil {
		return nil, err
	}
	c.cert, c.certEnd = s, end
	return s, nil
}

// MintCert generates a fresh ed25519 key and returns it as a signer carrying a user
// certificate signed by ca, whose only principal is user, valid from one minute
// before now (clock skew) until now+ttl. It also returns the expiry and serial.
func MintCert(ca ssh.Signer, user string, now time.Time, ttl time.Duration) (ssh.Signer, time.Time, uint64, error) {
	if !job.ValidUser(user) {
		return nil, time.Time{}, 0, fmt.Errorf("mint certificate: invalid user %q", user)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, time.Time{}, 0, fmt.Errorf("mint certificate: %w", err)
	}
	key, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, time.Time{}, 0, fmt.Errorf("mint certificate: %w", err)
	}
	var sb [8]byte
	if _, err := rand.Read(sb[:]); err != nil {
		return nil, time.Time{}, 0, fmt.Errorf("mint certificate: %w", err)
	}
	serial := binary.BigEndian.Uint64(sb[:])
	end := now.Add(ttl)
	cert := &ssh.Certificate{
		Key:             key.PublicKey(),
		Serial:          serial,
		CertType:        ssh.UserCert,
		KeyId:           "ftgate:" + user,
		ValidPrincipals: []string{user},
		ValidAfter:      uint64(now.Add(-time.Minute).Unix()),
		ValidBefore:     uint64(end.Unix()),
	}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		return nil, time.Time{}, 0, fmt.Errorf("sign certificate: %w", err)
	}
	cs, err := ssh.NewCertSigner(cert, key)
	if err != nil {
		return nil, time.Time{}, 0, fmt.Errorf("mint certificate: %w", err)
	}
	return cs, end, serial, nil
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

// session opens a session, redialling once when the connection turned out dead.
func (c *conn) session(ctx context.Context) (*ssh.Session, *ssh.Client, error) {
	for try := 0; ; try++ {
		cl, err := c.get(ctx)
		if err != nil {
			return nil, nil, err
		}
		s, err := cl.NewSession()
		if err == nil {
			return s, cl, nil
		}
		var oce *ssh.OpenChannelError
		if errors.As(err, &oce) {
			return nil, nil, unavailable(c.p.cfg.Addr, fmt.Errorf("open ssh session: %w", err))
		}
		c.drop(cl)
		if try >= 1 {
			return nil, nil, unavailable(c.p.cfg.Addr, fmt.Errorf("open ssh session: %w", err))
		}
	}
}

// stop kills and closes a session whose result is no longer wanted; when the server
// does not close it within two seconds the whole connection is dropped.
func (c *conn) stop(s *ssh.Session, cl *ssh.Client, waited <-chan error) {
	_ = s.Signal(ssh.SIGKILL)
	s.Close()
	select {
	case <-waited:
	case <-time.After(2 * time.Second):
		c.p.cfg.Logger.Warn("ssh session did not close; dropping connection", "addr", c.p.cfg.Addr, "user", c.user)
		c.drop(cl)
	}
}

// Run runs argv (quoted by Command) as user and returns its stdout and stderr.
// stdin, when not nil, is copied to the command's standard input. A non-zero exit
// returns *ExitError; the deadline is the sooner of ctx's and Config.CommandTimeout.
func (p *Pool) Run(ctx context.Context, user string, argv []string, stdin io.Reader) (stdout, stderr []byte, err error) {
	cmd, err := Command(argv)
	if err != nil {
		return nil, nil, job.Errorf(job.EInvalid, "%v", err)
	}
	c, err := p.conn(user)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.CommandTimeout)
	defer cancel()
	if err := c.acquire(ctx); err != nil {
		return nil, nil, err
	}
	defer c.release()
	s, cl, err := c.session(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer s.Close()
	if stdin != nil {
		s.Stdin = stdin
	}
	outR, err := s.StdoutPipe()
	if err != nil {
		return nil, nil, fmt.Errorf("ssh stdout: %w", err)
	}
	errR, err := s.StderrPipe()
	if err != nil {
		return nil, nil, fmt.Errorf("ssh stderr: %w", err)
	}
	if err := s.Start(cmd); err != nil {
		return nil, nil, unavailable(p.cfg.Addr, fmt.Errorf("start remote command: %w", err))
	}
	var outB, errB bytes.Buffer
	over := make(chan struct{}, 2)
	var wg sync.WaitGroup
	read := func(dst *bytes.Buffer, r io.Reader) {
		defer wg.Done()
		n, _ := io.Copy(dst, io.LimitReader(r, p.cfg.MaxOutput+1))
		if n > p.cfg.MaxOutput {
			dst.Truncate(int(p.cfg.MaxOutput))
			over <- struct{}{}
			_, _ = io.Copy(io.Discard, r)
		}
	}
	wg.Add(2)
	go read(&outB, outR)
	go read(&errB, errR)
	waited := make(chan error, 1)
	go func() { wg.Wait(); waited <- s.Wait() }()
	var werr error
	select {
	case werr = <-waited:
	case <-over:
		c.stop(s, cl, waited)
		return nil, nil, fmt.Errorf("run %s: %w (%d bytes)", argv[0], ErrOutputLimit, p.cfg.MaxOutput)
	case <-ctx.Done():
		c.stop(s, cl, waited)
		return nil, nil, unavailable(p.cfg.Addr, fmt.Errorf("run %s: %w", argv[0], ctx.Err()))
	}
	select {
	case <-over:
		return outB.Bytes(), errB.Bytes(), fmt.Errorf("run %s: %w (%d bytes)", argv[0], ErrOutputLimit, p.cfg.MaxOutput)
	default:
	}
	if werr != nil {
		var ee *ssh.ExitError
		if errors.As(werr, &ee) {
			x := &ExitError{Status: ee.ExitStatus(), Signal: ee.Signal(), Stderr: errB.Bytes()}
			if ee.Signal() != "" {
				x.Status = -1
			}
			return outB.Bytes(), errB.Bytes(), x
		}
		return outB.Bytes(), errB.Bytes(), unavailable(p.cfg.Addr, fmt.Errorf("run %s: %w", argv[0], werr))
	}
	return outB.Bytes(), errB.Bytes(), nil
}

// ExitStatus returns the exit status (-1 when killed by a signal).
func (e *ExitError) ExitStatus() int { return e.Status }

// sftpClient returns the connection's SFTP client, starting it when needed.
func (c *conn) sftpClient(ctx context.Context) (*sftp.Client, error) {
	for try := 0; ; try++ {
		cl, err := c.get(ctx)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		if c.client == cl && c.sftp != nil {
			sc := c.sftp
			c.mu.Unlock()
			return sc, nil
		}
		c.mu.Unlock()
		sc, err := sftp.NewClient(cl)
		if err == nil {
			c.mu.Lock()
			if c.client == cl && c.sftp == nil {
				c.sftp = sc
				c.mu.Unlock()
				return sc, nil
			}
			c.mu.Unlock()
			sc.Close()
			continue
		}
		var oce *ssh.OpenChannelError
		if errors.As(err, &oce) || try >= 1 {
			return nil, unavailable(c.p.cfg.Addr, fmt.Errorf("start sftp: %w", err))
		}
		c.drop(cl)
	}
}

// withSFTP runs fn with the user's SFTP client under the command deadline, in one
// session slot (sftpslot.go).
func (p *Pool) withSFTP(ctx context.Context, user, remote string, fn func(*sftp.Client) error) error {
	_, err := p.sftpInSlot(ctx, user, remote, false, fn)
	return err
}

// checkPath applies job.CheckRemotePath, as an EInvalid error.
func checkPath(p string) error {
	if err := job.CheckRemotePath(p); err != nil {
		return job.Errorf(job.EInvalid, "path: %v", err)
	}
	return nil
}

// WriteFile writes data to path as user atomically: into a temporary file in the
// same directory, then renamed over path (POSIX rename when the server supports it).
// perm applies to the new file.
func (p *Pool) WriteFile(ctx context.Context, user, remote string, data []byte, perm os.FileMode) error {
	return p.withSFTP(ctx, user, remote, func(sc *sftp.Client) error {
		var rb [6]byte
		_, _ = rand.Read(rb[:])
		tmp := path.Join(path.Dir(remote), fmt.Sprintf(".%s.tmp-%x", path.Base(remote), rb))
		f, err := sc.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
		if err != nil {
			return fmt.Errorf("create %s: %w", tmp, err)
		}
		if err := f.Chmod(perm); err != nil {
			f.Close()
			_ = sc.Remove(tmp)
			return fmt.Errorf("chmod %s: %w", tmp, err)
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			_ = sc.Remove(tmp)
			return fmt.Errorf("write %s: %w", tmp, err)
		}
		if err := f.Close(); err != nil {
			_ = sc.Remove(tmp)
			return fmt.Errorf("close %s: %w", tmp, err)
		}
		if err := sc.PosixRename(tmp, remote); err != nil {
			_ = sc.Remove(tmp)
			return fmt.Errorf("rename %s to %s: %w", tmp, remote, err)
		}
		return nil
	})
}

// ReadFile reads the whole file at path, refusing files larger than max bytes.
func (p *Pool) ReadFile(ctx context.Context, user, remote string, max int64) ([]byte, error) {
	var out []byte
	err := p.withSFTP(ctx, user, remote, func(sc *sftp.Client) error {
		f, err := sc.Open(remote)
		if err != nil {
			return fmt.Errorf("open %s: %w", remote, err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, max+1))
		if err != nil {
			return fmt.Errorf("read %s: %w", remote, err)
		}
		if int64(len(b)) > max {
			return fmt.Errorf("read %s: %w (%d bytes)", remote, ErrOutputLimit, max)
		}
		out = b
		return nil
	})
	return out, err
}

// Stat returns the file info of path (following symlinks).
func (p *Pool) Stat(ctx context.Context, user, remote string) (os.FileInfo, error) {
	var fi os.FileInfo
	err := p.withSFTP(ctx, user, remote, func(sc *sftp.Client) (err error) {
		fi, err = sc.Stat(remote)
		return err
	})
	return fi, err
}

// Lstat returns the file info of path without following a final symlink.
func (p *Pool) Lstat(ctx context.Context, user, remote string) (os.FileInfo, error) {
	var fi os.FileInfo
	err := p.withSFTP(ctx, user, remote, func(sc *sftp.Client) (err error) {
		fi, err = sc.Lstat(remote)
		return err
	})
	return fi, err
}

// ReadDir lists the directory at path.
func (p *Pool) ReadDir(ctx context.Context, user, remote string) ([]os.FileInfo, error) {
	var fis []os.FileInfo
	err := p.withSFTP(ctx, user, remote, func(sc *sftp.Client) (err error) {
		fis, err = sc.ReadDir(remote)
		return err
	})
	return fis, err
}

// MkdirAll creates path and its missing parents with mode perm.
func (p *Pool) MkdirAll(ctx context.Context, user, remote string, perm os.FileMode) error {
	return p.withSFTP(ctx, user, remote, func(sc *sftp.Client) error {
		if err := sc.MkdirAll(remote); err != nil {
			return fmt.Errorf("mkdir %s: %w", remote, err)
		}
		return sc.Chmod(remote, perm)
	})
}

// RealPath resolves path on the remote side (symlinks and ..), for containment checks.
func (p *Pool) RealPath(ctx context.Context, user, remote string) (string, error) {
	var out string
	err := p.withSFTP(ctx, user, remote, func(sc *sftp.Client) (err error) {
		out, err = sc.RealPath(remote)
		return err
	})
	return out, err
}

// Open opens path for streaming, positioned at offset. The caller must Close it; the
// stream holds one of the connection's session slots until then (it counts toward
// max_sessions). Reads are not bounded by Config.CommandTimeout; they stop when ctx
// ends.
func (p *Pool) Open(ctx context.Context, user, remote string, offset int64) (io.ReadCloser, error) {
	var f *sftp.File
	release, err := p.sftpInSlot(ctx, user, remote, true, func(sc *sftp.Client) error {
		var err error
		f, err = sc.Open(remote)
		if err != nil {
			return fmt.Errorf("open %s: %w", remote, err)
		}
		if offset > 0 {
			if _, err := f.Seek(offset, io.SeekStart); err != nil {
				f.Close()
				return fmt.Errorf("seek %s: %w", remote, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &slotFile{ctx: ctx, f: f, release: release}, nil
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
