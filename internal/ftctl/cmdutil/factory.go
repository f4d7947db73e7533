// Package cmdutil holds what every ftctl command shares: the Factory (streams, gateway
// URL, config file, token cache, API client), exit codes and one-line errors.
package cmdutil

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/atomicfile"
	"github.com/ftgate/ftgate/internal/ftctl/apiclient"
	"github.com/ftgate/ftgate/internal/ftctl/tokencache"
	"github.com/ftgate/ftgate/internal/version"
)

// IOStreams are a command's standard streams.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

// Factory gives commands what they need, built lazily: the IO streams, the gateway
// URL (--server, then FTCTL_SERVER, then the config file), the token cache and an
// HTTP client that carries a fresh token.
type Factory struct {
	IO *IOStreams
	// ServerFlag is the value of the root command's --server flag.
	ServerFlag string
	// Getenv reads the environment (os.Getenv by default).
	Getenv func(string) string
	// Now is the clock (time.Now by default).
	Now func() time.Time
	// Transport is the base HTTP transport (http.DefaultTransport when nil).
	Transport http.RoundTripper
	// OpenBrowser opens a URL for `auth login --web`; nil only prints the URL.
	OpenBrowser func(url string) error
	// AppVersion is ftctl's version (version.Version by default).
	AppVersion string
}

// NewFactory returns a Factory over the given streams and the process environment.
func NewFactory(in io.Reader, out, errOut io.Writer) *Factory {
	return &Factory{
		IO:         &IOStreams{In: in, Out: out, ErrOut: errOut},
		Getenv:     os.Getenv,
		Now:        time.Now,
		AppVersion: version.Version,
	}
}

// Config is ftctl's config file, <config dir>/config.yaml.
type Config struct {
	// Server is the default gateway URL.
	Server string `yaml:"server"`
}

// ConfigDir is $FTCTL_CONFIG_DIR, or ftctl under the user's config directory
// (~/.config/ftctl on Linux).
func (f *Factory) ConfigDir() (string, error) {
	if d := f.Env("FTCTL_CONFIG_DIR"); d != "" {
		return d, nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find config directory: %w (set FTCTL_CONFIG_DIR)", err)
	}
	return filepath.Join(d, "ftctl"), nil
}

// Config reads the config file; a missing file is an empty Config.
func (f *Factory) Config() (*Config, error) {
	dir, err := f.ConfigDir()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "config.yaml")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &Config{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse config %s: %w", path, err)
	}
	return &c, nil
}

// SaveConfig writes the config file (mode 0600).
func (f *Factory) SaveConfig(c *Config) error {
	dir, err := f.ConfigDir()
	if err != nil {
		return err
	}
	b, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return atomicfile.Write(filepath.Join(dir, "config.yaml"), b, 0o600)
}

// Server returns the gateway URL: --server, FTCTL_SERVER or the config file's server,
// normalized without a trailing slash.
func (f *Factory) Server() (string, error) {
	s, from := f.ServerFlag, "--server"
	if s == "" {
		s, from = f.Env("FTCTL_SERVER"), "FTCTL_SERVER"
	}
	if s == "" {
		c, err := f.Config()
		if err != nil {
			return "", err
		}
		s, from = c.Server, "config server"
	}
	if s == "" {
		return "", UsageErrorf("no gateway: pass --server URL, set FTCTL_SERVER, or log in once with `ftctl auth login --server URL`")
	}
	return normalizeServer(s, from)
}

func normalizeServer(s, from string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", UsageErrorf("%s: %q is not a gateway URL (want http(s)://host[:port])", from, s)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// TokenCache returns the token cache under the config directory.
func (f *Factory) TokenCache() (*tokencache.TokenCache, error) {
	dir, err := f.ConfigDir()
	if err != nil {
		return nil, err
	}
	return &tokencache.TokenCache{Path: filepath.Join(dir, "tokens.json"), Now: f.Clock(), Client: f.PlainHTTPClient()}, nil
}

// PlainHTTPClient is an HTTP client without credentials.
func (f *Factory) PlainHTTPClient() *http.Client {
	return &http.Client{Transport: f.transport(), Timeout: 60 * time.Second}
}

// HTTPClient returns a client for the gateway that sends the cached token as a
// bearer token, refreshing it when needed. Requests fail with *apiclient.LoginRequiredError
// when there is no usable session.
func (f *Factory) HTTPClient() (*http.Client, error) {
	server, err := f.Server()
	if err != nil {
		return nil, err
	}
	tc, err := f.TokenCache()
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: &bearerTransport{base: f.transport(), cache: tc, server: server}}, nil
}

type bearerTransport struct {
	base   http.RoundTripper
	cache  *tokencache.TokenCache
	server string
}

func (t *bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if !sameOrigin(r.URL, t.server) {
		return nil, fmt.Errorf("refusing to send the gateway token to %s", r.URL.Redacted())
	}
	tok, err := t.cache.Token(r.Context(), t.server)
	if err != nil {
		return nil, err
	}
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+tok)
	return t.base.RoundTrip(r)
}

func sameOrigin(u *url.URL, server string) bool {
	s, err := url.Parse(server)
	return err == nil && strings.EqualFold(u.Scheme, s.Scheme) && strings.EqualFold(u.Host, s.Host)
}

func (f *Factory) transport() http.RoundTripper {
	if f.Transport != nil {
		return f.Transport
	}
	return http.DefaultTransport
}

// Env reads the environment variable k through Getenv.
func (f *Factory) Env(k string) string {
	if f.Getenv == nil {
		return os.Getenv(k)
	}
	return f.Getenv(k)
}

// Clock returns Now, or time.Now when it is not set.
func (f *Factory) Clock() func() time.Time {
	if f.Now == nil {
		return time.Now
	}
	return f.Now
}

// APIClient returns the typed client for the configured gateway, carrying the token.
func (f *Factory) APIClient() (*client.Client, error) {
	server, err := f.Server()
	if err != nil {
		return nil, err
	}
	hc, err := f.HTTPClient()
	if err != nil {
		return nil, err
	}
	return apiclient.New(server, hc), nil
}
