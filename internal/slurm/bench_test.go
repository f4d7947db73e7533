package slurm

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/ftgate/ftgate/internal/sshconn"

	"github.com/ftgate/ftgate/internal/stacktest"
)

// BenchmarkIntegrationSubmitWarm: `sbatch --parsable --hold` through sshconn's warm
// connection, through Client.Submit (render + sbatch, capacity cached), and through
// OpenSSH over a ControlMaster. Figures are printed, nothing is asserted.
func BenchmarkIntegrationSubmitWarm(b *testing.B) {
	e := setupIntegration(b)
	ctx := context.Background()
	held := []string{"env", "SLURM_CONF=" + e.st.SlurmConf, "sbatch", "--parsable", "--hold", "-J", "ftgate-bench", "-o", "/dev/null", "--mem=10", "--wrap", "true"}
	var ids []string
	b.Cleanup(func() { cancelAll(e, "alice", ids) })

	b.Run("sshconn", func(b *testing.B) {
		if _, _, err := e.pool.Run(ctx, "alice", []string{"true"}, nil); err != nil { // warm up
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			out, _, err := e.pool.Run(ctx, "alice", held, nil)
			if err != nil {
				b.Fatal(err)
			}
			ids = append(ids, strings.TrimSpace(string(out)))
		}
	})

	b.Run("Client.Submit", func(b *testing.B) {
		c, _ := e.fakeClient(b, "alice")
		id := newJobID("bench")
		e.prepare(b, "alice", id, "exit0")
		if _, err := c.Capacity(ctx, "alice"); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			sub, err := c.Submit(ctx, "alice", smallRequest("alice", id))
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			_ = c.Cancel(ctx, "alice", sub.ID)
			b.StartTimer()
		}
	})

	b.Run("openssh-controlmaster", func(b *testing.B) {
		ssh := openSSHMaster(b, e, "alice")
		cmd, err := sshconn.Command(held)
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			out, err := ssh(cmd)
			if err != nil {
				b.Fatalf("%v: %s", err, out)
			}
			ids = append(ids, strings.TrimSpace(string(out)))
		}
	})
}

// openSSHMaster starts an OpenSSH ControlMaster as user with a certificate minted by the
// stack's CA and returns a function running one command over it.
func openSSHMaster(b *testing.B, e *itEnv, user string) func(cmd string) ([]byte, error) {
	b.Helper()
	if _, err := exec.LookPath("ssh"); err != nil {
		stacktest.Skip(b, "no OpenSSH client")
	}
	dir, err := os.MkdirTemp("", "ftgb")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	ca, err := sshconn.LoadSigner(e.st.UserCAKey)
	if err != nil {
		b.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		b.Fatal(err)
	}
	signer, _ := ssh.NewSignerFromKey(priv)
	cert := &ssh.Certificate{Key: signer.PublicKey(), CertType: ssh.UserCert, KeyId: "bench", ValidPrincipals: []string{user},
		ValidAfter: uint64(time.Now().Add(-time.Minute).Unix()), ValidBefore: uint64(time.Now().Add(time.Hour).Unix()),
		Permissions: ssh.Permissions{Extensions: map[string]string{"permit-pty": ""}}}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		b.Fatal(err)
	}
	key, certFile, ctl := filepath.Join(dir, "id"), filepath.Join(dir, "id-cert.pub"), filepath.Join(dir, "ctl")
	os.WriteFile(key, pem.EncodeToMemory(block), 0o600)
	os.WriteFile(certFile, ssh.MarshalAuthorizedKey(cert), 0o600)
	host, port, _ := strings.Cut(e.st.SSHAddr, ":")
	base := []string{"-p", port, "-i", key, "-o", "CertificateFile=" + certFile, "-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile=" + e.st.KnownHosts, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
		"-o", "ControlPath=" + ctl}
	dest := user + "@" + host
	master := exec.Command("ssh", append(base, "-o", "ControlMaster=yes", "-o", "ControlPersist=120", "-f", "-N", dest)...)
	if out, err := master.CombinedOutput(); err != nil {
		b.Fatalf("start ControlMaster: %v: %s", err, out)
	}
	b.Cleanup(func() { _ = exec.Command("ssh", append(base, "-O", "exit", dest)...).Run() })
	return func(cmd string) ([]byte, error) {
		return exec.Command("ssh", append(base, dest, cmd)...).Output()
	}
}

// BenchmarkIntegrationPoll: one Poll of 50 and of 500 held jobs (one squeue), and the
// sacct tier for the same ids (what a poll costs once they left squeue).
func BenchmarkIntegrationPoll(b *testing.B) {
	e := setupIntegration(b)
	ctx := context.Background()
	for _, n := range []int{50, 500} {
		b.Run(fmt.Sprintf("jobs=%d", n), func(b *testing.B) {
			ids := submitHeld(b, e, "alice", n)
			defer cancelAll(e, "alice", ids)
			cr := newCounting(e.pool)
			c, err := New(cr, e.opts)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				st, err := c.Poll(ctx, "alice", ids)
				if err != nil {
					b.Fatal(err)
				}
				if len(st) != n {
					b.Fatalf("%d states for %d jobs", len(st), n)
				}
			}
			b.StopTimer()
			cmds := cr.count["squeue"].Load() + cr.count["sacct"].Load()
			b.ReportMetric(float64(cmds)/float64(b.N), "commands/poll")
			start := time.Now()
			_, _, status, err := c.run(ctx, "alice", "", "sacct", "-n", "-P", "-X", "-D", "-j", strings.Join(ids, ","), "-o", sacctFormat)
			if err != nil || status != 0 {
				b.Fatalf("sacct: %v %d", err, status)
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/1000, "sacct-tier-ms")
		})
	}
}
