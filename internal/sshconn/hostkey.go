package sshconn

import (
	"context"
	"errors"
	"fmt"
	"net"

	"golang.org/x/crypto/ssh"
)

// errHostKeyChecked ends a CheckHostKey handshake once the host key was verified.
var errHostKeyChecked = errors.New("host key checked")

// CheckHostKey connects to the login node and verifies its host key against the pin
// (Config.KnownHostsFile) without logging in: the handshake stops right after the key
// exchange. A refused key returns an error wrapping ErrHostKey; a node that cannot be
// reached returns *job.Error with code job.EUnavailable.
func (p *Pool) CheckHostKey(ctx context.Context) error {
	var keyErr error
	cfg := &ssh.ClientConfig{
		User: "ftgate-hostkey-check",
		HostKeyCallback: func(host string, remote net.Addr, key ssh.PublicKey) error {
			if keyErr = p.hostKey(host, remote, key); keyErr != nil {
				return keyErr
			}
			return errHostKeyChecked
		},
		HostKeyAlgorithms: p.hostAlgs,
		Timeout:           p.cfg.DialTimeout,
		ClientVersion:     "SSH-2.0-ftgate",
	}
	dctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(dctx, "tcp", p.cfg.Addr)
	if err != nil {
		return unavailable(p.cfg.Addr, fmt.Errorf("dial %s: %w", p.cfg.Addr, err))
	}
	defer nc.Close()
	if dl, ok := dctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	_, _, _, err = ssh.NewClientConn(nc, p.cfg.Addr, cfg)
	switch {
	case keyErr != nil:
		return keyErr
	case errors.Is(err, errHostKeyChecked):
		return nil
	case err == nil:
		return errors.New("ssh handshake: finished without a host key check")
	}
	return unavailable(p.cfg.Addr, fmt.Errorf("ssh handshake with %s: %w", p.cfg.Addr, err))
}
