package api

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ftgate/ftgate/internal/job"
)

// readFull is io.ReadFull that takes a short read at the end of a file as success.
func readFull(r io.Reader, buf []byte) (int, error) {
	n, err := io.ReadFull(r, buf)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

// readBody reads at most MaxBody bytes: a larger body is ETooLarge (413).
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limit := s.MaxBody
	if limit <= 0 {
		limit = 1 << 20
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, job.Errorf(job.EInvalid, "Content-Type: want application/json, got %q", ct)
		}
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return nil, job.Errorf(job.ETooLarge, "body: larger than %d bytes", limit)
	}
	if err != nil {
		return nil, job.Errorf(job.EInvalid, "body: %v", err)
	}
	return b, nil
}

// parseTime accepts RFC 3339 or a date (YYYY-MM-DD, UTC).
func parseTime(field, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	return time.Time{}, job.Errorf(job.EInvalid, "%s: want RFC 3339 (2026-01-02T15:04:05Z) or a date (2026-01-02), got %q", field, v)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func wantFlag(r *http.Request, name string) bool {
	switch r.URL.Query().Get(name) {
	case "1", "true", "yes":
		return true
	}
	return false
}

// queryInt parses an optional integer query parameter within [lo, hi].
func queryInt(r *http.Request, name string, def, lo, hi int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, job.Errorf(job.EInvalid, "%s: want an integer between %d and %d, got %q", name, lo, hi, truncate(v, 40))
	}
	return n, nil
}
