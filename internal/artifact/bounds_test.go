package artifact

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
)

// hugeLine yields {"step":1,"loss":0.5,"x":"AAAA... (n bytes) ..."}\n then more lines,
// without holding them in memory.
type hugeLine struct {
	n, sent int
	head    string
	tail    string
}

func (h *hugeLine) Read(p []byte) (int, error) {
	if h.head != "" {
		n := copy(p, h.head)
		h.head = h.head[n:]
		return n, nil
	}
	if h.sent < h.n {
		k := min(len(p), h.n-h.sent)
		for i := range p[:k] {
			p[i] = 'A'
		}
		h.sent += k
		return k, nil
	}
	if h.tail == "" {
		return 0, io.EOF
	}
	n := copy(p, h.tail)
	h.tail = h.tail[n:]
	return n, nil
}

// peakHeap runs f and returns the highest HeapAlloc seen while it ran.
func peakHeap(f func()) uint64 {
	runtime.GC()
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	f()
	close(done)
	wg.Wait()
	return peak.Load()
}

// TestReadSeriesBoundedMemory: one 20 MB line (below MaxMetricsBytes) is skipped without being buffered; the
// lines after it still count.
func TestReadSeriesBoundedMemory(t *testing.T) {
	var s *Series
	var err error
	peak := peakHeap(func() {
		r := &hugeLine{n: 20 << 20, head: `{"step":1,"loss":0.5,"x":"`, tail: "\"}\n" + `{"step":2,"loss":0.25}` + "\n"}
		s, err = ReadSeries(r, -1, 0)
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Skipped != 1 || len(s.Series["loss"]) != 1 || s.Series["loss"][0][0] != 2 {
		t.Errorf("series %+v", s)
	}
	if peak > 8<<20 {
		t.Errorf("peak heap %d MB reading a 20 MB line, want < 8 MB", peak>>20)
	}
	t.Logf("peak heap %.1f MB for a 20 MB line", float64(peak)/(1<<20))
}

// TestReadSeriesBoundedPoints: 300,000 distinct steps keep at most maxPoints (the
// newest) in bounded memory.
func TestReadSeriesBoundedPoints(t *testing.T) {
	pr, pw := io.Pipe()
	go func() {
		defer pw.Close()
		for i := 0; i < 300_000; i++ {
			if _, err := fmt.Fprintf(pw, `{"step":%d,"loss":1.5,"lr":0.001}`+"\n", i); err != nil {
				return
			}
		}
	}()
	var s *Series
	var err error
	peak := peakHeap(func() { s, err = ReadSeries(pr, -1, 500) })
	pr.Close()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(s.Series["loss"]); n != 500 {
		t.Errorf("%d points kept, want 500", n)
	}
	if s.LastStep != 299_999 {
		t.Errorf("last step %d", s.LastStep)
	}
	if peak > 64<<20 {
		t.Errorf("peak heap %d MB, want < 64 MB", peak>>20)
	}
	t.Logf("last step %d, peak heap %.1f MB", s.LastStep, float64(peak)/(1<<20))
}

type newlines struct{}

func (newlines) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = '\n'
	}
	return len(p), nil
}

// TestReadSeriesStopsAtMaxBytes: an endless file is read up to MaxMetricsBytes.
func TestReadSeriesStopsAtMaxBytes(t *testing.T) {
	s, err := ReadSeries(newlines{}, -1, 0)
	if err != nil || !s.Truncated {
		t.Errorf("endless input: %+v %v", s, err)
	}
}

// dirFS serves one directory of n entries named step-<i> (directories).
type dirFS struct {
	n     int
	reads atomic.Int64
}

type fi struct {
	name string
	dir  bool
}

func (f fi) Name() string { return f.name }
func (f fi) Size() int64  { return 0 }
func (f fi) Mode() fs.FileMode {
	if f.dir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}
func (f fi) ModTime() time.Time { return time.Unix(0, 0) }
func (f fi) IsDir() bool        { return f.dir }
func (f fi) Sys() any           { return nil }

func (d *dirFS) Lstat(ctx context.Context, user, p string) (os.FileInfo, error) {
	d.reads.Add(1)
	return fi{name: p, dir: true}, nil
}
func (d *dirFS) ReadDir(ctx context.Context, user, p string) ([]os.FileInfo, error) {
	out := make([]os.FileInfo, d.n)
	for i := range out {
		out[i] = fi{name: fmt.Sprintf("step-%d", d.n-i), dir: !strings.HasSuffix(p, "/step-1")}
	}
	return out, nil
}
func (d *dirFS) RealPath(ctx context.Context, user, p string) (string, error) { return p, nil }
func (d *dirFS) Open(ctx context.Context, user, p string, offset int64) (io.ReadCloser, error) {
	d.reads.Add(1)
	return nil, fs.ErrNotExist
}
func (d *dirFS) ReadFile(ctx context.Context, user, p string, max int64) ([]byte, error) {
	d.reads.Add(1)
	return nil, fs.ErrNotExist
}
func (d *dirFS) Run(ctx context.Context, user string, argv []string, stdin io.Reader) ([]byte, []byte, error) {
	return nil, nil, nil
}

// TestListingsRefuseHugeDirectories: 60,000 checkpoint directories are refused with a
// clear ETooLarge before any per-checkpoint read.
func TestListingsRefuseHugeDirectories(t *testing.T) {
	f := &dirFS{n: 60000}
	d := &Dir{FS: f, User: "alice", Path: "/jobs/alice/j1", Root: "/jobs"}
	_, err := d.Checkpoints(context.Background())
	if job.ErrorCode(err) != job.ETooLarge || !strings.Contains(job.ErrorMessage(err), "60000 entries") {
		t.Errorf("Checkpoints of 60000: %v", err)
	}
	if n := f.reads.Load(); n != 0 {
		t.Errorf("%d per-entry reads before refusing", n)
	}
	if _, err := d.Walk(context.Background(), "checkpoints", 100000); job.ErrorCode(err) != job.ETooLarge {
		t.Errorf("Walk of 60000: %v", err)
	}
}

// TestSortInfos: by name.
func TestSortInfos(t *testing.T) {
	fis := []os.FileInfo{fi{name: "b"}, fi{name: "c"}, fi{name: "a"}, fi{name: "a0"}}
	sortInfos(fis)
	var got []string
	for _, f := range fis {
		got = append(got, f.Name())
	}
	if !sort.StringsAreSorted(got) {
		t.Errorf("%v", got)
	}
}

// BenchmarkSortInfos60000 sorts a listing of 60,000 names in reverse order (the
// insertion sort it replaced took ~36 s of CPU for this; compare with -bench).
func BenchmarkSortInfos60000(b *testing.B) {
	base := make([]os.FileInfo, 60000)
	for i := range base {
		base[i] = fi{name: fmt.Sprintf("f%06d", 60000-i)}
	}
	for i := 0; i < b.N; i++ {
		fis := append([]os.FileInfo(nil), base...)
		sortInfos(fis)
	}
}
