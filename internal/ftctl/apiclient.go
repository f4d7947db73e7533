package ftctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ftgate/ftgate/internal/job"
)

// APIClient calls the gateway's REST API. HTTP carries the bearer token.
type APIClient struct {
	BaseURL string
	HTTP    *http.Client
}

// connError means the gateway could not be reached at all.
type connError struct {
	server string
	err    error
}

func (e *connError) Error() string {
	return fmt.Sprintf("cannot reach the gateway at %s: %s", e.server, shortNetError(e.err))
}

func (e *connError) Unwrap() error { return e.err }

func shortNetError(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// fromGateway reports whether a network error concerns the gateway itself rather than,
// say, the identity provider asked for a fresh token on the way.
func fromGateway(err error, server string) bool {
	u, perr := url.Parse(server)
	if perr != nil {
		return true
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return strings.EqualFold(dns.Name, u.Hostname())
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Addr != nil {
		host, p, serr := net.SplitHostPort(op.Addr.String())
		if serr != nil || p != port {
			return false
		}
		if ip := net.ParseIP(u.Hostname()); ip != nil {
			return ip.Equal(net.ParseIP(host))
		}
	}
	return true
}

func (c *APIClient) url(path string, q url.Values) string {
	u := strings.TrimRight(c.BaseURL, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// Request sends one request and returns the response when its status is 2xx; any other
// status is decoded into an *APIError. The caller closes the body.
func (c *APIClient) Request(ctx context.Context, method, path string, q url.Values, hdr http.Header, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.url(path, q), body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	req.Header.Set("User-Agent", "ftctl/"+Version)
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, ctx.Err()
		}
		var le *LoginRequiredError
		if errors.As(err, &le) {
			return nil, le
		}
		var ne net.Error
		if (errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded)) && fromGateway(err, c.BaseURL) {
			return nil, &connError{server: c.BaseURL, err: err}
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			return nil, ue.Err
		}
		return nil, err
	}
	if err := CheckResponse(resp, c.BaseURL); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return resp, nil
}

// Do sends a JSON request (in may be nil) and decodes a JSON answer into out (may be nil).
func (c *APIClient) Do(ctx context.Context, method, path string, q url.Values, hdr http.Header, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	resp, err := c.Request(ctx, method, path, q, hdr, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		if err != nil {
			return fmt.Errorf("read answer of %s %s: %w", method, path, err)
		}
		*raw = b
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode answer of %s %s: %w", method, path, err)
	}
	return nil
}

// Job is the gateway's view of a job, as returned by the status and list routes.
type Job = job.Job

// JobList is one page of GET /api/jobs.
type JobList struct {
	Jobs       []Job  `json:"jobs"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// GetJob fetches GET /api/training/status/{id}.
func (c *APIClient) GetJob(ctx context.Context, id string) (Job, json.RawMessage, error) {
	var raw json.RawMessage
	if err := c.Do(ctx, http.MethodGet, "/api/training/status/"+url.PathEscape(id), nil, nil, nil, &raw); err != nil {
		return Job{}, nil, err
	}
	var j Job
	if err := json.Unmarshal(raw, &j); err != nil {
		return Job{}, nil, fmt.Errorf("decode job %s: %w", id, err)
	}
	return j, raw, nil
}

// defaultTimeout bounds each non-streaming request.
const defaultTimeout = 30 * time.Second
