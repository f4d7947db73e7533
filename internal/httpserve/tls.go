// Package httpserve holds what the gateway's HTTP listeners need beyond net/http: a
// TLS certificate that is re-read when its files change on disk, and the handling
// of X-Forwarded-* headers from trusted proxies only.
package httpserve

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"
)

// CertReloader serves the certificate in CertFile/KeyFile and loads it again when
// either file's modification time or size changes, so a renewed certificate (e.g. by
// an ACME client) is served without a restart. A pair that fails to load (say, the key
// written before the certificate) keeps the previous certificate until it loads.
type CertReloader struct {
	CertFile, KeyFile string
	// OnError, when set, is told about a reload that failed (the old certificate stays).
	OnError func(err error)

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   [2]fileStamp
	lastErr string
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size()}, nil
}

// Load loads the pair now; use it at start-up to fail early on a bad pair.
func (r *CertReloader) Load() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reload()
}

// reload re-reads the pair when its stamps changed; r.mu is held.
func (r *CertReloader) reload() error {
	cs, err := stampOf(r.CertFile)
	if err != nil {
		return fmt.Errorf("stat tls certificate: %w", err)
	}
	ks, err := stampOf(r.KeyFile)
	if err != nil {
		return fmt.Errorf("stat tls key: %w", err)
	}
	now := [2]fileStamp{cs, ks}
	if r.cert != nil && now == r.stamp {
		return nil
	}
	c, err := tls.LoadX509KeyPair(r.CertFile, r.KeyFile)
	if err != nil {
		return fmt.Errorf("load tls certificate %s: %w", r.CertFile, err)
	}
	r.cert, r.stamp = &c, now
	return nil
}

// GetCertificate is tls.Config.GetCertificate: it checks the files' stamps (one stat
// each per handshake) and returns the current certificate.
func (r *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.reload(); err != nil {
		if r.OnError != nil && err.Error() != r.lastErr {
			r.OnError(err)
		}
		r.lastErr = err.Error()
		if r.cert == nil {
			return nil, err
		}
		return r.cert, nil
	}
	r.lastErr = ""
	return r.cert, nil
}

// TLSConfig returns a server TLS configuration (TLS 1.2 or newer) serving r's certificate.
func (r *CertReloader) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate, NextProtos: []string{"h2", "http/1.1"}}
}
