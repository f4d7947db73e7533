package artifact

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
)

// writeCkpt writes checkpoints/<name>/ with files and a manifest naming step, listing
// manifestFiles (name -> size; -1: the real size) and metric (nil: none).
func writeCkpt(t *testing.T, d *Dir, name string, step int64, files map[string]string, manifestFiles map[string]int64, metric *float64) {
	t.Helper()
	dir := filepath.Join(d.Path, "checkpoints", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	m := Manifest{Format: 1, Step: step, Metric: metric, CreatedAt: 1767268800.5, Files: map[string]ManifestFile{}}
	for n, data := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for n, size := range manifestFiles {
		if size < 0 {
			size = int64(len(files[n]))
		}
		sum := sha256.Sum256([]byte(files[n]))
		m.Files[n] = ManifestFile{Size: size, SHA256: hex.EncodeToString(sum[:])}
	}
	if manifestFiles != nil {
		b, _ := json.Marshal(m)
		if err := os.WriteFile(filepath.Join(dir, "manifest.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func f64(v float64) *float64 { return &v }

// TestCheckpoints: the listing names each step-<N> directory oldest first, complete
// only when its manifest names its step and lists files present with their sizes, and
// marks the complete one with the lowest loss best; temporaries, stray files and
// symlinks are not checkpoints.
func TestCheckpoints(t *testing.T) {
	_, d, _ := tree(t)
	ctx := context.Background()
	os.RemoveAll(filepath.Join(d.Path, "checkpoints"))
	if cks, err := d.Checkpoints(ctx); err != nil || len(cks) != 0 || cks == nil {
		t.Fatalf("no checkpoints dir: %v, %v; want an empty list", cks, err)
	}
	ok := map[string]string{"model.pt": "weights", "optimizer.pt": "opt"}
	all := map[string]int64{"model.pt": -1, "optimizer.pt": -1}
	writeCkpt(t, d, "step-10", 10, ok, all, f64(1.5))
	writeCkpt(t, d, "step-20", 20, map[string]string{"model.pt": "weights"}, all, f64(0.1)) // optimizer.pt missing
	writeCkpt(t, d, "step-30", 30, ok, map[string]int64{"model.pt": 3, "optimizer.pt": -1}, f64(0.2))
	writeCkpt(t, d, "step-40", 40, ok, all, f64(0.3))
	writeCkpt(t, d, "step-41", 99, ok, all, f64(0.05)) // names another step
	writeCkpt(t, d, "step-5", 5, ok, nil, nil)         // no manifest yet
	writeCkpt(t, d, "step-50", 50, ok, all, f64(0.9))
	writeCkpt(t, d, "step-60", 60, ok, all, nil) // complete, no metric
	writeCkpt(t, d, ".tmp-step-70-1", 70, ok, all, f64(0.01))
	os.WriteFile(filepath.Join(d.Path, "checkpoints", "step-80"), []byte("x"), 0o644)
	os.Symlink("step-10", filepath.Join(d.Path, "checkpoints", "step-90"))
	cks, err := d.Checkpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cks {
		s := fmt.Sprintf("%s:%d:%v", c.Name, c.Step, c.Complete)
		if c.Problem != "" {
			s += ":" + c.Problem
		}
		if c.Best {
			s += ":best"
		}
		got = append(got, s)
	}
	want := []string{
		"step-5:5:false:manifest.json: checkpoints/step-5/manifest.json not found",
		"step-10:10:true",
		"step-20:20:false:missing file optimizer.pt",
		"step-30:30:false:size mismatch for model.pt",
		"step-40:40:true:best",
		"step-41:41:false:manifest.json names step 99",
		"step-50:50:true",
		"step-60:60:true",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("checkpoints:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	c := cks[1]
	mfi, _ := os.Stat(filepath.Join(d.Path, "checkpoints", "step-10", "manifest.json"))
	if c.Size != int64(len("weights")+len("opt"))+mfi.Size() || c.Loss == nil || *c.Loss != 1.5 ||
		!c.Created.Equal(time.Unix(1767268800, 5e8).UTC()) {
		t.Errorf("step-10: size %d loss %v created %v", c.Size, c.Loss, c.Created)
	}
	// A manifest that is not JSON is a problem, not an error of the listing.
	os.WriteFile(filepath.Join(d.Path, "checkpoints", "step-50", "manifest.json"), []byte("{"), 0o644)
	if cks, err = d.Checkpoints(ctx); err != nil || cks[6].Complete || !strings.Contains(cks[6].Problem, "not valid JSON") {
		t.Errorf("bad manifest: %+v, %v", cks[6], err)
	}
	if _, err := d.ReadManifest(ctx, "checkpoints/step-50"); job.ErrorCode(err) != job.EUnprocessable {
		t.Errorf("ReadManifest of bad JSON: %v, want EUnprocessable", err)
	}
}

// TestWriteTar: the archive holds each walked file under prefix with its bytes.
func TestWriteTar(t *testing.T) {
	_, d, _ := tree(t)
	ctx := context.Background()
	files, err := d.Walk(ctx, "model", 100)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := d.WriteTar(ctx, &buf, files, "model"); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	var got []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		got = append(got, h.Name+"="+string(b))
	}
	if strings.Join(got, ",") != "model/tok/vocab.json={},model/weights.bin=weights" {
		t.Errorf("tar: %v", got)
	}
	// A file that shrank after the walk fails the archive instead of padding it.
	os.WriteFile(filepath.Join(d.Path, "model", "weights.bin"), []byte("w"), 0o644)
	if err := d.WriteTar(ctx, io.Discard, files, "model"); err == nil {
		t.Error("tar of a file that shrank: no error")
	}
}

// TestLogFileAndTail: the log is slurm-<id>.out for a known id, else the newest
// slurm-*.out; the tail starts at the last n lines.
func TestLogFileAndTail(t *testing.T) {
	_, d, _ := tree(t)
	ctx := context.Background()
	if name, err := d.LogFile(ctx, "42"); err != nil || name != "slurm-42.out" {
		t.Errorf("LogFile(42) = %q, %v", name, err)
	}
	if _, err := d.LogFile(ctx, ""); job.ErrorCode(err) != job.ENotFound {
		t.Errorf("LogFile without logs: %v, want ENotFound", err)
	}
	old := time.Now().Add(-time.Hour)
	for name, mt := range map[string]time.Time{"slurm-7.out": old, "slurm-9.out": time.Now(), "slurm-x.out": time.Now().Add(time.Hour), "other.out": time.Now().Add(time.Hour)} {
		p := filepath.Join(d.Path, name)
		os.WriteFile(p, []byte("a\nb\nc\n"), 0o644)
		os.Chtimes(p, mt, mt)
	}
	os.Symlink("slurm-7.out", filepath.Join(d.Path, "slurm-99.out"))
	os.Chtimes(filepath.Join(d.Path, "slurm-7.out"), time.Now().Add(2*time.Hour), time.Now().Add(2*time.Hour))
	os.Chtimes(filepath.Join(d.Path, "slurm-7.out"), old, old)
	if name, err := d.LogFile(ctx, ""); err != nil || name != "slurm-9.out" {
		t.Errorf("LogFile newest = %q, %v; want slurm-9.out", name, err)
	}
	real, fi, err := d.Stat(ctx, "slurm-9.out")
	if err != nil {
		t.Fatal(err)
	}
	for n, want := range map[int]int64{0: 6, 1: 4, 2: 2, 3: 0, 10: 0} {
		if off, err := d.TailStart(ctx, real, fi.Size(), n); err != nil || off != want {
			t.Errorf("TailStart(%d) = %d, %v; want %d", n, off, err, want)
		}
	}
	if off, err := d.TailStart(ctx, real, 0, 3); err != nil || off != 0 {
		t.Errorf("TailStart of an empty file = %d, %v", off, err)
	}
	big := strings.Repeat("x", maxTailWindow) + "\nlast\n"
	os.WriteFile(real, []byte("first\n"+big), 0o644)
	size := int64(len("first\n" + big))
	if off, err := d.TailStart(ctx, real, size, 100); err != nil || off != size-int64(len("last\n")) {
		t.Errorf("TailStart beyond the window = %d, %v; want the start of the last line %d", off, err, size-5)
	}
}
