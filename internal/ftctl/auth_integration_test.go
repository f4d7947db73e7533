package ftctl

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/api"
	"github.com/ftgate/ftgate/internal/auth"
	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/stacktest"
)

// TestIntegrationAuthLoginDex logs in with ftctl's device flow against the stack's
// Dex, approving the code by driving Dex's pages as a browser would, and checks that
// the gateway's verifier (built from the stack's gateway.yaml) maps the token to the
// Unix account and the admin role.
func TestIntegrationAuthLoginDex(t *testing.T) {
	st := stacktest.Require(t)
	cfg, err := config.Load(st.GatewayConfig, nil)
	if err != nil {
		t.Fatalf("load %s: %v", st.GatewayConfig, err)
	}
	ctx := context.Background()
	v, err := auth.New(ctx, cfg.OIDC)
	if err != nil {
		t.Fatal(err)
	}
	srv := &api.Server{Auth: v, AuthConfig: api.AuthConfig{
		Issuer: cfg.OIDC.Issuer, ClientID: cfg.OIDC.ClientID, Scopes: cfg.OIDC.Scopes, Audience: cfg.OIDC.Audiences[0],
	}}
	gw := httptest.NewServer(srv.Handler())
	defer gw.Close()

	tests := []struct {
		user  string
		admin bool
		out   string
	}{
		{"alice", false, "Logged in to " + gw.URL + " as alice.\n"},
		{"admin", true, "Logged in to " + gw.URL + " as admin (admin).\n"},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			e := &testEnv{cfgDir: filepath.Join(t.TempDir(), "ftctl"), env: map[string]string{}}
			browser := &dexBrowser{t: t, email: tt.user + "@example.com", password: st.Password}
			start := time.Now()
			out, errOut, code := e.run(t, &approver{onCode: browser.approve}, "--server", gw.URL, "auth", "login", "--timeout", "60s")
			if berr := browser.wait(); berr != nil {
				t.Fatalf("approving in Dex's pages: %v", berr)
			}
			if code != 0 || out != tt.out {
				t.Fatalf("login exit %d\nstdout %q, want %q\nstderr %s", code, out, tt.out, errOut)
			}
			t.Logf("device login as %s took %s", tt.user, time.Since(start).Round(time.Millisecond))
			if !strings.HasPrefix(errOut, "Open "+cfg.OIDC.Issuer+"/device in a browser and enter the code: ") {
				t.Errorf("stderr %q", errOut)
			}

			tok, errOut, code := e.run(t, nil, "auth", "token")
			if code != 0 {
				t.Fatalf("token: exit %d: %s", code, errOut)
			}
			tok = strings.TrimSpace(tok)
			id, err := v.Verify(ctx, tok)
			if err != nil {
				t.Fatalf("verify Dex token: %v", err)
			}
			if id.Username != tt.user || id.Admin != tt.admin || id.Email != tt.user+"@example.com" || id.Subject == "" {
				t.Errorf("identity %+v, want %s admin=%v", id, tt.user, tt.admin)
			}
			c, _ := jwtClaims(tok)
			aud, _ := c["aud"].([]any)
			if !slices.Contains(aud, any(cfg.OIDC.Audiences[0])) || c["azp"] != cfg.OIDC.ClientID {
				t.Errorf("aud %v azp %v: want the API audience %s requested by %s", c["aud"], c["azp"], cfg.OIDC.Audiences[0], cfg.OIDC.ClientID)
			}

			out, errOut, code = e.run(t, nil, "auth", "status")
			if code != 0 || !strings.Contains(out, "Account: "+tt.user+"\n") {
				t.Errorf("status exit %d\n%s%s", code, out, errOut)
			}
		})
	}

	// --web: authorization code + PKCE on Dex's registered loopback redirect (port 8085).
	t.Run("web", func(t *testing.T) {
		browser := &dexBrowser{t: t, email: "bob@example.com", password: st.Password}
		e := &testEnv{cfgDir: filepath.Join(t.TempDir(), "ftctl"), env: map[string]string{}, open: func(u string) error {
			browser.approve(u, "")
			return nil
		}}
		out, errOut, code := e.run(t, nil, "--server", gw.URL, "auth", "login", "--web", "--timeout", "60s")
		if berr := browser.wait(); berr != nil {
			t.Fatalf("logging in through Dex's pages: %v", berr)
		}
		if code != 0 || out != "Logged in to "+gw.URL+" as bob.\n" {
			t.Fatalf("login --web exit %d\nstdout %q\nstderr %s", code, out, errOut)
		}
	})
}

// dexBrowser approves a device code through Dex's HTML pages with a cookie jar: the
// code form, then the local connector's login form.
type dexBrowser struct {
	t               *testing.T
	email, password string
	once            sync.Once
	done            chan error
}

func (b *dexBrowser) approve(verifyURI, code string) {
	b.once.Do(func() {
		b.done = make(chan error, 1)
		go func() { b.done <- b.run(verifyURI, code) }()
	})
}

func (b *dexBrowser) wait() error {
	if b.done == nil {
		return fmt.Errorf("no device code was printed")
	}
	return <-b.done
}

var formActionRE = regexp.MustCompile(`<form method="post" action="([^"]+)"`)

// run approves code at verifyURI; with no code, verifyURI is an authorization URL
// whose redirect lands on ftctl's loopback listener.
func (b *dexBrowser) run(verifyURI, code string) error {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 20 * time.Second}
	page, at, err := get(c, verifyURI)
	if err != nil {
		return err
	}
	if code != "" {
		page, at, err = submit(c, page, at, url.Values{"user_code": {code}})
		if err != nil {
			return fmt.Errorf("user code form: %w", err)
		}
	}
	page, _, err = submit(c, page, at, url.Values{"login": {b.email}, "password": {b.password}})
	if err != nil {
		return fmt.Errorf("login form: %w", err)
	}
	if !strings.Contains(strings.ToLower(page), "success") && !strings.Contains(page, "ftctl is logged in") {
		return fmt.Errorf("after login Dex shows: %.400s", page)
	}
	return nil
}

func get(c *http.Client, u string) (string, *url.URL, error) {
	resp, err := c.Get(u)
	if err != nil {
		return "", nil, err
	}
	return read(resp)
}

// submit posts form to the first POST form's action on page (at is the page's URL).
func submit(c *http.Client, page string, at *url.URL, form url.Values) (string, *url.URL, error) {
	m := formActionRE.FindStringSubmatch(page)
	if m == nil {
		return "", nil, fmt.Errorf("no POST form on %s: %.400s", at, page)
	}
	action, err := at.Parse(html.UnescapeString(m[1]))
	if err != nil {
		return "", nil, err
	}
	resp, err := c.PostForm(action.String(), form)
	if err != nil {
		return "", nil, err
	}
	return read(resp)
}

func read(resp *http.Response) (string, *url.URL, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return "", nil, fmt.Errorf("%s: HTTP %d: %.400s", resp.Request.URL, resp.StatusCode, bytes.TrimSpace(b))
	}
	return string(b), resp.Request.URL, nil
}
