package stacktest_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/ftgate/ftgate/internal/stacktest"
)

// userCert mints, with the stack's user CA, a short-lived certificate for principal.
func userCert(t *testing.T, s *stacktest.Stack, principal string) ssh.Signer {
	t.Helper()
	caPEM, err := os.ReadFile(s.UserCAKey)
	if err != nil {
		t.Fatalf("read CA key: %v", err)
	}
	ca, err := ssh.ParsePrivateKey(caPEM)
	if err != nil {
		t.Fatalf("parse CA key: %v", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	cert := &ssh.Certificate{
		Key:             signer.PublicKey(),
		CertType:        ssh.UserCert,
		KeyId:           "stacktest-" + principal,
		ValidPrincipals: []string{principal},
		ValidAfter:      uint64(now.Add(-time.Minute).Unix()),
		ValidBefore:     uint64(now.Add(5 * time.Minute).Unix()),
		Permissions:     ssh.Permissions{Extensions: map[string]string{"permit-pty": ""}},
	}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		t.Fatalf("sign cert: %v", err)
	}
	cs, err := ssh.NewCertSigner(cert, signer)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func dial(s *stacktest.Stack, user string, signer ssh.Signer, hostKeys ssh.HostKeyCallback) (*ssh.Client, error) {
	return ssh.Dial("tcp", s.SSHAddr, &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hostKeys,
		Timeout:         10 * time.Second,
	})
}

func run(t *testing.T, c *ssh.Client, stdin io.Reader, cmd string) string {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatalf("new session: %v", err)
	}
	defer sess.Close()
	var out, errb bytes.Buffer
	sess.Stdin, sess.Stdout, sess.Stderr = stdin, &out, &errb
	if err := sess.Run(cmd); err != nil {
		t.Fatalf("%s: %v: %s", cmd, err, errb.String())
	}
	return out.String()
}

// TestIntegrationStackEndToEnd proves the stack is real: alice logs in with a certificate
// from the stack's CA, submits a GPU job with sbatch on stdin, the job completes in Slurm,
// and its output (read over SFTP) shows the GPU Slurm allocated.
func TestIntegrationStackEndToEnd(t *testing.T) {
	s := stacktest.Require(t)
	hostKeys, err := knownhosts.New(s.KnownHosts)
	if err != nil {
		t.Fatalf("known_hosts: %v", err)
	}
	c, err := dial(s, "alice", userCert(t, s, "alice"), hostKeys)
	if err != nil {
		t.Fatalf("ssh as alice: %v", err)
	}
	defer c.Close()

	if who := strings.TrimSpace(run(t, c, nil, "id -un")); who != "alice" {
		t.Fatalf("logged in as %q, want alice", who)
	}
	dir := path.Join(s.JobRoot, "alice", fmt.Sprintf("stacktest-%d", time.Now().UnixNano()))
	run(t, c, nil, "mkdir -p "+dir)
	script := fmt.Sprintf(`#!/bin/bash
#SBATCH --job-name=stacktest
#SBATCH --gres=gpu:1
#SBATCH --output=%s/slurm-%%j.out
echo "CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-unset}"
echo "SLURM_JOB_GPUS=${SLURM_JOB_GPUS:-unset}"
echo "USER=$(id -un)"
`, dir)
	id := strings.TrimSpace(run(t, c, strings.NewReader(script), "sbatch --parsable"))
	if id == "" || strings.ContainsAny(id, " \n") {
		t.Fatalf("sbatch --parsable printed %q", id)
	}
	t.Logf("submitted job %s", id)

	deadline := time.Now().Add(60 * time.Second)
	state := ""
	for time.Now().Before(deadline) {
		state = strings.TrimSpace(run(t, c, nil, "squeue -h -t all -j "+id+" -o %T"))
		if state == "COMPLETED" || state == "FAILED" || state == "CANCELLED" {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if state != "COMPLETED" {
		t.Fatalf("job %s state %q, want COMPLETED", id, state)
	}
	// sacct (slurmdbd) records the job as alice's, once its placeholder row is replaced.
	for time.Now().Before(deadline) {
		row := strings.TrimSpace(run(t, c, nil, "sacct -n -P -X -j "+id+" -o User,State"))
		if row == "alice|COMPLETED" {
			break
		}
		if time.Now().Add(time.Second).After(deadline) {
			t.Fatalf("sacct row %q, want alice|COMPLETED", row)
		}
		time.Sleep(300 * time.Millisecond)
	}

	sc, err := sftp.NewClient(c)
	if err != nil {
		t.Fatalf("sftp: %v", err)
	}
	defer sc.Close()
	f, err := sc.Open(path.Join(dir, "slurm-"+id+".out"))
	if err != nil {
		t.Fatalf("open output over sftp: %v", err)
	}
	out, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("job output:\n%s", out)
	if !bytes.Contains(out, []byte("USER=alice")) {
		t.Errorf("job did not run as alice:\n%s", out)
	}
	for _, v := range []string{"CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS"} {
		if bytes.Contains(out, []byte(v+"=unset")) || !bytes.Contains(out, []byte(v+"=")) {
			t.Errorf("%s not set in the GPU job:\n%s", v, out)
		}
	}
	run(t, c, nil, "rm -rf "+dir)
}

// TestIntegrationStackRefusesWrongHostKey checks that a client pinning another host key
// is refused before authenticating.
func TestIntegrationStackRefusesWrongHostKey(t *testing.T) {
	s := stacktest.Require(t)
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	c, err := dial(s, "alice", userCert(t, s, "alice"), ssh.FixedHostKey(wrong))
	if err == nil {
		c.Close()
		t.Fatal("dial with a wrong pinned host key succeeded")
	}
	if !strings.Contains(err.Error(), "host key mismatch") {
		t.Fatalf("unexpected error: %v", err)
	}
	t.Logf("refused as expected: %v", err)
}

// TestIntegrationStackRefusesWrongPrincipal checks that sshd honours the certificate's
// principal: a certificate for bob does not log in as alice.
func TestIntegrationStackRefusesWrongPrincipal(t *testing.T) {
	s := stacktest.Require(t)
	hostKeys, err := knownhosts.New(s.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	c, err := dial(s, "alice", userCert(t, s, "bob"), hostKeys)
	if err == nil {
		c.Close()
		t.Fatal("a certificate for bob logged in as alice")
	}
}
