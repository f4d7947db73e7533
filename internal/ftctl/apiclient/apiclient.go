// Package apiclient is ftctl's HTTP client for the gateway's REST API: requests with
// the caller's token, the gateway's error answers as typed errors.
package apiclient

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
	"github.com/ftgate/ftgate/internal/version"
)

// Client calls the gateway's REST API. HTTP carries the bearer token.
type Client struct {
	BaseURL string
	HTTP    *http.Client
}

// ConnError means the gateway could not be reached at all.
type ConnError struct {
	Server string
	Err    error
}

func (e *ConnError) Error() string {
	return fmt.Sprintf("cannot reach the gateway at %s: %s", e.Server, shortNetError(e.Err))
}

func (e *ConnError) Unwrap() error { return e.Err }

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

func (c *Client) url(path string, q url.Values) string {
	u := strings.TrimRight(c.BaseURL, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// Request sends one request and returns the response when its status is 2xx; any other
// status is decoded into an *APIError. The caller closes the body.
func (c *Client) Request(ctx context.Context, method, path string, q url.Values, hdr http.Header, body io.Reader) (*http.Response, error) {
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
	req.Header.Set("User-Agent", "ftctl/"+version.Version)
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
			return nil, &ConnError{Server: c.BaseURL, Err: err}
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
func (c *Client) Do(ctx context.Context, method, path string, q url.Values, hdr http.Header, in, out any) error {
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
func (c *Client) GetJob(ctx context.Context, id string) (Job, json.RawMessage, error) {
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

// DefaultTimeout bounds each non-streaming request.
const DefaultTimeout = 30 * time.Second

// APIError is an error answer of the gateway: {"error":{"code","message"}}.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("gateway answered %d", e.Status)
	}
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
}

// CheckResponse returns nil for a 2xx response, *LoginRequiredError for 401, and
// *APIError for other statuses (reading the gateway's error body).
func CheckResponse(resp *http.Response, server string) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_ = json.Unmarshal(b, &body)
	if resp.StatusCode == http.StatusUnauthorized {
		return &LoginRequiredError{Server: server, Reason: body.Error.Message}
	}
	return &APIError{Status: resp.StatusCode, Code: body.Error.Code, Message: body.Error.Message}
}

// LoginRequiredError means the user must run `ftctl auth login`; ftctl exits 4.
type LoginRequiredError struct {
	Server string
	Reason string
}

func (e *LoginRequiredError) Error() string {
	cmd := "ftctl auth login"
	if e.Server != "" {
		cmd += " --server " + e.Server
	}
	if e.Reason != "" {
		return fmt.Sprintf("%s; run `%s`", e.Reason, cmd)
	}
	return fmt.Sprintf("not logged in; run `%s`", cmd)
}
