package sshconn

// SFTP: the per-connection client and the file operations over it.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/ftgate/ftgate/internal/job"
)

// sftpClient returns the connection's SFTP client, starting it when needed (a refused
// subsystem channel is retried like a refused session).
func (c *conn) sftpClient(ctx context.Context) (*sftp.Client, error) {
	refused := 0
	for try := 0; ; {
		cl, err := c.get(ctx)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		if c.client == cl && c.sftp != nil {
			sc := c.sftp
			c.mu.Unlock()
			return sc, nil
		}
		c.mu.Unlock()
		sc, err := sftp.NewClient(cl)
		if err == nil {
			c.mu.Lock()
			if c.client == cl && c.sftp == nil {
				c.sftp = sc
				c.mu.Unlock()
				return sc, nil
			}
			c.mu.Unlock()
			sc.Close()
			continue
		}
		var oce *ssh.OpenChannelError
		if errors.As(err, &oce) {
			if werr := c.waitRefused(ctx, oce, &refused); werr != nil {
				return nil, unavailable(c.p.cfg.Addr, fmt.Errorf("start sftp: %w", werr))
			}
			continue
		}
		if try++; try > 1 {
			return nil, unavailable(c.p.cfg.Addr, fmt.Errorf("start sftp: %w", err))
		}
		c.drop(cl)
	}
}

// withSFTP runs fn with the user's SFTP client under the command deadline, in one
// session slot (sftpslot.go).
func (p *Pool) withSFTP(ctx context.Context, user, remote string, fn func(*sftp.Client) error) error {
	_, err := p.sftpInSlot(ctx, user, remote, nil, fn)
	return err
}

// checkPath applies job.CheckRemotePath, as an EInvalid error.
func checkPath(p string) error {
	if err := job.CheckRemotePath(p); err != nil {
		return job.Errorf(job.EInvalid, "path: %v", err)
	}
	return nil
}

// WriteFile writes data to path as user atomically: into a temporary file in the
// same directory, then renamed over path (POSIX rename when the server supports it).
// perm applies to the new file.
func (p *Pool) WriteFile(ctx context.Context, user, remote string, data []byte, perm os.FileMode) error {
	return p.withSFTP(ctx, user, remote, func(sc *sftp.Client) error {
		var rb [6]byte
		_, _ = rand.Read(rb[:])
		tmp := path.Join(path.Dir(remote), fmt.Sprintf(".%s.tmp-%x", path.Base(remote), rb))
		f, err := sc.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
		if err != nil {
			return fmt.Errorf("create %s: %w", tmp, err)
		}
		if err := f.Chmod(perm); err != nil {
			f.Close()
			_ = sc.Remove(tmp)
			return fmt.Errorf("chmod %s: %w", tmp, err)
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			_ = sc.Remove(tmp)
			return fmt.Errorf("write %s: %w", tmp, err)
		}
		if err := f.Close(); err != nil {
			_ = sc.Remove(tmp)
			return fmt.Errorf("close %s: %w", tmp, err)
		}
		if err := sc.PosixRename(tmp, remote); err != nil {
			_ = sc.Remove(tmp)
			return fmt.Errorf("rename %s to %s: %w", tmp, remote, err)
		}
		return nil
	})
}

// ReadFile reads the whole file at path, refusing files larger than max bytes.
func (p *Pool) ReadFile(ctx context.Context, user, remote string, max int64) ([]byte, error) {
	var out []byte
	err := p.withSFTP(ctx, user, remote, func(sc *sftp.Client) error {
		f, err := sc.Open(remote)
		if err != nil {
			return fmt.Errorf("open %s: %w", remote, err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, max+1))
		if err != nil {
			return fmt.Errorf("read %s: %w", remote, err)
		}
		if int64(len(b)) > max {
			return fmt.Errorf("read %s: %w (%d bytes)", remote, ErrOutputLimit, max)
		}
		out = b
		return nil
	})
	return out, err
}

// Stat returns the file info of path (following symlinks).
func (p *Pool) Stat(ctx context.Context, user, remote string) (os.FileInfo, error) {
	var fi os.FileInfo
	err := p.withSFTP(ctx, user, remote, func(sc *sftp.Client) (err error) {
		fi, err = sc.Stat(remote)
		return err
	})
	return fi, err
}

// Lstat returns the file info of path without following a final symlink.
func (p *Pool) Lstat(ctx context.Context, user, remote string) (os.FileInfo, error) {
	var fi os.FileInfo
	err := p.withSFTP(ctx, user, remote, func(sc *sftp.Client) (err error) {
		fi, err = sc.Lstat(remote)
		return err
	})
	return fi, err
}

// ReadDir lists the directory at path.
func (p *Pool) ReadDir(ctx context.Context, user, remote string) ([]os.FileInfo, error) {
	var fis []os.FileInfo
	err := p.withSFTP(ctx, user, remote, func(sc *sftp.Client) (err error) {
		fis, err = sc.ReadDir(remote)
		return err
	})
	return fis, err
}

// MkdirAll creates path and its missing parents with mode perm.
func (p *Pool) MkdirAll(ctx context.Context, user, remote string, perm os.FileMode) error {
	return p.withSFTP(ctx, user, remote, func(sc *sftp.Client) error {
		if err := sc.MkdirAll(remote); err != nil {
			return fmt.Errorf("mkdir %s: %w", remote, err)
		}
		return sc.Chmod(remote, perm)
	})
}

// RealPath resolves path on the remote side (symlinks and ..), for containment checks.
func (p *Pool) RealPath(ctx context.Context, user, remote string) (string, error) {
	var out string
	err := p.withSFTP(ctx, user, remote, func(sc *sftp.Client) (err error) {
		out, err = sc.RealPath(remote)
		return err
	})
	return out, err
}

// Open opens path for streaming, positioned at offset. The caller must Close it; the
// stream holds one of the connection's session slots until then (it counts toward
// max_sessions). Reads are not bounded by Config.CommandTimeout; they stop when ctx
// ends.
func (p *Pool) Open(ctx context.Context, user, remote string, offset int64) (io.ReadCloser, error) {
	var f *sftp.File
	closeLate := func() { _ = f.Close() } // Open succeeded after the caller gave up
	release, err := p.sftpInSlot(ctx, user, remote, closeLate, func(sc *sftp.Client) error {
		var err error
		f, err = sc.Open(remote)
		if err != nil {
			return fmt.Errorf("open %s: %w", remote, err)
		}
		if offset > 0 {
			if _, err := f.Seek(offset, io.SeekStart); err != nil {
				f.Close()
				return fmt.Errorf("seek %s: %w", remote, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &slotFile{ctx: ctx, f: f, release: release}, nil
}
