// Package stacktest gives integration tests the local stack started by `dev/stack up`:
// it reads the stack's env file, skips the test when no stack is there, and fails
// instead of skipping when FTGATE_REQUIRE_STACK=1 (as `make test` and CI set).
package stacktest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Stack describes a running local stack.
type Stack struct {
	Dir           string   // state directory (.dev)
	SSHAddr       string   // sshd of the login node, host:port
	KnownHosts    string   // known_hosts pinning sshd's host key
	UserCAKey     string   // the gateway's SSH user CA private key
	SlurmConf     string   // SLURM_CONF for the cluster
	JobRoot       string   // <job_root>/<user>/<job-id>
	Partition     string   // default partition
	Users         []string // Unix test users (alice, bob)
	NodeGPUs      int      // fake GPUs on the node
	PGURL         string   // Postgres URL of database ftgate (superuser)
	OIDCIssuer    string   // Dex issuer
	OIDCClientID  string   // public CLI client
	OIDCAudience  string   // the API's audience
	Password      string   // password of the Dex static users alice, bob, admin
	GatewayConfig string   // gateway.yaml written for this stack
	Python        string   // interpreter with torch on the node
	Env           map[string]string
}

// EnvFile returns the path of the stack's env file: $FTGATE_STACK_ENV, or
// .dev/stack.env at the repository root.
func EnvFile() string {
	if p := os.Getenv("FTGATE_STACK_ENV"); p != "" {
		return p
	}
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "dev", "stack")); err == nil {
				return filepath.Join(dir, ".dev", "stack.env")
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Load reads the env file at path.
func Load(path string) (*Stack, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open stack env: %w", err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		env[k] = strings.Trim(v, `'"`)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read stack env: %w", err)
	}
	gpus, _ := strconv.Atoi(env["STACK_NODE_GPUS"])
	s := &Stack{
		Dir:           env["FTGATE_STACK_DIR"],
		SSHAddr:       env["STACK_SSH_ADDR"],
		KnownHosts:    env["STACK_SSH_KNOWN_HOSTS"],
		UserCAKey:     env["STACK_SSH_USER_CA_KEY"],
		SlurmConf:     env["STACK_SLURM_CONF"],
		JobRoot:       env["STACK_JOB_ROOT"],
		Partition:     env["STACK_PARTITION"],
		Users:         strings.Split(env["STACK_USERS"], ","),
		NodeGPUs:      gpus,
		PGURL:         env["STACK_PG_URL"],
		OIDCIssuer:    env["STACK_OIDC_ISSUER"],
		OIDCClientID:  env["STACK_OIDC_CLIENT_ID"],
		OIDCAudience:  env["STACK_OIDC_AUDIENCE"],
		Password:      env["STACK_PASSWORD"],
		GatewayConfig: env["STACK_GATEWAY_CONFIG"],
		Python:        env["STACK_PYTHON"],
		Env:           env,
	}
	if s.SSHAddr == "" || s.PGURL == "" {
		return nil, fmt.Errorf("stack env %s: missing STACK_SSH_ADDR or STACK_PG_URL", path)
	}
	return s, nil
}

// reachable checks that the stack's sshd answers: an env file left behind by a stopped
// stack is no stack.
func (s *Stack) reachable() error {
	c, err := net.DialTimeout("tcp", s.SSHAddr, 2*time.Second)
	if err != nil {
		return fmt.Errorf("stack env %s present but the stack is down: %w", s.Dir, err)
	}
	return c.Close()
}

// Required reports whether integration tests must fail rather than skip.
func Required() bool { return os.Getenv("FTGATE_REQUIRE_STACK") == "1" }

// Require returns the running stack, or skips t (fails it when Required()).
func Require(t testing.TB) *Stack {
	t.Helper()
	path := EnvFile()
	s, err := Load(path)
	if err == nil {
		err = s.reachable()
	}
	if err != nil {
		Skip(t, "no local stack (%v); run `dev/stack up` or `make test`", err)
		return nil
	}
	return s
}

// Skip is the one way a test skips: it skips t with the reason, or fails it when
// Required() (make test and CI set FTGATE_REQUIRE_STACK=1, and there nothing may skip).
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	if Required() {
		t.Fatalf("FTGATE_REQUIRE_STACK=1 forbids skipping: "+format, args...)
		return
	}
	t.Skipf(format, args...)
}
