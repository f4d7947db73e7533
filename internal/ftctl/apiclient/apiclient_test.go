package apiclient

import (
	"net"
	"net/url"
	"syscall"
	"testing"
)

func TestFromGateway(t *testing.T) {
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
