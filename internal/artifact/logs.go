package artifact

import (
	"bytes"
	"context"
	"io"
	"strings"

	"github.com/ftgate/ftgate/internal/job"
)

// maxTailWindow is how far back from the end a tail looks for line starts.
const maxTailWindow = 1 << 20

// LogFile returns the name of the job's Slurm output file: slurm-<slurm id>.out when
// the Slurm id is known, else the newest slurm-*.out in the job directory.
func (d *Dir) LogFile(ctx context.Context, slurmID string) (string, error) {
	if job.ValidSlurmID(slurmID) {
		return "slurm-" + slurmID + ".out", nil
	}
	real, err := d.realDir(ctx)
	if err != nil {
		return "", err
	}
	fis, err := d.readDir(ctx, real, "job directory")
	if err != nil {
		return "", err
	}
	name := ""
	var newest int64
	for _, fi := range fis {
		if isLogName(fi.Name()) && fi.Mode().IsRegular() && (name == "" || fi.ModTime().UnixNano() > newest) {
			name, newest = fi.Name(), fi.ModTime().UnixNano()
		}
	}
	if name == "" {
		return "", job.Errorf(job.ENotFound, "the job has no log yet")
	}
	return name, nil
}

// TailStart returns the offset at which the last n lines of the file at real (of
// size bytes) begin, looking back at most 1 MiB.
func (d *Dir) TailStart(ctx context.Context, real string, size int64, n int) (int64, error) {
	if n <= 0 || size == 0 {
		return size, nil
	}
	from := max(size-maxTailWindow, 0)
	rc, err := d.Open(ctx, real, from)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	buf, err := io.ReadAll(io.LimitReader(rc, size-from))
	if err != nil {
		return 0, d.fsErr(err, "log")
	}
	return from + int64(TailIndex(buf, n, from == 0)), nil
}

// TailIndex returns the index in buf where its last n lines start. A trailing newline
// does not start a new line. When buf is not the start of the file, its first
// (possibly partial) line is never returned whole.
func TailIndex(buf []byte, n int, atStart bool) int {
	end := len(buf)
	if end > 0 && buf[end-1] == '\n' {
		end--
	}
	i := end
	for range n {
		j := bytes.LastIndexByte(buf[:i], '\n')
		if j < 0 {
			if atStart {
				return 0
			}
			// Partial first line: start after it.
			k := bytes.IndexByte(buf, '\n')
			if k < 0 {
				return len(buf)
			}
			return k + 1
		}
		i = j
	}
	return i + 1
}

// LogLines splits new log output into complete lines and the remaining partial one.
func LogLines(b []byte) (lines []string, rest []byte) {
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return lines, b
		}
		lines = append(lines, strings.TrimSuffix(string(b[:i]), "\r"))
		b = b[i+1:]
	}
}

// isLogName reports whether name is a Slurm output file, slurm-<slurm id>.out.
func isLogName(name string) bool {
	id, ok := strings.CutPrefix(name, "slurm-")
	id, ok2 := strings.CutSuffix(id, ".out")
	return ok && ok2 && job.ValidSlurmID(id)
}
