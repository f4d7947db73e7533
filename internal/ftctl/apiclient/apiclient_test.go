package apiclient

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"syscall"
	"testing"
)

func TestFromGateway(t *testing.T) {
	t.Parallel()
	opErr := func(addr string) error {
		a, _ := net.ResolveTCPAddr("tcp", addr)
		return &url.Error{Op: "Get", URL: "x", Err: &net.OpError{Op: "dial", Net: "tcp", Addr: a, Err: syscall.ECONNREFUSED}}
	}
	for _, tc := range []struct {
		err    error
		server string
		want   bool
	}{
		{opErr("127.0.0.1:8080"), "http://127.0.0.1:8080", true},
		{opErr("127.0.0.1:5556"), "http://127.0.0.1:8080", false},
		{opErr("127.0.0.1:80"), "http://127.0.0.1", true},
		{opErr("127.0.0.2:8080"), "http://127.0.0.1:8080", false},
		{opErr("127.0.0.1:8080"), "http://localhost:8080", true},
		{&net.DNSError{Name: "gw.example", Err: "no such host"}, "https://gw.example", true},
		{&net.DNSError{Name: "idp.example", Err: "no such host"}, "https://gw.example", false},
	} {
		if got := fromGateway(tc.err, tc.server); got != tc.want {
			t.Errorf("fromGateway(%v, %s) = %v, want %v", tc.err, tc.server, got, tc.want)
		}
	}
}

type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestTransport: what goes wrong on the way to the gateway becomes ftctl's errors.
func TestTransport(t *testing.T) {
	t.Parallel()
	refused := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":{"code":"unauthorized","message":"token expired"}}`))
	}))
	defer refused.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()

	ctx := context.Background()
	_, err := New(refused.URL, nil).Whoami(ctx)
	var le *LoginRequiredError
	if !errors.As(err, &le) || le.Reason != "token expired" || le.Server != refused.URL {
		t.Errorf("401: %v, want LoginRequiredError with the gateway's message", err)
	}
	_, err = New(deadURL, nil).Whoami(ctx)
	var ce *ConnError
	if !errors.As(err, &ce) || !errors.Is(err, syscall.ECONNREFUSED) || Unwrap(err).Error() != "cannot reach the gateway at "+deadURL+": connect: connection refused" {
		t.Errorf("dead gateway: %v (unwrapped %v), want ConnError", err, Unwrap(err))
	}
	// The token cache failing on the way (no session, or the provider unreachable)
	// is not the gateway's fault.
	idp := &url.Error{Op: "Post", URL: "http://127.0.0.1:5556/token", Err: &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5556}, Err: syscall.ECONNREFUSED}}
	for name, base := range map[string]http.RoundTripper{
		"login required": rtFunc(func(*http.Request) (*http.Response, error) { return nil, &LoginRequiredError{Server: deadURL} }),
		"provider down":  rtFunc(func(*http.Request) (*http.Response, error) { return nil, idp }),
	} {
		_, err := New(deadURL, &http.Client{Transport: base}).Whoami(ctx)
		if errors.As(err, &ce) || err == nil {
			t.Errorf("%s: %v, want no ConnError", name, err)
		}
		if name == "login required" && !errors.As(err, &le) {
			t.Errorf("%s: %v, want LoginRequiredError", name, err)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := New(deadURL, nil).Whoami(cctx); !errors.Is(err, context.Canceled) || errors.As(err, &ce) {
		t.Errorf("cancelled: %v, want context.Canceled", err)
	}
	if got := Unwrap(errors.New("x")); got.Error() != "x" {
		t.Errorf("Unwrap changed a plain error: %v", got)
	}
}
