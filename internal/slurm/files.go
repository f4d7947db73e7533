package slurm

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
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

// tailScript prints the file's size on one line, then at most $3 bytes from byte
// offset $2 (from 0 when the file is shorter than $2), or "M" when it is missing.
const tailScript = `f=$1; off=$2; max=$3
[ -f "$f" ] && [ -r "$f" ] || { printf 'M\n'; exit 0; }
size=$(wc -c < "$f") || exit 1
size=$((size + 0))
[ "$size" -lt "$off" ] && off=0
printf '%s %s\n' "$size" "$off"
tail -c +$((off + 1)) -- "$f" | head -c "$max"`

// Tail reads at most max bytes of path from byte offset and returns them with the
// offset to continue from. A missing file returns no data and next == offset. A file
// now shorter than offset was truncated or replaced: Tail then reads from byte 0, so
// next < offset tells the caller it started over. The last line may be incomplete.
func (c *Client) Tail(ctx context.Context, user, path string, offset, max int64) (data []byte, next int64, err error) {
	if err := checkPath(path); err != nil {
		return nil, offset, err
	}
	if offset < 0 {
		return nil, offset, invalid("offset", "must be >= 0, got %d", offset)
	}
	if max < 1 || max > 8<<20 {
		return nil, offset, invalid("max", "must be between 1 and %d, got %d", 8<<20, max)
	}
	out, stderr, status, err := c.run(ctx, user, "", "sh", "-c", tailScript, "ftgate-tail", path,
		strconv.FormatInt(offset, 10), strconv.FormatInt(max, 10))
	if err != nil {
		return nil, offset, fmt.Errorf("tail %s: %w", path, err)
	}
	if status != 0 {
		return nil, offset, fmt.Errorf("tail %s exited %d: %s", path, status, firstLine(stderr))
	}
	head, body, ok := strings.Cut(out, "\n")
	if !ok {
		return nil, offset, fmt.Errorf("tail %s: no header in output", path)
	}
	if head == "M" {
		return nil, offset, nil
	}
	_, offS, ok := strings.Cut(head, " ")
	from, err2 := strconv.ParseInt(offS, 10, 64)
	if !ok || err2 != nil {
		return nil, offset, fmt.Errorf("tail %s: bad header %q", path, head)
	}
	return []byte(body), from + int64(len(body)), nil
}

// checkPath refuses relative paths, NUL bytes and ".." elements.
func checkPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return invalid("path", "must be absolute, got %q", p)
	}
	if strings.ContainsAny(p, "\x00") {
		return invalid("path", "must not contain NUL")
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return invalid("path", "must not contain '..', got %q", p)
		}
	}
	return nil
}
