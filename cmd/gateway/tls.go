package main

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/httpserve"
)

// tlsServer returns the HTTPS server for listen_tls (nil when unset): a copy of the
// plain server's handler and timeouts, serving the certificate files, which are
// re-read when they change.
func tlsServer(cfg *config.Config, plain *http.Server, log *slog.Logger) (*http.Server, error) {
	if cfg.ListenTLS == "" {
		return nil, nil
	}
	rel := &httpserve.CertReloader{CertFile: cfg.TLSCertFile, KeyFile: cfg.TLSKeyFile,
		OnError: func(err error) { log.Error("tls certificate reload failed; serving the previous one", "err", err) }}
	if err := rel.Load(); err != nil {
		return nil, fmt.Errorf("listen_tls: %w", err)
	}
	return &http.Server{
		Addr:              cfg.ListenTLS,
		Handler:           plain.Handler,
		TLSConfig:         rel.TLSConfig(),
		ReadTimeout:       plain.ReadTimeout,
		ReadHeaderTimeout: plain.ReadHeaderTimeout,
		WriteTimeout:      plain.WriteTimeout,
		IdleTimeout:       plain.IdleTimeout,
		MaxHeaderBytes:    plain.MaxHeaderBytes,
		ErrorLog:          plain.ErrorLog,
	}, nil
}

// trustProxies wraps h so that X-Forwarded-* headers count only from trusted_proxies.
func trustProxies(cfg *config.Config, h http.Handler) (http.Handler, error) {
	ps, err := httpserve.ParsePrefixes(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("config trusted_proxies: %w", err)
	}
	return httpserve.TrustProxies(ps, h), nil
}
