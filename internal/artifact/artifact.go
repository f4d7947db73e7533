// Package artifact reads and deletes a job's artifacts (logs, metrics, checkpoints,
// the final model) in its job directory on the cluster, over SFTP as the job's Unix
// user, and enforces the retention policy.
//
// Path safety: every name a client sends is validated (Rel, CheckpointName) before any
// remote call, joined below the job directory and resolved on the cluster; a path
// whose resolution (symlinks included) leaves the job directory is refused with
// job.ENotFound and never opened. Directory walks skip symlinks. Deletions run
// `rm -rf -- <path>` built as an argv and quoted by sshconn's one quoting function,
// only on resolved paths strictly inside the job directory (or the job directory
// itself for a purge, checked against the cluster's job root).
package artifact

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/ftgate/ftgate/internal/job"
)

// FS is the SFTP and command access to a login node that artifacts need;
// *sshconn.Pool implements it.
type FS interface {
	Lstat(ctx context.Context, user, path string) (os.FileInfo, error)
	ReadDir(ctx context.Context, user, path string) ([]os.FileInfo, error)
	RealPath(ctx context.Context, user, path string) (string, error)
	Open(ctx context.Context, user, path string, offset int64) (io.ReadCloser, error)
	ReadFile(ctx context.Context, user, path string, max int64) ([]byte, error)
	Run(ctx context.Context, user string, argv []string, stdin io.Reader) (stdout, stderr []byte, err error)
}

// Dir is one job's directory, accessed as the job's Unix user.
type Dir struct {
	FS   FS
	User string
	Path string // absolute job directory, as stored for the job
	// Root is the cluster's job root; Path must lie in Root/User.
	Root string
}

var (
	elemRE = regexp.MustCompile(`^[A-Za-z0-9_+@=,-][A-Za-z0-9_.+@=,-]{0,254}$`)
)

// ForJob returns the Dir of j on a cluster whose job root is root. It refuses a job
// directory that is not <root>/<user>/<name>.
func ForJob(fsys FS, root string, j job.Job) (*Dir, error) {
	root = path.Clean(root)
	if j.JobDir == "" {
		return nil, job.Errorf(job.ENotFound, "job %s has no job directory yet (it was not submitted)", j.ID)
	}
	want := path.Join(root, j.User)
	if !strings.HasPrefix(root, "/") || path.Clean(j.JobDir) != j.JobDir || path.Dir(j.JobDir) != want || !elemRE.MatchString(path.Base(j.JobDir)) {
		return nil, &job.Error{Code: job.EInternal, Message: "job directory is not where it should be",
			Err: fmt.Errorf("job %s: directory %q is not in %q", j.ID, j.JobDir, want)}
	}
	return &Dir{FS: fsys, User: j.User, Path: j.JobDir, Root: root}, nil
}

// Rel validates a client-supplied relative path (field names the parameter in
// errors): slash-separated elements of letters, digits and _.+@=,- that do not start
// with a dot, no "..", no absolute paths, no empty elements, at most 16 deep.
func Rel(field, p string) (string, error) {
	if p == "" {
		return "", job.Errorf(job.EInvalid, "%s: is required", field)
	}
	if len(p) > 1024 {
		return "", job.Errorf(job.EInvalid, "%s: longer than 1024 bytes", field)
	}
	if strings.HasPrefix(p, "/") {
		return "", job.Errorf(job.EInvalid, "%s: must be relative to the job directory, got an absolute path", field)
	}
	els := strings.Split(p, "/")
	if len(els) > 16 {
		return "", job.Errorf(job.EInvalid, "%s: more than 16 path elements", field)
	}
	for _, el := range els {
		if el == ".." || el == "." {
			return "", job.Errorf(job.EInvalid, "%s: must not contain %q elements", field, el)
		}
		if !elemRE.MatchString(el) {
			return "", job.Errorf(job.EInvalid, "%s: element %q must match %s (no hidden files, no empty elements)", field, el, elemRE)
		}
	}
	return p, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// notFound is the error for anything missing or refused: the two look alike to
// clients, so a probe learns nothing about paths outside the job directory.
func notFound(what string) error { return job.Errorf(job.ENotFound, "%s not found", what) }

// Resolve returns the real path of rel (already validated) inside the job directory.
// A path that does not exist, or whose resolution leaves the job directory (a
// symlink pointing elsewhere), is ENotFound.
func (d *Dir) Resolve(ctx context.Context, rel string) (string, error) {
	return d.ResolveIn(ctx, "", rel)
}

// ResolveIn is Resolve for rel below the subdirectory top (e.g. "model"): the result
// must lie inside top's own resolution, so a symlink in model/ cannot serve other
// files of the job directory either.
func (d *Dir) ResolveIn(ctx context.Context, top, rel string) (string, error) {
	base, err := d.realDir(ctx)
	if err != nil {
		return "", err
	}
	if top != "" {
		tb, err := d.FS.RealPath(ctx, d.User, path.Join(d.Path, top))
		if err != nil {
			return "", d.fsErr(err, top)
		}
		if !strings.HasPrefix(tb, base+"/") {
			return "", notFound(top)
		}
		base = tb
	}
	real, err := d.FS.RealPath(ctx, d.User, path.Join(d.Path, top, rel))
	if err != nil {
		return "", d.fsErr(err, path.Join(top, rel))
	}
	if !strings.HasPrefix(real, base+"/") {
		return "", notFound(path.Join(top, rel))
	}
	return real, nil
}

// realDir resolves the job directory itself.
func (d *Dir) realDir(ctx context.Context) (string, error) {
	real, err := d.FS.RealPath(ctx, d.User, d.Path)
	if err != nil {
		return "", d.fsErr(err, "job directory")
	}
	return path.Clean(real), nil
}

// fsErr maps SFTP errors: missing and permission errors become ENotFound, the rest
// keep their cause (connection errors are already EUnavailable).
func (d *Dir) fsErr(err error, what string) error {
	var je *job.Error
	if errors.As(err, &je) {
		return err
	}
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) || strings.Contains(err.Error(), "not exist") {
		return notFound(what)
	}
	return &job.Error{Code: job.EUnavailable, Message: "cannot read " + what + " on the cluster", Err: err}
}

// File is one regular file found by a walk.
type File struct {
	Rel  string // relative to the walked directory
	Path string // absolute
	Info os.FileInfo
}

// Stat returns the info of the regular file rel (symlinks inside the job directory are
// followed once resolved).
func (d *Dir) Stat(ctx context.Context, rel string) (string, os.FileInfo, error) {
	return d.StatIn(ctx, "", rel)
}

// StatIn is Stat for rel below the subdirectory top (see ResolveIn).
func (d *Dir) StatIn(ctx context.Context, top, rel string) (string, os.FileInfo, error) {
	real, err := d.ResolveIn(ctx, top, rel)
	if err != nil {
		return "", nil, err
	}
	fi, err := d.FS.Lstat(ctx, d.User, real)
	if err != nil {
		return "", nil, d.fsErr(err, rel)
	}
	if !fi.Mode().IsRegular() {
		return "", nil, notFound(rel)
	}
	return real, fi, nil
}

// Walk lists the regular files below the directory rel (resolved inside the job
// directory), depth first in name order, skipping symlinks and hidden names. At most
// limit files are returned.
func (d *Dir) Walk(ctx context.Context, rel string, limit int) ([]File, error) {
	real, err := d.Resolve(ctx, rel)
	if err != nil {
		return nil, err
	}
	var out []File
	var walk func(dir, prefix string, depth int) error
	walk = func(dir, prefix string, depth int) error {
		if depth > 16 {
			return nil
		}
		fis, err := d.readDir(ctx, dir, rel)
		if err != nil {
			return err
		}
		sortInfos(fis)
		for _, fi := range fis {
			name := fi.Name()
			if !elemRE.MatchString(name) {
				continue
			}
			switch {
			case fi.Mode()&fs.ModeSymlink != 0:
				continue
			case fi.IsDir():
				if err := walk(dir+"/"+name, prefix+name+"/", depth+1); err != nil {
					return err
				}
			case fi.Mode().IsRegular():
				if len(out) >= limit {
					return job.Errorf(job.ETooLarge, "%s: more than %d files", rel, limit)
				}
				out = append(out, File{Rel: prefix + name, Path: dir + "/" + name, Info: fi})
			}
		}
		return nil
	}
	if err := walk(real, "", 0); err != nil {
		return nil, err
	}
	return out, nil
}

// MaxDirEntries bounds every directory the gateway lists (job directory,
// checkpoints/, a checkpoint or model tree level): a larger one is refused with
// job.ETooLarge before any per-entry work.
const MaxDirEntries = 10000

// readDir lists the directory real (named what in errors), refusing more than
// MaxDirEntries entries.
func (d *Dir) readDir(ctx context.Context, real, what string) ([]os.FileInfo, error) {
	fis, err := d.FS.ReadDir(ctx, d.User, real)
	if err != nil {
		return nil, d.fsErr(err, what)
	}
	if len(fis) > MaxDirEntries {
		return nil, job.Errorf(job.ETooLarge, "%s: %d entries, more than the %d the gateway lists; remove some (old checkpoints, stray files)",
			what, len(fis), MaxDirEntries)
	}
	return fis, nil
}

// sortInfos sorts by name, O(n log n).
func sortInfos(fis []os.FileInfo) {
	slices.SortFunc(fis, func(a, b os.FileInfo) int { return strings.Compare(a.Name(), b.Name()) })
}

// Open opens the resolved absolute path real at offset.
func (d *Dir) Open(ctx context.Context, real string, offset int64) (io.ReadCloser, error) {
	rc, err := d.FS.Open(ctx, d.User, real, offset)
	if err != nil {
		return nil, d.fsErr(err, path.Base(real))
	}
	return rc, nil
}

// streamBuffer is the read size of bulk downloads from an FS without OpenStream: the
// SFTP client splits one large read into concurrent requests, which a 32 KiB copy loop
// never triggers.
const streamBuffer = 512 << 10

// Streamer is an FS that can read a file with pipelined requests (*sshconn.Pool).
type Streamer interface {
	OpenStream(ctx context.Context, user, path string, offset int64) (io.ReadCloser, error)
}

// OpenStream is Open for one sequential bulk read: pipelined when the FS is a
// Streamer, else in streamBuffer chunks. The caller must Close it.
func (d *Dir) OpenStream(ctx context.Context, real string, offset int64) (io.ReadCloser, error) {
	if s, ok := d.FS.(Streamer); ok {
		rc, err := s.OpenStream(ctx, d.User, real, offset)
		if err != nil {
			return nil, d.fsErr(err, path.Base(real))
		}
		return rc, nil
	}
	rc, err := d.Open(ctx, real, offset)
	if err != nil {
		return nil, err
	}
	return bufferedReadCloser{bufio.NewReaderSize(rc, streamBuffer), rc}, nil
}

type bufferedReadCloser struct {
	*bufio.Reader
	io.Closer
}

// ReadSmall reads the regular file rel, at most max bytes (ETooLarge beyond).
func (d *Dir) ReadSmall(ctx context.Context, rel string, max int64) ([]byte, error) {
	real, fi, err := d.Stat(ctx, rel)
	if err != nil {
		return nil, err
	}
	if fi.Size() > max {
		return nil, job.Errorf(job.ETooLarge, "%s: larger than %d bytes", rel, max)
	}
	b, err := d.FS.ReadFile(ctx, d.User, real, max)
	if err != nil {
		return nil, d.fsErr(err, rel)
	}
	return b, nil
}

// Remove deletes rel (a file or a whole directory) inside the job directory. The
// resolved path must lie strictly inside the job directory and rel itself must not be
// a symlink (the link would be followed by nothing, but is refused for clarity).
func (d *Dir) Remove(ctx context.Context, rel string) error {
	base, err := d.realDir(ctx)
	if err != nil {
		return err
	}
	fi, err := d.FS.Lstat(ctx, d.User, path.Join(d.Path, rel))
	if err != nil {
		return d.fsErr(err, rel)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return notFound(rel)
	}
	real, err := d.Resolve(ctx, rel)
	if err != nil {
		return err
	}
	if real == base || !strings.HasPrefix(real, base+"/") {
		return notFound(rel)
	}
	return d.rm(ctx, real)
}

// Purge deletes the whole job directory. Its resolved path must be <root>/<user>/<x>
// with the job root resolved too, so a purge never leaves the user's job root.
func (d *Dir) Purge(ctx context.Context) error {
	base, err := d.realDir(ctx)
	if err != nil {
		if job.ErrorCode(err) == job.ENotFound {
			return nil // already gone
		}
		return err
	}
	userRoot, err := d.FS.RealPath(ctx, d.User, path.Join(d.Root, d.User))
	if err != nil {
		return d.fsErr(err, "job root")
	}
	if path.Dir(base) != path.Clean(userRoot) {
		return &job.Error{Code: job.EInternal, Message: "job directory resolves outside the job root; not deleted",
			Err: fmt.Errorf("%s resolves to %s, not below %s", d.Path, base, userRoot)}
	}
	return d.rm(ctx, base)
}

func (d *Dir) rm(ctx context.Context, real string) error {
	if !strings.HasPrefix(real, "/") || strings.Contains(real, "/../") || strings.Count(real, "/") < 2 {
		return job.Errorf(job.EInternal, "refusing to delete %q", real)
	}
	if _, stderr, err := d.FS.Run(ctx, d.User, []string{"rm", "-rf", "--", real}, nil); err != nil {
		var je *job.Error
		if errors.As(err, &je) {
			return err
		}
		return &job.Error{Code: job.EUnavailable, Message: "delete on the cluster failed: " + truncate(strings.TrimSpace(string(stderr)), 200), Err: err}
	}
	return nil
}
