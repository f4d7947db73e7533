package download

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/atomicfile"
	"github.com/ftgate/ftgate/internal/ftctl/apiclient"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/render"
	"github.com/ftgate/ftgate/internal/job"
)

// DownloadOptions are the options of `ftctl download`.
type DownloadOptions struct {
	IO         *cmdutil.IOStreams
	Client     func() (*client.Client, error)
	JobID      string
	Checkpoint string
	Logs       bool
	Dir        string
	// Progress draws a progress bar on ErrOut (an interactive terminal).
	Progress bool
}

// NewCmdDownload returns `ftctl download JOB`.
func NewCmdDownload(f *cmdutil.Factory, runF func(context.Context, *DownloadOptions) error) *cobra.Command {
	opts := &DownloadOptions{}
	cmd := &cobra.Command{
		Use:   "download JOB [--checkpoint NAME | --logs] [-o DIR]",
		Short: "Download a job's model, a checkpoint or its logs",
		Long: `Download a job's final model (default), one checkpoint (--checkpoint step-N) or its
output log (--logs) into DIR. Files are checked against the sha256 sums of the
model's or checkpoint's manifest.json; a download that was interrupted resumes where
it stopped when run again, and files already complete are not fetched again.

DIR defaults to <job>-model, <job>-<checkpoint>, or the current directory for logs
(written as <job>.log).`,
		Example: `  ftctl download 01JD5X3M8ZQ
  ftctl download 01JD5X3M8ZQ --checkpoint step-100 -o ./ckpt
  ftctl download 01JD5X3M8ZQ --logs`,
		Args: cmdutil.JobArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.IO, opts.Client, opts.JobID = f.IO, f.APIClient, args[0]
			opts.Progress = cmdutil.IsTerminal(f.IO.ErrOut)
			if opts.Logs && opts.Checkpoint != "" {
				return cmdutil.UsageErrorf("--checkpoint and --logs cannot be combined")
			}
			if opts.Checkpoint != "" && !validCheckpoint(opts.Checkpoint) {
				return cmdutil.UsageErrorf("--checkpoint %q: want a checkpoint name like step-100 (see `ftctl status %s`)", opts.Checkpoint, opts.JobID)
			}
			if opts.Dir == "" {
				switch {
				case opts.Logs:
					opts.Dir = "."
				case opts.Checkpoint != "":
					opts.Dir = opts.JobID + "-" + opts.Checkpoint
				default:
					opts.Dir = opts.JobID + "-model"
				}
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runDownload(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Checkpoint, "checkpoint", "", "download this checkpoint (step-N) instead of the model")
	cmd.Flags().BoolVar(&opts.Logs, "logs", false, "download the job's output log instead of the model")
	cmd.Flags().StringVarP(&opts.Dir, "output", "o", "", "directory to write into")
	return cmd
}

func runDownload(ctx context.Context, opts *DownloadOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", opts.Dir, err)
	}
	if opts.Logs {
		return downloadLogs(ctx, c, opts)
	}
	what := "model"
	if opts.Checkpoint != "" {
		what = "checkpoint " + opts.Checkpoint
	}
	d := &downloader{c: c, opts: opts}
	if opts.Checkpoint != "" {
		// The gateway serves a checkpoint as one tar stream (no ranges).
		return d.tarDownload(ctx, what)
	}
	mctx, cancel := context.WithTimeout(ctx, apiclient.DefaultTimeout)
	m, err := c.ModelManifest(mctx, opts.JobID)
	cancel()
	if err != nil {
		return err
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode manifest.json of the %s: %w", what, err)
	}
	names, err := manifestNames(&m)
	if err != nil {
		return err
	}
	for _, n := range names {
		d.total += m.Files[n].Size
	}
	if err := atomicfile.Write(filepath.Join(opts.Dir, "manifest.json"), append(raw, '\n'), 0o644); err != nil {
		return err
	}
	resumed := 0
	for _, n := range names {
		r, err := d.file(ctx, n, m.Files[n].Size, m.Files[n].SHA256)
		if err != nil {
			return err
		}
		if r {
			resumed++
		}
	}
	d.clearBar()
	note := ""
	if resumed > 0 {
		note = fmt.Sprintf(", %s resumed", render.Plural(resumed, "file", "files"))
	}
	fmt.Fprintf(opts.IO.Out, "Downloaded the %s of job %s to %s: %s, %s, sha256 verified%s\n",
		what, opts.JobID, opts.Dir, render.Plural(len(names), "file", "files"), render.FormatBytes(d.total), note)
	return nil
}

// manifestNames validates the manifest's file names (local, clean paths) and sorts them.
func manifestNames(m *client.Manifest) ([]string, error) {
	if len(m.Files) == 0 {
		return nil, errors.New("manifest.json lists no files")
	}
	var names []string
	for n, f := range m.Files {
		if !filepath.IsLocal(n) || filepath.Clean(n) != n || strings.Contains(n, `\`) || n == "manifest.json" {
			return nil, fmt.Errorf("manifest.json: refusing file name %q (not a plain relative path)", n)
		}
		if f.Size < 0 || len(f.SHA256) != 64 {
			return nil, fmt.Errorf("manifest.json: file %q has no valid size and sha256", n)
		}
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

type downloader struct {
	c     *client.Client
	opts  *DownloadOptions
	total int64
	done  int64  // bytes of finished files
	cur   *int64 // bytes of the file being fetched
	drawn time.Time
}

// file downloads one file into <dir>/<name>, resuming <name>.part with an HTTP Range
// request (If-Range: the ETag seen first), and checks its size and sha256. It reports
// whether it resumed a partial download.
func (d *downloader) file(ctx context.Context, name string, size int64, sum string) (bool, error) {
	dst := filepath.Join(d.opts.Dir, filepath.FromSlash(name))
	if ok, _ := fileMatches(dst, size, sum); ok {
		d.done += size
		d.bar()
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return false, fmt.Errorf("create %s: %w", filepath.Dir(dst), err)
	}
	part, etagFile := dst+".part", dst+".part.etag"
	var have int64
	if st, err := os.Stat(part); err == nil && st.Size() <= size {
		have = st.Size()
	}
	etag, _ := os.ReadFile(etagFile)
	for attempt := 0; ; attempt++ {
		hdr := http.Header{}
		if have > 0 {
			hdr.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
			if len(etag) > 0 {
				hdr.Set("If-Range", string(etag))
			}
		}
		resumedAt := have
		err := d.fetchInto(ctx, name, part, etagFile, hdr, &have)
		if err == nil {
			if err := verifyFile(part, size, sum); err != nil {
				_ = os.Remove(part)
				_ = os.Remove(etagFile)
				return false, fmt.Errorf("%s: %w; the partial file was removed, run the download again", name, err)
			}
			_ = os.Remove(etagFile)
			if err := os.Rename(part, dst); err != nil {
				return false, fmt.Errorf("rename %s: %w", part, err)
			}
			d.done += size
			return resumedAt > 0, nil
		}
		var ce *apiclient.ConnError
		if ctx.Err() != nil || attempt >= 3 || (!errors.As(err, &ce) && !errors.Is(err, io.ErrUnexpectedEOF)) {
			return false, fmt.Errorf("download %s: %w (run the command again to resume)", name, err)
		}
		time.Sleep(time.Duration(attempt+1) * 500 * time.Millisecond)
	}
}

func (d *downloader) fetchInto(ctx context.Context, name, part, etagFile string, hdr http.Header, have *int64) error {
	resp, err := d.c.Download(ctx, d.opts.JobID, "", name, hdr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	flags := os.O_WRONLY | os.O_CREATE
	if resp.StatusCode == http.StatusPartialContent {
		flags |= os.O_APPEND
	} else {
		// A full answer: the file changed or the server ignored the range.
		*have = 0
		flags |= os.O_TRUNC
		if et := resp.Header.Get("ETag"); et != "" {
			_ = os.WriteFile(etagFile, []byte(et), 0o644)
		}
	}
	f, err := os.OpenFile(part, flags, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", part, err)
	}
	d.cur = have
	w := &countingWriter{w: f, n: have, d: d}
	_, cerr := io.Copy(w, resp.Body)
	if err := f.Close(); err != nil && cerr == nil {
		cerr = err
	}
	d.cur = nil
	if cerr != nil {
		var ne interface{ Timeout() bool }
		if errors.As(cerr, &ne) || errors.Is(cerr, io.ErrUnexpectedEOF) {
			return &apiclient.ConnError{Server: d.c.BaseURL, Err: cerr}
		}
		return cerr
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n *int64
	d *downloader
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	*c.n += int64(n)
	c.d.bar()
	return n, err
}

// bar redraws the progress bar at most ten times a second.
func (d *downloader) bar() {
	if !d.opts.Progress || time.Since(d.drawn) < 100*time.Millisecond {
		return
	}
	d.drawn = time.Now()
	done := d.done
	if d.cur != nil {
		done += *d.cur
	}
	fmt.Fprintf(d.opts.IO.ErrOut, "\r%s %s / %s %s ", render.ProgressBar(done, d.total, 30), render.FormatBytes(done), render.FormatBytes(d.total), render.Percent(done, d.total))
}

func (d *downloader) clearBar() {
	if d.opts.Progress && !d.drawn.IsZero() {
		fmt.Fprint(d.opts.IO.ErrOut, "\r\x1b[K")
	}
}

func fileMatches(path string, size int64, sum string) (bool, error) {
	st, err := os.Stat(path)
	if err != nil || st.Size() != size {
		return false, err
	}
	return verifyFile(path, size, sum) == nil, nil
}

func verifyFile(path string, size int64, sum string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if n != size {
		return fmt.Errorf("size %d, want %d from the manifest", n, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, sum) {
		return fmt.Errorf("sha256 %s, want %s from the manifest", got, sum)
	}
	return nil
}

// tarDownload extracts a checkpoint's tar stream into the directory and verifies the
// files against the manifest.json inside it.
func (d *downloader) tarDownload(ctx context.Context, what string) error {
	resp, err := d.c.Download(ctx, d.opts.JobID, d.opts.Checkpoint, "", http.Header{"Accept": {"application/x-tar"}})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	tr := tar.NewReader(resp.Body)
	n := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read the %s archive: %w (run the command again)", what, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		// Entries are <prefix>/<path>: drop the archive's top-level directory.
		_, name, ok := strings.Cut(h.Name, "/")
		if !ok || !filepath.IsLocal(name) || strings.Contains(name, `\`) {
			return fmt.Errorf("the %s archive holds an unsafe path %q", what, h.Name)
		}
		dst := filepath.Join(d.opts.Dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		f, err := os.Create(dst + ".part")
		if err != nil {
			return err
		}
		_, cerr := io.Copy(f, tr)
		if err := f.Close(); cerr == nil {
			cerr = err
		}
		if cerr != nil {
			return fmt.Errorf("write %s: %w", dst, cerr)
		}
		if err := os.Rename(dst+".part", dst); err != nil {
			return err
		}
		n++
	}
	raw, err := os.ReadFile(filepath.Join(d.opts.Dir, "manifest.json"))
	if err != nil {
		return fmt.Errorf("the %s has no manifest.json to verify against", what)
	}
	var m client.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("decode manifest.json of the %s: %w", what, err)
	}
	names, err := manifestNames(&m)
	if err != nil {
		return err
	}
	var total int64
	for _, name := range names {
		if err := verifyFile(filepath.Join(d.opts.Dir, filepath.FromSlash(name)), m.Files[name].Size, m.Files[name].SHA256); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		total += m.Files[name].Size
	}
	fmt.Fprintf(d.opts.IO.Out, "Downloaded the %s of job %s to %s: %s, %s, sha256 verified\n",
		what, d.opts.JobID, d.opts.Dir, render.Plural(len(names), "file", "files"), render.FormatBytes(total))
	return nil
}

// downloadLogs appends the log beyond what <dir>/<job>.log already holds.
func downloadLogs(ctx context.Context, c *client.Client, opts *DownloadOptions) error {
	dst := filepath.Join(opts.Dir, opts.JobID+".log")
	var have int64
	if st, err := os.Stat(dst); err == nil {
		have = st.Size()
	}
	resp, err := c.Logs(ctx, opts.JobID, client.LogOptions{Offset: have})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", dst, err)
	}
	n, cerr := io.Copy(f, resp.Body)
	if err := f.Close(); cerr == nil {
		cerr = err
	}
	if cerr != nil {
		return fmt.Errorf("write %s: %w (run the command again to resume)", dst, cerr)
	}
	fmt.Fprintf(opts.IO.Out, "Downloaded the log of job %s to %s (%s, %s new)\n", opts.JobID, dst, render.FormatBytes(have+n), render.FormatBytes(n))
	return nil
}

func validCheckpoint(name string) bool { _, ok := job.CheckpointStep(name); return ok }
