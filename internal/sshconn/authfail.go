package sshconn

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ftgate/ftgate/internal/job"
)

// AuthFailureTTL is how long a refused login is remembered per user: calls for that
// user fail at once instead of dialling again, so one mapped user without a cluster
// account (or with a broken certificate setup) cannot get the gateway's address
// penalised by sshd (MaxStartups, fail2ban) with a handshake per request and retry.
const AuthFailureTTL = time.Minute

// authFailure is the last refused login of one connection's user.
type authFailure struct {
	mu  sync.Mutex
	at  time.Time
	err error
}

// check returns the remembered refusal while it is fresh.
func (a *authFailure) check(now time.Time, addr, user string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err == nil || now.Sub(a.at) >= AuthFailureTTL {
		return nil
	}
	return &job.Error{Code: job.EUnavailable,
		Message: fmt.Sprintf("the login node %s refused the login of %s at %s; not retried before %s (does %s have an account on the cluster?)",
			addr, user, a.at.UTC().Format(time.RFC3339), a.at.Add(AuthFailureTTL).UTC().Format(time.RFC3339), user),
		Err: a.err}
}

// remember records a refused login.
func (a *authFailure) remember(now time.Time, err error) {
	a.mu.Lock()
	a.at, a.err = now, err
	a.mu.Unlock()
}

// forget clears the refusal after a successful login.
func (a *authFailure) forget() {
	a.mu.Lock()
	a.err = nil
	a.mu.Unlock()
}

// authRefusedText starts x/crypto/ssh's error for a server that refused every
// authentication method we offered (ssh/client_auth.go: "ssh: unable to
// authenticate, attempted methods [...], no supported methods remain"). The library
// has no error type for it, so this is the one place its text is matched;
// TestAuthRefusedMatchesTheLibrary pins it against the library in go.mod, so an
// upgrade that rewords it fails a test instead of turning refusals into handshake
// errors.
const authRefusedText = "ssh: unable to authenticate"

// authRefused reports whether err, from ssh.NewClientConn, says the login node
// refused our key or certificate.
func authRefused(err error) bool {
	return err != nil && strings.Contains(err.Error(), authRefusedText)
}
