package login_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/api"
	"github.com/ftgate/ftgate/internal/auth"
	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
	"github.com/ftgate/ftgate/internal/ftctl/tokencache"
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

	var disc struct {
		RevocationEndpoint string `json:"revocation_endpoint"`
	}
	resp, err := http.Get(cfg.OIDC.Issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&disc)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	revocable := disc.RevocationEndpoint != ""
	t.Logf("Dex revocation_endpoint: %q", disc.RevocationEndpoint)

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
			e := &ftctltest.AuthEnv{CfgDir: filepath.Join(t.TempDir(), "ftctl"), Env: map[string]string{}}
			browser := &ftctltest.DexBrowser{Email: tt.user + "@example.com", Password: st.Password}
			start := time.Now()
			out, errOut, code := e.Run(t, &ftctltest.Approver{OnCode: browser.Approve}, "--server", gw.URL, "auth", "login", "--timeout", "60s")
			if berr := browser.Wait(); berr != nil {
				t.Fatalf("approving in Dex's pages: %v", berr)
			}
			if code != 0 || out != tt.out {
				t.Fatalf("login exit %d\nstdout %q, want %q\nstderr %s", code, out, tt.out, errOut)
			}
			t.Logf("device login as %s took %s", tt.user, time.Since(start).Round(time.Millisecond))
			if !strings.HasPrefix(errOut, "Open "+cfg.OIDC.Issuer+"/device in a browser and enter the code: ") {
				t.Errorf("stderr %q", errOut)
			}

			tok, errOut, code := e.Run(t, nil, "auth", "token")
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
			c, _ := tokencache.JWTClaims(tok)
			aud, _ := c["aud"].([]any)
			if !slices.Contains(aud, any(cfg.OIDC.Audiences[0])) || c["azp"] != cfg.OIDC.ClientID {
				t.Errorf("aud %v azp %v: want the API audience %s requested by %s", c["aud"], c["azp"], cfg.OIDC.Audiences[0], cfg.OIDC.ClientID)
			}

			out, errOut, code = e.Run(t, nil, "auth", "status")
			if code != 0 || !strings.Contains(out, "Account: "+tt.user+"\n") {
				t.Errorf("status exit %d\n%s%s", code, out, errOut)
			}

			// Logout revokes the refresh token where the provider can (Dex's discovery
			// names no revocation_endpoint: then the tokens are only forgotten).
			want := "Logged out of " + gw.URL + ".\n"
			if revocable {
				want = "Logged out of " + gw.URL + "; the identity provider revoked the refresh token.\n"
			}
			out, errOut, code = e.Run(t, nil, "auth", "logout")
			if code != 0 || out != want || errOut != "" {
				t.Errorf("logout: exit %d stdout %q stderr %q, want %q", code, out, errOut, want)
			}
			if _, errOut, code = e.Run(t, nil, "auth", "token"); code != cmdutil.ExitLogin {
				t.Errorf("token after logout: exit %d %s", code, errOut)
			}
		})
	}

	// --web: authorization code + PKCE on Dex's registered loopback redirect (port 8085).
	t.Run("web", func(t *testing.T) {
		browser := &ftctltest.DexBrowser{Email: "bob@example.com", Password: st.Password}
		e := &ftctltest.AuthEnv{CfgDir: filepath.Join(t.TempDir(), "ftctl"), Env: map[string]string{}, Open: func(u string) error {
			browser.Approve(u, "")
			return nil
		}}
		out, errOut, code := e.Run(t, nil, "--server", gw.URL, "auth", "login", "--web", "--timeout", "60s")
		if berr := browser.Wait(); berr != nil {
			t.Fatalf("logging in through Dex's pages: %v", berr)
		}
		if code != 0 || out != "Logged in to "+gw.URL+" as bob.\n" {
			t.Fatalf("login --web exit %d\nstdout %q\nstderr %s", code, out, errOut)
		}
	})
}
