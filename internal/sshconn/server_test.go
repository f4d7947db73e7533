package sshconn

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// testServer is an in-process x/crypto/ssh server that runs exec requests with
// /bin/sh -c, serves the sftp subsystem from the local file system, checks user
// certificates against a CA (or one authorized service key), and counts sessions.
type testServer struct {
	t           *testing.T
	ln          net.Listener
	hostSigner  ssh.Signer
	ca          ssh.Signer
	serviceKey  ssh.PublicKey
	maxSessions int
	clock       func() time.Time

	mu      sync.Mutex
	conns   []net.Conn
	certs   []*ssh.Certificate
	users   []string
	dials   atomic.Int32
	open    atomic.Int32 // session channels open
	running atomic.Int32 // commands running
	maxRun  atomic.Int32
	refused atomic.Int32
	hang    atomic.Bool // stop answering (simulate a dead peer)

	sftpOpens, sftpCloses atomic.Int32               // SSH_FXP_OPEN and SSH_FXP_CLOSE requests received
	failSubsystem         atomic.Int32               // refuse this many sftp subsystem requests (a broken sftp-server)
	exitSignals           atomic.Bool                // report a command killed by a signal as OpenSSH does (exit-signal)
	beforeSFTP            atomic.Pointer[func(byte)] // called with each request's type before it is served
}

func newSigner(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startServer(t *testing.T) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{t: t, ln: ln, hostSigner: newSigner(t), ca: newSigner(t), maxSessions: 10, clock: time.Now}
	go s.serve()
	t.Cleanup(func() {
		ln.Close()
		s.dropAll()
	})
	return s
}

func (s *testServer) addr() string { return s.ln.Addr().String() }

// knownHosts writes a known_hosts file pinning key for the server's address.
func (s *testServer) knownHosts(key ssh.PublicKey) string {
	f := filepath.Join(s.t.TempDir(), "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(s.addr())}, key)
	if err := os.WriteFile(f, []byte(line+"\n"), 0o600); err != nil {
		s.t.Fatal(err)
	}
	return f
}

func (s *testServer) dropAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

func (s *testServer) serve() {
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns = append(s.conns, nc)
		s.mu.Unlock()
		go s.handle(nc)
	}
}

// set changes the server's settings safely while it runs.
func (s *testServer) set(f func(*testServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *testServer) handle(nc net.Conn) {
	s.mu.Lock()
	clock, serviceKey, maxSessions := s.clock, s.serviceKey, s.maxSessions
	s.mu.Unlock()
	checker := &ssh.CertChecker{
		IsUserAuthority: func(k ssh.PublicKey) bool {
			return bytes.Equal(k.Marshal(), s.ca.PublicKey().Marshal())
		},
		Clock: clock,
	}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if serviceKey != nil && bytes.Equal(key.Marshal(), serviceKey.Marshal()) {
				s.mu.Lock()
				s.users = append(s.users, meta.User())
				s.mu.Unlock()
				return &ssh.Permissions{}, nil
			}
			cert, ok := key.(*ssh.Certificate)
			if !ok {
				return nil, errors.New("not a certificate")
			}
			perms, err := checker.Authenticate(meta, key)
			if err != nil {
				return nil, err
			}
			s.mu.Lock()
			s.certs = append(s.certs, cert)
			s.users = append(s.users, meta.User())
			s.mu.Unlock()
			return perms, nil
		},
	}
	cfg.AddHostKey(s.hostSigner)
	sc, chans, reqs, err := ssh.NewServerConn(nc, cfg)
	if err != nil {
		nc.Close()
		return
	}
	s.dials.Add(1)
	go func() {
		for r := range reqs {
			if s.hang.Load() {
				continue
			}
			if r.WantReply {
				_ = r.Reply(r.Type == "keepalive@openssh.com", nil)
			}
		}
	}()
	for nch := range chans {
		if nch.ChannelType() != "session" {
			_ = nch.Reject(ssh.UnknownChannelType, "no")
			continue
		}
		if int(s.open.Load()) >= maxSessions {
			s.refused.Add(1)
			_ = nch.Reject(ssh.Prohibited, "too many sessions")
			continue
		}
		s.open.Add(1)
		ch, creqs, err := nch.Accept()
		if err != nil {
			s.open.Add(-1)
			continue
		}
		go s.session(ch, creqs)
	}
	_ = sc.Wait()
}

func (s *testServer) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer s.open.Add(-1)
	defer ch.Close()
	var cmd *exec.Cmd
	done := make(chan struct{})
	for r := range reqs {
		switch r.Type {
		case "exec":
			var p struct{ Cmd string }
			if err := ssh.Unmarshal(r.Payload, &p); err != nil {
				_ = r.Reply(false, nil)
				continue
			}
			_ = r.Reply(true, nil)
			cmd = exec.Command("/bin/sh", "-c", p.Cmd)
			cmd.Stdin = ch
			cmd.Stdout = ch
			cmd.Stderr = ch.Stderr()
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			n := s.running.Add(1)
			for {
				m := s.maxRun.Load()
				if n <= m || s.maxRun.CompareAndSwap(m, n) {
					break
				}
			}
			startErr := cmd.Start()
			go func() {
				defer close(done)
				status := 0
				err := startErr
				if err == nil {
					err = cmd.Wait()
				}
				if err != nil {
					var ee *exec.ExitError
					if errors.As(err, &ee) {
						status = ee.ExitCode()
						if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && s.exitSignals.Load() {
							s.running.Add(-1)
							name := map[syscall.Signal]string{syscall.SIGTERM: "TERM", syscall.SIGKILL: "KILL", syscall.SIGINT: "INT"}[ws.Signal()]
							_, _ = ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
								Signal     string
								CoreDumped bool
								Msg, Lang  string
							}{name, false, "", ""}))
							ch.Close()
							return
						}
						if status < 0 {
							status = 128 + 9
						}
					} else {
						status = 127
					}
				}
				s.running.Add(-1)
				var b [4]byte
				binary.BigEndian.PutUint32(b[:], uint32(status))
				_, _ = ch.SendRequest("exit-status", false, b[:])
				ch.Close()
			}()
		case "subsystem":
			if s.failSubsystem.Add(-1) >= 0 {
				_ = r.Reply(false, nil)
				continue
			}
			s.failSubsystem.Store(0)
			_ = r.Reply(true, nil)
			srv, err := sftp.NewServer(&sftpTap{Channel: ch, s: s})
			if err != nil {
				return
			}
			go func() { _ = srv.Serve(); srv.Close(); close(done) }()
		case "signal":
			if cmd != nil && cmd.Process != nil && cmd.Process.Pid > 0 {
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			}
		default:
			if r.WantReply {
				_ = r.Reply(false, nil)
			}
		}
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// SFTP request types the test server counts (draft-ietf-secsh-filexfer-02).
const (
	fxpOpen  = 3
	fxpClose = 4
)

// sftpTap is the server's side of an sftp channel: it reads whole request packets,
// counts opens and closes and calls beforeSFTP, which may delay a request, before the
// sftp server sees it.
type sftpTap struct {
	ssh.Channel
	s   *testServer
	buf []byte
}

func (t *sftpTap) Read(b []byte) (int, error) {
	if len(t.buf) == 0 {
		var hdr [5]byte // uint32 length, then the packet type
		if _, err := io.ReadFull(t.Channel, hdr[:]); err != nil {
			return 0, err
		}
		n := binary.BigEndian.Uint32(hdr[:4])
		if n < 1 || n > 1<<20 {
			return 0, fmt.Errorf("sftp packet of %d bytes", n)
		}
		pkt := make([]byte, 4+n)
		copy(pkt, hdr[:])
		if _, err := io.ReadFull(t.Channel, pkt[5:]); err != nil {
			return 0, err
		}
		switch hdr[4] {
		case fxpOpen:
			t.s.sftpOpens.Add(1)
		case fxpClose:
			t.s.sftpCloses.Add(1)
		}
		if f := t.s.beforeSFTP.Load(); f != nil {
			(*f)(hdr[4])
		}
		t.buf = pkt
	}
	n := copy(b, t.buf)
	t.buf = t.buf[n:]
	return n, nil
}

type quietLogger struct{}

func (quietLogger) Info(string, ...any) {}
func (quietLogger) Warn(string, ...any) {}

func (s *testServer) pool(t *testing.T, mod func(*Config)) *Pool {
	t.Helper()
	cfg := Config{
		Addr:           s.addr(),
		KnownHostsFile: s.knownHosts(s.hostSigner.PublicKey()),
		UserCA:         s.ca,
		Logger:         quietLogger{},
	}
	if mod != nil {
		mod(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func (s *testServer) lastCert() *ssh.Certificate {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.certs) == 0 {
		return nil
	}
	return s.certs[len(s.certs)-1]
}

var _ = fmt.Sprintf
var _ io.Reader
