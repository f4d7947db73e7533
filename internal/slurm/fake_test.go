package slurm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// fakeRunner answers Slurm commands from a table of handlers and records every call.
type fakeRunner struct {
	mu       sync.Mutex
	calls    [][]string
	users    []string // the user of each call
	stdin    []string
	handlers map[string]func(argv []string) (string, string, int)
	// onCtx, when set, sees each call's context (before the handler runs).
	onCtx func(ctx context.Context)
}

type exitErr int

func (e exitErr) Error() string   { return fmt.Sprintf("exit %d", int(e)) }
func (e exitErr) ExitStatus() int { return int(e) }

func (f *fakeRunner) Run(ctx context.Context, user string, argv []string, stdin io.Reader) ([]byte, []byte, error) {
	if f.onCtx != nil {
		f.onCtx(ctx)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, argv)
	f.users = append(f.users, user)
	in := ""
	if stdin != nil {
		b, _ := io.ReadAll(stdin)
		in = string(b)
	}
	f.stdin = append(f.stdin, in)
	if argv[0] == "env" && strings.HasPrefix(argv[1], "SLURM_CONF=") {
		argv = argv[2:]
	}
	h := f.handlers[argv[0]]
	if h == nil {
		return nil, []byte("no handler for " + argv[0]), exitErr(127)
	}
	out, errOut, status := h(argv)
	if status != 0 {
		return []byte(out), []byte(errOut), exitErr(status)
	}
	return []byte(out), []byte(errOut), nil
}

func (f *fakeRunner) count(cmd string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c[0] == cmd {
			n++
		}
	}
	return n
}

func capture(name string) string {
	b, err := os.ReadFile(filepath.Join("testdata", "capture", name))
	if err != nil {
		panic(err)
	}
	return string(b)
}

// sbatchError returns the captured stderr and status of `sbatch <args>` from sbatch-errors.txt.
func sbatchError(args string) (string, int) {
	blocks := strings.Split(capture("sbatch-errors.txt"), "### sbatch ")
	for _, b := range blocks {
		head, body, _ := strings.Cut(b, "\n")
		if head != args {
			continue
		}
		lines := strings.Split(strings.TrimSpace(body), "\n")
		var rc int
		fmt.Sscanf(lines[len(lines)-1], "rc=%d", &rc)
		return strings.Join(lines[:len(lines)-1], "\n") + "\n", rc
	}
	panic("no capture for " + args)
}

// localRunner runs argv on this machine (no shell of ours), for the file-reading scripts.
type localRunner struct{}

func (localRunner) Run(ctx context.Context, user string, argv []string, stdin io.Reader) ([]byte, []byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.Bytes(), errb.Bytes(), exitErr(ee.ExitCode())
	}
	return out.Bytes(), errb.Bytes(), err
}
