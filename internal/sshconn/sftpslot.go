package sshconn

import (
	"context"
	"fmt"
	"sync"

	"github.com/pkg/sftp"
)

// sftpInSlot runs fn with the user's SFTP client inside one session slot under the
// command deadline. SFTP requests cannot be cancelled: when ctx ends first, fn keeps
// running and keeps its slot until it returns, so max_sessions stays true.
//
// A non-nil hold (Open's stream) keeps the slot after a successful fn; the returned
// release gives it back. hold itself undoes what fn made (closes the file) when fn
// succeeds only after ctx ended, so a late remote success leaves no handle open; the
// slot is freed after it.
func (p *Pool) sftpInSlot(ctx context.Context, user, remote string, hold func(), fn func(*sftp.Client) error) (func(), error) {
	if err := checkPath(remote); err != nil {
		return nil, err
	}
	c, err := p.conn(user)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.CommandTimeout)
	defer cancel()
	if err := c.acquire(ctx); err != nil {
		return nil, err
	}
	var once sync.Once
	free := func() { once.Do(c.release) }
	sc, err := c.sftpClient(ctx)
	if err != nil {
		free()
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- fn(sc) }()
	select {
	case err := <-done:
		if err != nil || hold == nil {
			free()
			return nil, err
		}
		return free, nil
	case <-ctx.Done():
		go func() { // the slot is free only when the work is
			if err := <-done; err == nil && hold != nil {
				hold()
			}
			free()
		}()
		return nil, fmt.Errorf("sftp %s: %w", remote, ctx.Err())
	}
}

// slotFile is an open SFTP file that holds its session slot until Close.
type slotFile struct {
	ctx     context.Context
	f       *sftp.File
	release func()
}

func (r *slotFile) Read(b []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.f.Read(b)
}

func (r *slotFile) Close() error {
	err := r.f.Close()
	r.release()
	return err
}
