package login_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
	"github.com/ftgate/ftgate/internal/ftctl/tokencache"
)

func TestAuthLoginDeviceFlow(t *testing.T) {
	t.Parallel()
	e := ftctltest.NewAuthEnv(t)
	ap := &ftctltest.Approver{P: e.P, Sub: "sub-alice"}
	out, errOut, code := e.Run(t, ap, "--server", e.GW.URL+"/", "auth", "login")
	if code != 0 || ap.Err != nil {
		t.Fatalf("login exit %d (approve: %v)\nstdout: %s\nstderr: %s", code, ap.Err, out, errOut)
	}
	if want := "Logged in to " + e.GW.URL + " as alice.\n"; out != want {
		t.Errorf("stdout %q, want %q", out, want)
	}
	m := ftctltest.CodeRE.FindStringSubmatch(errOut)
	if m == nil {
		t.Fatalf("no code in stderr %q", errOut)
	}
	wantErr := "Open " + e.P.Issuer + "/device in a browser and enter the code: " + m[1] + "\n" +
		"(or open " + e.P.Issuer + "/device?user_code=" + m[1] + ")\n" +
		"Waiting for approval...\n"
	if errOut != wantErr {
		t.Errorf("stderr:\n%s\nwant:\n%s", errOut, wantErr)
	}

	// Tokens are private to the user; the gateway becomes the default server.
	for path, mode := range map[string]os.FileMode{e.CfgDir: 0o700, filepath.Join(e.CfgDir, "tokens.json"): 0o600, filepath.Join(e.CfgDir, "config.yaml"): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %04o, want %04o", path, fi.Mode().Perm(), mode)
		}
	}
	b, _ := os.ReadFile(filepath.Join(e.CfgDir, "config.yaml"))
	if string(b) != "server: "+e.GW.URL+"\n" {
		t.Errorf("config.yaml = %q", b)
	}

	// auth token prints a token the gateway's verifier maps to alice (no --server now).
	out, errOut, code = e.Run(t, nil, "auth", "token")
	if code != 0 {
		t.Fatalf("token exit %d: %s", code, errOut)
	}
	id, err := e.V.Verify(context.Background(), strings.TrimSpace(out))
	if err != nil || id.Username != "alice" {
		t.Fatalf("printed token: %+v %v", id, err)
	}

	out, errOut, code = e.Run(t, nil, "auth", "status")
	statusRE := regexp.MustCompile(`^Server:  ` + regexp.QuoteMeta(e.GW.URL) + `
Issuer:  ` + regexp.QuoteMeta(e.P.Issuer) + `
Account: alice
Subject: sub-alice
Role:    user
Token:   valid until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(refreshed automatically\)
$`)
	if code != 0 || !statusRE.MatchString(out) || errOut != "" {
		t.Errorf("status exit %d\nstdout:\n%s\nstderr: %s", code, out, errOut)
	}

	// Logout revokes the refresh token at the provider (its discovery names a
	// revocation_endpoint) before forgetting the session.
	s, err := (&tokencache.TokenCache{Path: filepath.Join(e.CfgDir, "tokens.json")}).Load(e.GW.URL)
	if err != nil || s == nil || s.RefreshToken == "" {
		t.Fatalf("session before logout: %+v, %v", s, err)
	}
	out, errOut, code = e.Run(t, nil, "auth", "logout")
	if code != 0 || out != "Logged out of "+e.GW.URL+"; the identity provider revoked the refresh token.\n" || errOut != "" {
		t.Errorf("logout exit %d stdout %q stderr %q", code, out, errOut)
	}
	if _, err := e.P.OAuth2Config().TokenSource(context.Background(), &oauth2.Token{RefreshToken: s.RefreshToken}).Token(); err == nil {
		t.Errorf("the refresh token still works after logout")
	}
	out, errOut, code = e.Run(t, nil, "auth", "token")
	if code != cmdutil.ExitLogin || out != "" || errOut != "ftctl: not logged in; run `ftctl auth login --server "+e.GW.URL+"`\n" {
		t.Errorf("token after logout: exit %d stdout %q stderr %q", code, out, errOut)
	}
	out, _, code = e.Run(t, nil, "auth", "status")
	if code != cmdutil.ExitLogin || out != "Not logged in to "+e.GW.URL+".\n" {
		t.Errorf("status after logout: exit %d stdout %q", code, out)
	}
	out, _, code = e.Run(t, nil, "auth", "logout")
	if code != 0 || out != "Not logged in to "+e.GW.URL+".\n" {
		t.Errorf("second logout: exit %d stdout %q", code, out)
	}
}

func TestAuthLoginAdmin(t *testing.T) {
	t.Parallel()
	e := ftctltest.NewAuthEnv(t)
	e.P.SetBrowserUser("sub-admin")
	out, errOut, code := e.Run(t, nil, "--server", e.GW.URL, "auth", "login", "--web", "--port", "0")
	if code != 0 || out != "Logged in to "+e.GW.URL+" as admin (admin).\n" {
		t.Fatalf("exit %d stdout %q stderr %q", code, out, errOut)
	}
	out, _, _ = e.Run(t, nil, "auth", "status")
	if !strings.Contains(out, "Role:    admin\n") {
		t.Errorf("status: %s", out)
	}
}

func TestAuthLoginRefusedAccount(t *testing.T) {
	t.Parallel()
	e := ftctltest.NewAuthEnv(t)
	e.P.SetBrowserUser("sub-root")
	out, errOut, code := e.Run(t, nil, "--server", e.GW.URL, "auth", "login", "--web", "--port", "0")
	want := `ftctl: logged in at ` + e.P.Issuer + `, but the gateway refuses the token: username "root" may not use the gateway (HTTP 403)` + "\n"
	if code != cmdutil.ExitError || out != "" || !strings.HasSuffix(errOut, want) {
		t.Errorf("exit %d stdout %q stderr %q, want suffix %q", code, out, errOut, want)
	}
}

func TestAuthLoginWeb(t *testing.T) {
	t.Parallel()
	e := ftctltest.NewAuthEnv(t)
	e.P.SetBrowserUser("sub-bob")
	out, errOut, code := e.Run(t, nil, "--server", e.GW.URL, "auth", "login", "--web", "--port", "0")
	if code != 0 || out != "Logged in to "+e.GW.URL+" as bob.\n" {
		t.Fatalf("exit %d stdout %q stderr %q", code, out, errOut)
	}
	re := regexp.MustCompile(`^Open this URL in a browser to log in:\n  (\S+)\nWaiting for the browser...\n$`)
	m := re.FindStringSubmatch(errOut)
	if m == nil {
		t.Fatalf("stderr %q", errOut)
	}
	for _, p := range []string{"code_challenge_method=S256", "code_challenge=", "state=", "redirect_uri=http%3A%2F%2F127.0.0.1%3A", "audience%3Aserver%3Aclient_id%3Aftgate-api"} {
		if !strings.Contains(m[1], p) {
			t.Errorf("auth URL %s lacks %s", m[1], p)
		}
	}
}

func TestLoginNeedsGatewaySettings(t *testing.T) {
	t.Parallel()
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"issuer":"","client_id":"","scopes":null,"audience":""}`))
	}))
	defer gw.Close()
	e := &ftctltest.AuthEnv{CfgDir: t.TempDir()}
	_, errOut, code := e.Run(t, nil, "--server", gw.URL, "auth", "login")
	want := "ftctl: the gateway at " + gw.URL + ` serves no login settings (issuer "", client_id ""): ask its admin to set oidc.issuer and oidc.client_id` + "\n"
	if code != cmdutil.ExitError || errOut != want {
		t.Errorf("exit %d stderr %q, want %q", code, errOut, want)
	}
}

// TestLoginWarnsOldClient: the gateway advertises its minimum client version; an
// older ftctl warns on stderr and still logs in, a current or unversioned one does not.
func TestLoginWarnsOldClient(t *testing.T) {
	t.Parallel()
	e := ftctltest.NewAuthEnv(t)
	e.P.SetBrowserUser("sub-alice")
	for _, tc := range []struct{ min, client, warn string }{
		{"v0.5.0", "v0.4.9", "warning: this ftctl (v0.4.9) is older than v0.5.0, the oldest the gateway at " + e.GW.URL + " supports; some commands may fail: install a newer ftctl\n"},
		{"v0.5.0", "v0.5.0", ""},
		{"v0.5.0", "v1.0.0-rc1", ""},
		{"v0.5.0", "dev", ""},
		{"", "v0.0.1", ""},
	} {
		e.MinClientVersion, e.AppVersion = tc.min, tc.client
		out, errOut, code := e.Run(t, nil, "--server", e.GW.URL, "auth", "login", "--web", "--port", "0")
		if code != 0 || out != "Logged in to "+e.GW.URL+" as alice.\n" {
			t.Fatalf("min %s client %s: exit %d stdout %q stderr %q", tc.min, tc.client, code, out, errOut)
		}
		if got, _, _ := strings.Cut(errOut, "Open this URL"); got != tc.warn {
			t.Errorf("min %s client %s: stderr before the login URL %q, want %q", tc.min, tc.client, got, tc.warn)
		}
	}
}
