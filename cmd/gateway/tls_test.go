package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/config"
)

func TestTLSServerWiring(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	plain := &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: 7 * time.Second, IdleTimeout: time.Minute}
	if s, err := tlsServer(&config.Config{}, plain, log); s != nil || err != nil {
		t.Fatalf("no listen_tls: %v, %v", s, err)
	}
	_, err := tlsServer(&config.Config{ListenTLS: "127.0.0.1:0", TLSCertFile: "/nonexistent.crt", TLSKeyFile: "/nonexistent.key"}, plain, log)
	if err == nil || !strings.Contains(err.Error(), "listen_tls: stat tls certificate") {
		t.Fatalf("missing certificate: %v", err)
	}
}

func TestTrustProxiesWiring(t *testing.T) {
	h, err := trustProxies(&config.Config{TrustedProxies: []string{"192.0.2.0/24"}},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.RemoteAddr) }))
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "192.0.2.9:4000"
	r.Header.Set("X-Forwarded-For", "198.51.100.1")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Body.String() != "198.51.100.1:0" {
		t.Errorf("remote %q", w.Body.String())
	}
	if _, err := trustProxies(&config.Config{TrustedProxies: []string{"nope"}}, h); err == nil {
		t.Error("bad CIDR accepted")
	}
}
