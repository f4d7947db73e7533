package config

import (
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// validateServing checks the listener keys: listen_tls with its certificate files,
// trusted_proxies and public_url.
func (c *Config) validateServing(bad func(key, format string, a ...any)) {
	if c.ListenTLS != "" {
		if _, _, err := net.SplitHostPort(c.ListenTLS); err != nil {
			bad("listen_tls", "want host:port (e.g. :8443), got %q", c.ListenTLS)
		}
		if c.TLSCertFile == "" || c.TLSKeyFile == "" {
			bad("tls_cert_file", "tls_cert_file and tls_key_file are required with listen_tls")
		}
		if c.ListenTLS == c.Listen {
			bad("listen_tls", "must differ from listen (%s)", c.Listen)
		}
	} else if c.TLSCertFile != "" || c.TLSKeyFile != "" {
		bad("listen_tls", "is required when tls_cert_file or tls_key_file is set")
	}
	for _, p := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err := netip.ParseAddr(p); err != nil {
				bad("trusted_proxies", "%q is neither a CIDR nor an IP address", p)
			}
		}
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
			bad("public_url", "want an absolute http(s) URL like https://ftgate.example, got %q", c.PublicURL)
		case u.RawQuery != "" || u.Fragment != "":
			bad("public_url", "must not have a query or fragment, got %q", c.PublicURL)
		}
	}
}

// BaseURL returns public_url without a trailing slash ("" when unset): the prefix of
// every absolute URL the gateway hands out.
func (c *Config) BaseURL() string { return strings.TrimRight(c.PublicURL, "/") }
