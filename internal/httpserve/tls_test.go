package httpserve

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// selfSigned returns PEM certificate and key for 127.0.0.1 with the given serial.
func selfSigned(t *testing.T, serial int64) (certPEM, keyPEM []byte, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: "ftgate test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err = x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), cert
}

// replace writes data to path the way certificate renewers do: a temporary file
// renamed over the old one, with a modification time later than the old one's.
func replace(t *testing.T, path string, data []byte, mod time.Time) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, mod, mod); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// servedSerial does a fresh TLS handshake trusting roots and returns the serial the
// server presented.
func servedSerial(t *testing.T, addr string, roots *x509.CertPool) int64 {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("tls dial: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

func TestCertReloaderServesTheReplacedCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	c1, k1, x1 := selfSigned(t, 1)
	c2, k2, x2 := selfSigned(t, 2)
	t0 := time.Now().Add(-time.Minute)
	replace(t, certFile, c1, t0)
	replace(t, keyFile, k1, t0)

	var mu sync.Mutex
	var reloadErrs []error
	rel := &CertReloader{CertFile: certFile, KeyFile: keyFile, OnError: func(err error) {
		mu.Lock()
		reloadErrs = append(reloadErrs, err)
		mu.Unlock()
	}}
	if err := rel.Load(); err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", rel.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()
	roots := x509.NewCertPool()
	roots.AddCert(x1)
	roots.AddCert(x2)

	if got := servedSerial(t, addr, roots); got != 1 {
		t.Fatalf("first certificate: serial %d, want 1", got)
	}
	// Half-way through a renewal: new certificate, old key. The old pair stays served.
	replace(t, certFile, c2, t0.Add(10*time.Second))
	if got := servedSerial(t, addr, roots); got != 1 {
		t.Fatalf("mismatched pair: serial %d, want the old 1", got)
	}
	mu.Lock()
	if len(reloadErrs) != 1 {
		t.Errorf("OnError calls: %v, want one", reloadErrs)
	}
	mu.Unlock()
	replace(t, keyFile, k2, t0.Add(20*time.Second))
	if got := servedSerial(t, addr, roots); got != 2 {
		t.Fatalf("after replacing both files: serial %d, want 2", got)
	}
	// A real HTTPS request on the same listener works with the new certificate.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	resp, err := hc.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok" || resp.TLS.PeerCertificates[0].SerialNumber.Int64() != 2 {
		t.Errorf("https GET: %q serial %d", b, resp.TLS.PeerCertificates[0].SerialNumber.Int64())
	}
}

func TestCertReloaderLoadFailsOnMissingFiles(t *testing.T) {
	rel := &CertReloader{CertFile: "/nonexistent/tls.crt", KeyFile: "/nonexistent/tls.key"}
	if err := rel.Load(); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load: %v", err)
	}
	if _, err := rel.GetCertificate(nil); err == nil {
		t.Fatal("GetCertificate without any certificate succeeded")
	}
}
