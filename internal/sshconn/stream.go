package sshconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// OpenStream opens path for one sequential bulk read from offset, with pipelined SFTP
// reads: pkg/sftp's File.WriteTo keeps up to 64 requests of 32 KiB in flight and
// delivers the data in order, so a download is not bound by one round trip per
// request (as a Read loop is, even with large buffers: each Read waits for all of its
// requests before the next is sent). It may read up to about 2 MiB ahead of what the
// caller consumes. Close stops the reads and closes the file; so does the end of ctx.
func (p *Pool) OpenStream(ctx context.Context, user, remote string, offset int64) (io.ReadCloser, error) {
	rc, err := p.Open(ctx, user, remote, offset)
	if err != nil {
		return nil, err
	}
	cf, ok := rc.(*slotFile)
	if !ok {
		rc.Close()
		return nil, fmt.Errorf("open stream %s: unexpected file type %T", remote, rc)
	}
	pr, pw := io.Pipe()
	s := &stream{pr: pr, file: cf, done: make(chan struct{})} // closing cf frees its session slot
	go func() {
		defer close(s.done)
		_, err := cf.f.WriteTo(pw)
		if err == nil {
			err = io.EOF
		}
		pw.CloseWithError(err)
	}()
	// The reader then sees ctx's error; WriteTo's next write fails and it returns.
	stop := context.AfterFunc(ctx, func() { pw.CloseWithError(ctx.Err()) })
	s.stopCtx = stop
	return s, nil
}

// stream is the reading end of an OpenStream.
type stream struct {
	pr      *io.PipeReader
	file    io.Closer
	done    chan struct{}
	stopCtx func() bool
	once    sync.Once
	err     error
}

func (s *stream) Read(b []byte) (int, error) { return s.pr.Read(b) }

// Close stops the read-ahead, waits for its requests to finish and closes the file.
func (s *stream) Close() error {
	s.once.Do(func() {
		s.stopCtx()
		s.pr.CloseWithError(errStreamClosed)
		<-s.done
		s.err = s.file.Close()
	})
	return s.err
}

var errStreamClosed = errors.New("stream closed")
