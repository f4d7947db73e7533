package config

import (
	"strings"
	"testing"
)

func TestServingKeys(t *testing.T) {
	base := "database: {url: postgres://x}\noidc: {issuer: http://127.0.0.1:5556/dex, audiences: [a]}\n"
	for _, tc := range []struct {
		name, yaml, err string
	}{
		{"tls ok", "listen_tls: ':8443'\ntls_cert_file: /etc/ftgate/tls.crt\ntls_key_file: /etc/ftgate/tls.key\n", ""},
		{"tls without files", "listen_tls: ':8443'\n", "config tls_cert_file: tls_cert_file and tls_key_file are required"},
		{"files without tls", "tls_cert_file: /x\n", "config listen_tls: is required when tls_cert_file"},
		{"tls bad addr", "listen_tls: '8443'\ntls_cert_file: /a\ntls_key_file: /b\n", "config listen_tls: want host:port"},
		{"tls same as listen", "listen: 127.0.0.1:8080\nlisten_tls: 127.0.0.1:8080\ntls_cert_file: /a\ntls_key_file: /b\n", "must differ from listen"},
		{"proxies ok", "trusted_proxies: [10.0.0.0/8, 192.0.2.1, 'fd00::/8']\n", ""},
		{"proxies bad", "trusted_proxies: [10.0.0.0/40]\n", `config trusted_proxies: "10.0.0.0/40" is neither`},
		{"public https", "public_url: https://ftgate.example/\n", ""},
		{"public loopback http", "public_url: http://127.0.0.1:8080\n", ""},
		{"public ftp", "public_url: ftp://ftgate.example\n", "config public_url: want an absolute http(s) URL"},
		{"public relative", "public_url: /ftgate\n", "config public_url: want an absolute http(s) URL"},
		{"public query", "public_url: https://ftgate.example/?a=1\n", "must not have a query"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(write(t, "c.yaml", base+tc.yaml), nil)
			if tc.err == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if strings.HasSuffix(c.BaseURL(), "/") {
					t.Errorf("BaseURL %q ends in /", c.BaseURL())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want it to contain %q", err, tc.err)
			}
		})
	}
}
