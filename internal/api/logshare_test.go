package api

import (
	"context"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/artifact"
	"github.com/ftgate/ftgate/internal/job"
)

// countingFS counts the remote stats and opens of a localFS.
type countingFS struct {
	localFS
	stats, opens atomic.Int64
}

func (c *countingFS) Lstat(ctx context.Context, user, p string) (os.FileInfo, error) {
	c.stats.Add(1)
	return c.localFS.Lstat(ctx, user, p)
}

func (c *countingFS) Open(ctx context.Context, user, p string, off int64) (io.ReadCloser, error) {
	c.opens.Add(1)
	return c.localFS.Open(ctx, user, p, off)
}

// TestSharedLogFollower: many viewers of one job's log cost one remote stat and read
// per look, each viewer gets every byte from its own offset, and a truncated log
// starts every viewer over.
func TestSharedLogFollower(t *testing.T) {
	t.Parallel()
	fs := &countingFS{localFS: localFS{fakeSlurm: newFakeSlurm(), root: t.TempDir()}}
	const logPath = "/jobs/alice/j1/slurm-7.out"
	fs.write(t, logPath, "one\ntwo\n")
	d, err := artifact.ForJob(fs, "/jobs", job.Job{ID: "j1", User: "alice", JobDir: "/jobs/alice/j1"})
	if err != nil {
		t.Fatal(err)
	}
	var share logShare
	ctx := context.Background()
	const viewers = 20
	var curs []*logCursor
	var releases []func()
	for range viewers {
		sl, release := share.follow("j1", d, "7")
		curs = append(curs, &logCursor{sl: sl, offset: 0})
		releases = append(releases, release)
	}
	readAll := func(want string) {
		t.Helper()
		var wg sync.WaitGroup
		got := make([]string, len(curs))
		for i, c := range curs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					_, data, _, err := c.next(ctx)
					if err != nil {
						t.Error(err)
					}
					if len(data) == 0 {
						return
					}
					got[i] += string(data)
				}
			}()
		}
		wg.Wait()
		for i, g := range got {
			if g != want {
				t.Errorf("viewer %d read %q, want %q", i, g, want)
			}
		}
	}
	look := func() { curs[0].sl.mu.Lock(); curs[0].sl.checked = time.Time{}; curs[0].sl.mu.Unlock() }

	readAll("one\ntwo\n")
	stats0, opens0 := fs.stats.Load(), fs.opens.Load()
	if stats0 > 4 {
		t.Errorf("%d viewers starting: %d remote stats, want a few", viewers, stats0)
	}
	f, _ := os.OpenFile(fs.root+logPath, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("three\n")
	f.Close()
	look()
	readAll("three\n")
	if n := fs.stats.Load() - stats0; n > 2 {
		t.Errorf("one look for %d viewers: %d remote stats, want 1 (2 with the path check)", viewers, n)
	}
	if n := fs.opens.Load() - opens0; n != 1 {
		t.Errorf("one look for %d viewers: %d remote reads, want 1", viewers, n)
	}
	// A late viewer from the current end sees only what comes next.
	sl, release := share.follow("j1", d, "7")
	late := &logCursor{sl: sl, offset: -1}
	if _, data, _, _ := late.next(ctx); len(data) != 0 {
		t.Errorf("a viewer from the end read %q", data)
	}
	release()
	// Truncated: everyone starts over.
	fs.write(t, logPath, "new\n")
	look()
	for i, c := range curs {
		_, data, reset, _ := c.next(ctx)
		if !reset || string(data) != "new\n" {
			t.Errorf("viewer %d after truncation: reset=%v %q", i, reset, data)
		}
	}
	for _, r := range releases {
		r()
	}
	if len(share.logs) != 0 {
		t.Errorf("%d shared followers left after every viewer left", len(share.logs))
	}
}
