package slurm

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/ftgate/ftgate/internal/job"
)

// readFilesScript prints one line per path: "F <base64 of the first $1 bytes>" or "M".
const readFilesScript = `max=$1; shift
for f in "$@"; do
  if [ -f "$f" ] && [ -r "$f" ]; then
    printf 'F '; head -c "$max" -- "$f" | base64 | tr -d '\n'; printf '\n'
  else
    printf 'M\n'
  fi
done`

// maxReadFiles bounds the paths of one ReadFiles command.
const maxReadFiles = 1000

// ReadFiles reads many small files in one remote command, at most maxEach bytes each
// (1..8 MiB). The result is in the order of paths; missing or unreadable files have
// Exists false. The framing (one base64 line per file, in order) is unambiguous
// whatever the files contain.
func (c *Client) ReadFiles(ctx context.Context, user string, paths []string, maxEach int64) ([]File, error) {
	if maxEach < 1 || maxEach > 8<<20 {
		return nil, invalid("max_each", "must be between 1 and %d, got %d", 8<<20, maxEach)
	}
	if len(paths) > maxReadFiles {
		return nil, invalid("paths", "at most %d files per call, got %d", maxReadFiles, len(paths))
	}
	for _, p := range paths {
		if err := checkPath(p); err != nil {
			return nil, err
		}
	}
	if len(paths) == 0 {
		return nil, nil
	}
	args := append([]string{"sh", "-c", readFilesScript, "ftgate-read", strconv.FormatInt(maxEach+1, 10)}, paths...)
	out, stderr, status, err := c.run(ctx, user, "", args...)
	if err != nil {
		return nil, fmt.Errorf("read files: %w", err)
	}
	if status != 0 {
		return nil, fmt.Errorf("read files exited %d: %s", status, firstLine(stderr))
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(paths) {
		return nil, fmt.Errorf("read files: %d lines for %d paths", len(lines), len(paths))
	}
	files := make([]File, len(paths))
	for i, line := range lines {
		files[i].Path = paths[i]
		switch {
		case line == "M":
		case strings.HasPrefix(line, "F "):
			b, err := base64.StdEncoding.DecodeString(line[2:])
			if err != nil {
				return nil, fmt.Errorf("read files: %s: %w", paths[i], err)
			}
			files[i].Exists = true
			if int64(len(b)) > maxEach {
				b, files[i].Truncated = b[:maxEach], true
			}
			files[i].Data = b
		default:
			return nil, fmt.Errorf("read files: bad frame %q", firstLine(line))
		}
	}
	return files, nil
}

// checkPath applies job.CheckRemotePath, as an EInvalid error.
func checkPath(p string) error {
	if err := job.CheckRemotePath(p); err != nil {
		return invalid("path", "%v", err)
	}
	return nil
}
