// Package apiclient connects ftctl to the gateway's typed API client (package
// client): ftctl's User-Agent, and a transport that turns what goes wrong on the way
// into ftctl's errors: a gateway that cannot be reached (*ConnError) and a refused
// token (*LoginRequiredError, exit code 4).
package apiclient

import (
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

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/version"
)

// DefaultTimeout bounds each non-streaming request.
const DefaultTimeout = 30 * time.Second

// New returns the typed client for the gateway at server over hc (its transport
// adds the bearer token, or not; its timeout stays); nil is http.DefaultClient.
func New(server string, hc *http.Client) *client.Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	wrapped := *hc
	wrapped.Transport = &Transport{Base: hc.Transport, Server: server}
	c := client.New(server, &wrapped)
	c.UserAgent = "ftctl/" + version.Version
	return c
}

// WithToken returns the typed client for server over hc, sending bearer as the token.
func WithToken(server string, hc *http.Client, bearer string) *client.Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	withToken := *hc
	withToken.Transport = &staticBearer{base: hc.Transport, token: bearer}
	return New(server, &withToken)
}

type staticBearer struct {
	base  http.RoundTripper
	token string
}

func (t *staticBearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+t.token)
	return orDefault(t.base).RoundTrip(r)
}

func orDefault(rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		return http.DefaultTransport
	}
	return rt
}

// Transport turns a failed connection to the gateway at Server into *ConnError and a
// 401 answer into *LoginRequiredError; everything else passes through.
type Transport struct {
	Base   http.RoundTripper
	Server string
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := orDefault(t.Base).RoundTrip(r)
	if err != nil {
		ctx := r.Context()
		var le *LoginRequiredError
		var ne net.Error
		switch {
		case ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
			return nil, ctx.Err()
		case errors.As(err, &le):
			return nil, le
		case (errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded)) && fromGateway(err, t.Server):
			return nil, &ConnError{Server: t.Server, Err: err}
		}
		return nil, err
	}
	if resp.StatusCode == http.StatusUnauthorized {
		defer resp.Body.Close()
		var body client.ErrorBody
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		_ = json.Unmarshal(b, &body)
		return nil, &LoginRequiredError{Server: t.Server, Reason: body.Error.Message}
	}
	return resp, nil
}

// Unwrap returns the error a request failed with, without the *url.Error around it
// that net/http adds (its method and URL say nothing to the user).
func Unwrap(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
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
