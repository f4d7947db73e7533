package artifact

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"time"

	"github.com/ftgate/ftgate/internal/job"
)

// maxManifest caps the size of a manifest.json read.
const maxManifest = 4 << 20

// maxFiles caps the files of one tar stream or listing.
const maxFiles = 10000

// Manifest is a checkpoint's or the model's manifest.json, written by the trainer.
type Manifest struct {
	Format    int                     `json:"format"`
	Step      int64                   `json:"step"`
	Metric    *float64                `json:"metric,omitempty"`
	CreatedAt float64                 `json:"created_at,omitempty"` // Unix seconds
	Files     map[string]ManifestFile `json:"files"`
}

// ManifestFile is one file of a manifest.
type ManifestFile struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Checkpoint describes one checkpoints/step-<N>/ directory.
type Checkpoint struct {
	Name     string    `json:"name"`
	Step     int64     `json:"step"`
	Size     int64     `json:"size"`
	Loss     *float64  `json:"loss,omitempty"`
	Complete bool      `json:"complete"`
	Problem  string    `json:"problem,omitempty"` // why it is not complete
	Created  time.Time `json:"created"`
	Best     bool      `json:"best"`
}

// ReadManifest reads and decodes dir/manifest.json.
func (d *Dir) ReadManifest(ctx context.Context, dir string) (*Manifest, error) {
	b, err := d.ReadSmall(ctx, dir+"/manifest.json", maxManifest)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, job.Errorf(job.EUnprocessable, "%s/manifest.json: not valid JSON: %v", dir, err)
	}
	return &m, nil
}

// Checkpoints lists checkpoints/step-<N>/ directories, oldest first. Complete means
// the manifest is there, names this step, and every file it lists is present with
// its size (checksums are verified by the trainer and by clients).
func (d *Dir) Checkpoints(ctx context.Context) ([]Checkpoint, error) {
	real, err := d.Resolve(ctx, job.CheckpointsDir)
	if err != nil {
		if job.ErrorCode(err) == job.ENotFound {
			return []Checkpoint{}, nil
		}
		return nil, err
	}
	fis, err := d.readDir(ctx, real, "checkpoints")
	if err != nil {
		return nil, err
	}
	out := []Checkpoint{}
	for _, fi := range fis {
		step, ok := job.CheckpointStep(fi.Name())
		if !ok || !fi.IsDir() {
			continue // temporaries (.tmp-step-*), symlinks and stray files
		}
		c := Checkpoint{Name: fi.Name(), Step: step, Created: fi.ModTime().UTC()}
		d.inspect(ctx, &c)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Step < out[j].Step })
	best := -1
	for i, c := range out {
		if c.Complete && c.Loss != nil && !math.IsNaN(*c.Loss) && (best < 0 || *c.Loss < *out[best].Loss) {
			best = i
		}
	}
	if best >= 0 {
		out[best].Best = true
	}
	return out, nil
}

func (d *Dir) inspect(ctx context.Context, c *Checkpoint) {
	dir := job.CheckpointsDir + "/" + c.Name
	files, err := d.Walk(ctx, dir, maxFiles)
	if err != nil {
		c.Problem = job.ErrorMessage(err)
		return
	}
	have := map[string]int64{}
	for _, f := range files {
		have[f.Rel] = f.Info.Size()
		c.Size += f.Info.Size()
	}
	m, err := d.ReadManifest(ctx, dir)
	if err != nil {
		c.Problem = "manifest.json: " + job.ErrorMessage(err)
		return
	}
	c.Loss = m.Metric
	if m.CreatedAt > 0 {
		c.Created = time.Unix(0, int64(m.CreatedAt*1e9)).UTC()
	}
	if m.Step != c.Step {
		c.Problem = fmt.Sprintf("manifest.json names step %d", m.Step)
		return
	}
	for name, f := range m.Files {
		size, ok := have[name]
		if !ok {
			c.Problem = "missing file " + name
			return
		}
		if size != f.Size {
			c.Problem = fmt.Sprintf("size mismatch for %s", name)
			return
		}
	}
	c.Complete = true
}

// WriteTar streams files (from Walk) into a tar archive on w.
func (d *Dir) WriteTar(ctx context.Context, w io.Writer, files []File, prefix string) error {
	tw := tar.NewWriter(w)
	for _, f := range files {
		hdr := &tar.Header{Name: prefix + "/" + f.Rel, Mode: 0o644, Size: f.Info.Size(), ModTime: f.Info.ModTime(), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write tar header: %w", err)
		}
		rc, err := d.OpenStream(ctx, f.Path, 0)
		if err != nil {
			return err
		}
		n, err := io.CopyN(tw, rc, f.Info.Size())
		rc.Close()
		if err != nil {
			return fmt.Errorf("copy %s (%d of %d bytes): %w", f.Rel, n, f.Info.Size(), err)
		}
	}
	return tw.Close()
}
