package sshconn

// Sessions and remote commands.

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/ftgate/ftgate/internal/job"
)

// session opens a session, redialling once when the connection turned out dead and
// retrying, until ctx ends, while the server refuses it for its session limit.
func (c *conn) session(ctx context.Context) (*ssh.Session, *ssh.Client, error) {
	refused := 0
	for try := 0; ; {
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
			if werr := c.waitRefused(ctx, oce, &refused); werr != nil {
				return nil, nil, unavailable(c.p.cfg.Addr, fmt.Errorf("open ssh session: %w", werr))
			}
			continue
		}
		c.drop(cl)
		if try++; try > 1 {
			return nil, nil, unavailable(c.p.cfg.Addr, fmt.Errorf("open ssh session: %w", err))
		}
	}
}

// waitRefused waits before another try at a channel the server refused. The pool
// frees a slot as soon as its session is closed on this side, but the server (sshd's
// MaxSessions) counts the session until it has processed the close, so a new channel
// can be refused for a moment although the pool is within the limit. Such refusals
// (administratively prohibited, resource shortage) are retried with a short backoff
// until ctx ends; any other refusal, and the refusal that outlasts ctx, is returned.
func (c *conn) waitRefused(ctx context.Context, oce *ssh.OpenChannelError, refused *int) error {
	if oce.Reason != ssh.Prohibited && oce.Reason != ssh.ResourceShortage {
		return oce
	}
	*refused++
	if err := sleepCtx(ctx, refusedBackoff(*refused)); err != nil {
		return fmt.Errorf("server refused %d times (%v): %w", *refused, oce, err)
	}
	return nil
}

// refusedBackoff is the wait after the n-th refused channel: 5ms doubling up to 200ms,
// with ±50% jitter.
func refusedBackoff(n int) time.Duration {
	d := 5 * time.Millisecond << min(n-1, 6)
	d = min(d, 200*time.Millisecond)
	j, err := rand.Int(rand.Reader, big.NewInt(int64(d)))
	if err != nil {
		return d
	}
	return d/2 + time.Duration(j.Int64())
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
