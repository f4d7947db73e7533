package stacktest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// OpenSSH returns options for OpenSSH's sftp and scp (the port as -P) that log in to the stack's
// sshd as user with a fresh one-hour certificate from the stack's user CA, the host
// key pinned by the stack's known_hosts, and the destination host. Benchmarks use it
// to measure OpenSSH itself as the reference. The key files live in a temporary
// directory removed when t ends.
func (s *Stack) OpenSSH(t testing.TB, user string) (opts []string, host string) {
	t.Helper()
	b, err := os.ReadFile(s.UserCAKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := ssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cert := &ssh.Certificate{Key: signer.PublicKey(), CertType: ssh.UserCert, KeyId: "stacktest-openssh", ValidPrincipals: []string{user},
		ValidAfter: uint64(time.Now().Add(-time.Minute).Unix()), ValidBefore: uint64(time.Now().Add(time.Hour).Unix()),
		Permissions: ssh.Permissions{Extensions: map[string]string{"permit-pty": ""}}}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	key, certFile := filepath.Join(dir, "id"), filepath.Join(dir, "id-cert.pub")
	if err := os.WriteFile(key, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, ssh.MarshalAuthorizedKey(cert), 0o600); err != nil {
		t.Fatal(err)
	}
	h, port, _ := strings.Cut(s.SSHAddr, ":")
	return []string{"-P", port, "-i", key, "-o", "CertificateFile=" + certFile, "-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile=" + s.KnownHosts, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "User=" + user}, h
}
