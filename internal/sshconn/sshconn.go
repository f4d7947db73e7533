// Package sshconn runs commands and SFTP operations on a cluster's login node over
// golang.org/x/crypto/ssh, as a given Unix user.
//
// A Pool serves one cluster. It keeps one persistent connection per Unix user, shared
// by all concurrent callers, and caps the sessions open at once on each connection
// (Config.MaxSessions, which must stay below sshd's MaxSessions; one more channel per
// connection is used by SFTP). Callers beyond the cap wait, with their context.
// Connections send keepalives, are redialled with exponential backoff and jitter when
// they drop, and are closed after Config.IdleTimeout without use.
//
// Host keys are always pinned: Config.KnownHostsFile is an OpenSSH known_hosts file
// (plain host lines or @cert-authority lines). An unknown host or a changed key fails
// with an error wrapping ErrHostKey; nothing ever ignores host keys.
//
// Two ways to authenticate:
//   - per-user certificates (Config.UserCA): the gateway's CA key signs, for each
//     Unix user, a fresh ed25519 key with a certificate whose only principal is that
//     user, valid for Config.CertTTL (default 5 minutes). The certificate is reused for
//     new connections until it is close to expiry;
//   - a service account (Config.ServiceKey, Config.ServiceUser): every call, whatever
//     its user argument, runs as the service account over one shared connection.
//
// Every remote command is built from an argv whose words are quoted by Quote (the one
// quoting function), runs under a deadline (Config.CommandTimeout, or the caller's
// context if sooner), and has its stdout and stderr capped (Config.MaxOutput).
// The remote login shell must be a POSIX shell (sh, bash, dash, zsh).
//
// Connection-level failures (dial, handshake, host key, authentication) are returned
// as *job.Error with code job.EUnavailable wrapping the cause, so API callers answer 503;
// errors.Is still finds ErrHostKey or ErrAuth in them. A command that ran and exited
// non-zero returns *ExitError.
package sshconn

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Errors that callers may test with errors.Is.
var (
	// ErrHostKey: the login node's host key is unknown or does not match known_hosts.
	ErrHostKey = errors.New("ssh host key not trusted")
	// ErrAuth: the login node refused our key or certificate.
	ErrAuth = errors.New("ssh authentication refused")
	// ErrOutputLimit: the command wrote more than Config.MaxOutput bytes; it was stopped.
	ErrOutputLimit = errors.New("remote output over the limit")
	// ErrClosed: the Pool was closed.
	ErrClosed = errors.New("ssh pool closed")
)

// ExitError is returned by Run when the remote command ran and exited non-zero or was
// killed by a signal.
type ExitError struct {
	Status int    // exit status; -1 when killed by a signal
	Signal string // signal name when killed by one
	Stderr []byte // the command's stderr (capped)
}

func (e *ExitError) Error() string {
	msg := strings.TrimSpace(string(e.Stderr))
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	if e.Signal != "" {
		return fmt.Sprintf("remote command killed by signal %s: %s", e.Signal, msg)
	}
	return fmt.Sprintf("remote command exited %d: %s", e.Status, msg)
}

// Config configures a Pool. Zero durations and sizes take the defaults documented on
// each field.
type Config struct {
	// Addr is the login node's sshd, host:port.
	Addr string
	// KnownHostsFile pins the login node's host key (known_hosts format, host CA allowed).
	KnownHostsFile string

	// UserCA, when set, selects per-user certificate mode.
	UserCA ssh.Signer
	// CertTTL is the validity of minted certificates (default 5m).
	CertTTL time.Duration

	// ServiceKey and ServiceUser, when set, select service-account mode.
	ServiceKey  ssh.Signer
	ServiceUser string

	// MaxSessions caps concurrent command sessions per connection (default 8).
	MaxSessions int
	// CommandTimeout is the deadline of each remote command and SFTP call (default 30s).
	CommandTimeout time.Duration
	// MaxOutput caps stdout and stderr of one command, each (default 16 MiB).
	MaxOutput int64
	// KeepAlive is the keepalive interval (default 15s).
	KeepAlive time.Duration
	// IdleTimeout closes a connection unused for this long (default 5m).
	IdleTimeout time.Duration
	// DialTimeout bounds one TCP connect plus handshake (default 10s).
	DialTimeout time.Duration
	// DialAttempts is how many dials one call tries before failing (default 3).
	DialAttempts int
	// Logger receives connection events (default slog.Default()).
	Logger Logger
	// OnDialFailure, when set, is called once for each call that could not connect,
	// with the last dial error (errors.Is finds ErrHostKey or ErrAuth), for metrics.
	OnDialFailure func(err error)

	now func() time.Time // tests
}

// Logger is the subset of *slog.Logger the pool uses.
type Logger interface {
	Info(msg string, args ...any)
	Warn(msg string, args ...any)
}

// LoadSigner parses an unencrypted OpenSSH or PEM private key given either inline (the
// value starts with "-----BEGIN") or as a file path.
func LoadSigner(pathOrPEM string) (ssh.Signer, error) {
	b := []byte(pathOrPEM)
	if !strings.HasPrefix(strings.TrimSpace(pathOrPEM), "-----BEGIN") {
		var err error
		b, err = os.ReadFile(pathOrPEM)
		if err != nil {
			return nil, fmt.Errorf("read private key: %w", err)
		}
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	return s, nil
}

// AuthorizedKey returns the public half of s in authorized_keys format (for
// TrustedUserCAKeys), without the trailing newline.
func AuthorizedKey(s ssh.Signer) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey())))
}
