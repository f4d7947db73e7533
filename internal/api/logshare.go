package api

import (
	"context"
	"sync"
	"time"

	"github.com/ftgate/ftgate/internal/artifact"
)

// maxShared is how many of a log's newest bytes the shared follower keeps for its
// viewers; a viewer further behind reads its way up to them itself.
const maxShared = 4 * maxLogChunk

// logShare holds one shared remote follower per job log: however many streams and
// followed logs show a job's output, the gateway stats and reads the file once per
// poll interval.
type logShare struct {
	mu   sync.Mutex
	logs map[string]*sharedLog
}

// sharedLog is the followed state of one job's log file.
type sharedLog struct {
	dir   *artifact.Dir
	slurm string
	refs  int // guarded by logShare.mu

	mu      sync.Mutex
	file    string // log file name in the job directory ("" until found)
	real    string // resolved path
	start   int64  // file offset of buf[0]
	buf     []byte // the newest bytes read, at most maxShared
	size    int64  // the file's size at the last look
	gen     int    // counts truncations: viewers start over when it changes
	checked time.Time
	primed  bool // start is known (the first stat happened)
}

// follow returns the shared follower of job id's log (slurm id slurmID) and its
// release.
func (ls *logShare) follow(id string, d *artifact.Dir, slurmID string) (*sharedLog, func()) {
	key := id + "/" + slurmID
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.logs == nil {
		ls.logs = map[string]*sharedLog{}
	}
	sl := ls.logs[key]
	if sl == nil {
		sl = &sharedLog{dir: d, slurm: slurmID}
		ls.logs[key] = sl
	}
	sl.refs++
	var once sync.Once
	return sl, func() {
		once.Do(func() {
			ls.mu.Lock()
			defer ls.mu.Unlock()
			if sl.refs--; sl.refs == 0 {
				delete(ls.logs, key)
			}
		})
	}
}

// refresh reads what was appended to the log since the last look, at most once per
// half poll interval whoever asks; sl.mu is held.
func (sl *sharedLog) refresh(ctx context.Context) {
	if time.Since(sl.checked) < logPoll/2 {
		return
	}
	sl.checked = time.Now()
	if sl.file == "" {
		name, err := sl.dir.LogFile(ctx, sl.slurm)
		if err != nil {
			return // no log yet
		}
		sl.file = name
	}
	real, fi, err := sl.dir.Stat(ctx, sl.file)
	if err != nil {
		return // not written yet
	}
	sl.real = real
	size, end := fi.Size(), sl.start+int64(len(sl.buf))
	sl.size = size
	if !sl.primed {
		sl.start, end, sl.primed = size, size, true
	}
	if size < end { // truncated or replaced: start over
		sl.start, sl.buf, end = 0, nil, 0
		sl.gen++
	}
	if size == end {
		return
	}
	if size-end > maxShared { // far behind: keep only the newest bytes
		sl.start, sl.buf, end = size-maxShared, nil, size-maxShared
	}
	data, err := readAt(ctx, sl.dir, real, end, size-end)
	if len(data) == 0 || err != nil {
		return
	}
	sl.buf = append(sl.buf, data...)
	if over := len(sl.buf) - maxShared; over > 0 {
		sl.buf = append([]byte(nil), sl.buf[over:]...)
		sl.start += int64(over)
	}
}

func readAt(ctx context.Context, d *artifact.Dir, real string, off, n int64) ([]byte, error) {
	rc, err := d.Open(ctx, real, off)
	if err != nil {
		return nil, nil // gone meanwhile: the next look says why
	}
	defer rc.Close()
	buf := make([]byte, n)
	m, err := readFull(rc, buf)
	return buf[:m], err
}

// logCursor is one viewer's position in a shared log.
type logCursor struct {
	sl      *sharedLog
	offset  int64 // next byte to send; -1: the current end
	gen     int
	started bool
}

// next returns the log's file name and the bytes after the cursor (at most
// maxLogChunk), advancing it; reset is true when the file was truncated or replaced
// and the cursor started over at 0.
func (c *logCursor) next(ctx context.Context) (file string, data []byte, reset bool, err error) {
	sl := c.sl
	sl.mu.Lock()
	sl.refresh(ctx)
	if c.offset > sl.size && sl.primed {
		// Ahead of the last look: look again before calling it a truncation.
		sl.checked = time.Time{}
		sl.refresh(ctx)
	}
	if !sl.primed {
		sl.mu.Unlock()
		return "", nil, false, nil
	}
	if !c.started {
		c.started, c.gen = true, sl.gen
		if c.offset < 0 {
			c.offset = sl.size
		}
	}
	if c.gen != sl.gen || c.offset > sl.size {
		c.offset, c.gen, reset = 0, sl.gen, true
	}
	file, real, start, end, size := sl.file, sl.real, sl.start, sl.start+int64(len(sl.buf)), sl.size
	if c.offset >= start && c.offset < end {
		i := c.offset - start
		data = append([]byte(nil), sl.buf[i:min(int64(len(sl.buf)), i+maxLogChunk)]...)
		sl.mu.Unlock()
		c.offset += int64(len(data))
		return file, data, reset, nil
	}
	sl.mu.Unlock()
	// Behind what is shared (or ahead of it): read directly up to it or the end.
	limit := size
	if c.offset < start {
		limit = start
	}
	if limit <= c.offset {
		return file, nil, reset, nil
	}
	data, err = readAt(ctx, sl.dir, real, c.offset, min(limit-c.offset, maxLogChunk))
	c.offset += int64(len(data))
	return file, data, reset, err
}
