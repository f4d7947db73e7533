package sshconn

import (
	"context"
	"errors"
	"io"
	"os"
)

// Pool holds one persistent SSH connection per Unix user to one login node.
// It is safe for concurrent use.
type Pool struct {
	cfg Config
}

// New validates cfg, fills defaults and returns a Pool. It does not connect yet.
func New(cfg Config) (*Pool, error) {
	return nil, errors.New("sshconn: not implemented yet")
}

// Run runs argv (quoted by Command) as user and returns its stdout and stderr.
// stdin, when not nil, is copied to the command's standard input. A non-zero exit
// returns *ExitError; the deadline is the sooner of ctx's and Config.CommandTimeout.
func (p *Pool) Run(ctx context.Context, user string, argv []string, stdin io.Reader) (stdout, stderr []byte, err error) {
	return nil, nil, errors.New("sshconn: not implemented yet")
}

// WriteFile writes data to path as user atomically: into a temporary file in the
// same directory, then renamed over path. perm applies to the new file.
func (p *Pool) WriteFile(ctx context.Context, user, path string, data []byte, perm os.FileMode) error {
	return errors.New("sshconn: not implemented yet")
}

// ReadFile reads the whole file at path, refusing files larger than max bytes.
func (p *Pool) ReadFile(ctx context.Context, user, path string, max int64) ([]byte, error) {
	return nil, errors.New("sshconn: not implemented yet")
}

// Stat returns the file info of path (following symlinks).
func (p *Pool) Stat(ctx context.Context, user, path string) (os.FileInfo, error) {
	return nil, errors.New("sshconn: not implemented yet")
}

// Lstat returns the file info of path without following a final symlink.
func (p *Pool) Lstat(ctx context.Context, user, path string) (os.FileInfo, error) {
	return nil, errors.New("sshconn: not implemented yet")
}

// ReadDir lists the directory at path.
func (p *Pool) ReadDir(ctx context.Context, user, path string) ([]os.FileInfo, error) {
	return nil, errors.New("sshconn: not implemented yet")
}

// MkdirAll creates path and its missing parents with mode perm.
func (p *Pool) MkdirAll(ctx context.Context, user, path string, perm os.FileMode) error {
	return errors.New("sshconn: not implemented yet")
}

// RealPath resolves path on the remote side (symlinks and ..), for containment checks.
func (p *Pool) RealPath(ctx context.Context, user, path string) (string, error) {
	return "", errors.New("sshconn: not implemented yet")
}

// Open opens path for streaming, positioned at offset. The caller must Close it.
// Reads are not bounded by Config.CommandTimeout: the caller's ctx is watched until Close.
func (p *Pool) Open(ctx context.Context, user, path string, offset int64) (io.ReadCloser, error) {
	return nil, errors.New("sshconn: not implemented yet")
}

// Close closes every connection. Calls after Close fail with ErrClosed.
func (p *Pool) Close() error { return nil }
