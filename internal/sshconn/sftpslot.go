package sshconn

import (
	"context"
	"fmt"
	"sync"

	"github.com/pkg/sftp"
)

// sftpInSlot runs fn with the user's SFTP client inside one session slot under the
// command deadline. SFTP requests cannot be cancelled: when ctx ends first, fn keeps
// running and keeps its slot until it returns, so max_sessions stays true. With hold,
// a successful fn keeps the slot and the returned release gives it back (Open's
// stream holds its slot until Close).
func (p *Pool) sftpInSlot(ctx context.Context, user, remote string, hold bool, fn func(*sftp.Client) error) (func(), error) {
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
		if err != nil || !hold {
			free()
			return nil, err
		}
		return free, nil
	case <-ctx.Done():
		go func() { <-done; free() }() // the slot is free only when the work is
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
