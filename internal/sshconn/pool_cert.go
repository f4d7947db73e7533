package sshconn

// Login credentials: the service key, or a short-lived user certificate per user.

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/ftgate/ftgate/internal/job"
	"golang.org/x/crypto/ssh"
)

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
