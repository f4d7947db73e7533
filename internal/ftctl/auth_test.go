package ftctl

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/api"
	"github.com/ftgate/ftgate/internal/auth"
	"github.com/ftgate/ftgate/internal/auth/authtest"
	"github.com/ftgate/ftgate/internal/config"
)

// testEnv is an embedded OpenID provider and a real gateway handler verifying its tokens.
type testEnv struct {
	p        *authtest.Provider
	v        *auth.Verifier
	gw       *httptest.Server
	cfgDir   string
	env      map[string]string
	now      time.Time
	nowShift time.Duration
	// open is the browser for --web (browse when nil).
	open func(url string) error
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	p := authtest.New(t)
	v, err := auth.New(context.Background(), config.OIDC{
		Issuer: p.Issuer, Audiences: []string{authtest.Audience}, ClientID: authtest.ClientID,
		UsernameClaim: "preferred_username", GroupsClaim: "groups", AdminGroups: []string{"ftgate-admins"},
		DenyUsers: []string{"root"}, ClockSkew: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := &api.Server{Auth: v, AuthConfig: api.AuthConfig{
		Issuer: p.Issuer, ClientID: authtest.ClientID, Audience: authtest.Audience,
		Scopes: []string{"openid", "profile", "email", "groups", "offline_access"},
	}}
	gw := httptest.NewServer(srv.Handler())
	t.Cleanup(gw.Close)
	return &testEnv{p: p, v: v, gw: gw, cfgDir: filepath.Join(t.TempDir(), "ftctl"), env: map[string]string{}}
}

// run runs ftctl with args; errOut receives stderr (a *bytes.Buffer when nil).
func (e *testEnv) run(t *testing.T, errOut *approver, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out bytes.Buffer
	if errOut == nil {
		errOut = &approver{}
	}
	f := NewFactory(strings.NewReader(""), &out, errOut)
	f.Getenv = func(k string) string {
		if k == "FTCTL_CONFIG_DIR" {
			return e.cfgDir
		}
		return e.env[k]
	}
	f.Now = func() time.Time { return time.Now().Add(e.nowShift) }
	f.OpenBrowser = browse
	if e.open != nil {
		f.OpenBrowser = e.open
	}
	code = Run(f, args)
	return out.String(), errOut.String(), code
}

// approver is stderr that approves the device code it sees, as the user would: in
// the embedded provider p as sub, or by calling onCode.
type approver struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	p      *authtest.Provider
	sub    string
	onCode func(verifyURI, code string)
	seen   bool
	err    error
}

var (
	codeRE      = regexp.MustCompile(`enter the code: (\S+)\n`)
	deviceURIRE = regexp.MustCompile(`Open (\S+) in a browser and enter the code: (\S+)\n`)
)

func (a *approver) Write(b []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.buf.Write(b)
	if m := deviceURIRE.FindStringSubmatch(a.buf.String()); m != nil && !a.seen {
		a.seen = true
		if a.p != nil {
			a.err = a.p.Approve(m[2], a.sub)
		}
		if a.onCode != nil {
			a.onCode(m[1], m[2])
		}
	}
	return len(b), nil
}

func (a *approver) String() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.buf.String()
}

// browse follows the login URL as a browser with a session would, ending at ftctl's
// loopback callback.
func browse(u string) error {
	go func() {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
		}
	}()
	return nil
}

func TestAuthLoginDeviceFlow(t *testing.T) {
	e := newTestEnv(t)
	ap := &approver{p: e.p, sub: "sub-alice"}
	out, errOut, code := e.run(t, ap, "--server", e.gw.URL+"/", "auth", "login")
	if code != 0 || ap.err != nil {
		t.Fatalf("login exit %d (approve: %v)\nstdout: %s\nstderr: %s", code, ap.err, out, errOut)
	}
	if want := "Logged in to " + e.gw.URL + " as alice.\n"; out != want {
		t.Errorf("stdout %q, want %q", out, want)
	}
	m := codeRE.FindStringSubmatch(errOut)
	if m == nil {
		t.Fatalf("no code in stderr %q", errOut)
	}
	wantErr := "Open " + e.p.Issuer + "/device in a browser and enter the code: " + m[1] + "\n" +
		"(or open " + e.p.Issuer + "/device?user_code=" + m[1] + ")\n" +
		"Waiting for approval...\n"
	if errOut != wantErr {
		t.Errorf("stderr:\n%s\nwant:\n%s", errOut, wantErr)
	}

	// Tokens are private to the user; the gateway becomes the default server.
	for path, mode := range map[string]os.FileMode{e.cfgDir: 0o700, filepath.Join(e.cfgDir, "tokens.json"): 0o600, filepath.Join(e.cfgDir, "config.yaml"): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %04o, want %04o", path, fi.Mode().Perm(), mode)
		}
	}
	b, _ := os.ReadFile(filepath.Join(e.cfgDir, "config.yaml"))
	if string(b) != "server: "+e.gw.URL+"\n" {
		t.Errorf("config.yaml = %q", b)
	}

	// auth token prints a token the gateway's verifier maps to alice (no --server now).
	out, errOut, code = e.run(t, nil, "auth", "token")
	if code != 0 {
		t.Fatalf("token exit %d: %s", code, errOut)
	}
	id, err := e.v.Verify(context.Background(), strings.TrimSpace(out))
	if err != nil || id.Username != "alice" {
		t.Fatalf("printed token: %+v %v", id, err)
	}

	out, errOut, code = e.run(t, nil, "auth", "status")
	statusRE := regexp.MustCompile(`^Server:  ` + regexp.QuoteMeta(e.gw.URL) + `
Issuer:  ` + regexp.QuoteMeta(e.p.Issuer) + `
Account: alice
Subject: sub-alice
Role:    user
Token:   valid until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(refreshed automatically\)
$`)
	if code != 0 || !statusRE.MatchString(out) || errOut != "" {
		t.Errorf("status exit %d\nstdout:\n%s\nstderr: %s", code, out, errOut)
	}

	out, _, code = e.run(t, nil, "auth", "logout")
	if code != 0 || out != "Logged out of "+e.gw.URL+".\n" {
		t.Errorf("logout exit %d stdout %q", code, out)
	}
	out, errOut, code = e.run(t, nil, "auth", "token")
	if code != ExitLogin || out != "" || errOut != "ftctl: not logged in; run `ftctl auth login --server "+e.gw.URL+"`\n" {
		t.Errorf("token after logout: exit %d stdout %q stderr %q", code, out, errOut)
	}
	out, _, code = e.run(t, nil, "auth", "status")
	if code != ExitLogin || out != "Not logged in to "+e.gw.URL+".\n" {
		t.Errorf("status after logout: exit %d stdout %q", code, out)
	}
	out, _, code = e.run(t, nil, "auth", "logout")
	if code != 0 || out != "Not logged in to "+e.gw.URL+".\n" {
		t.Errorf("second logout: exit %d stdout %q", code, out)
	}
}

func TestAuthLoginAdmin(t *testing.T) {
	e := newTestEnv(t)
	e.p.SetBrowserUser("sub-admin")
	out, errOut, code := e.run(t, nil, "--server", e.gw.URL, "auth", "login", "--web", "--port", "0")
	if code != 0 || out != "Logged in to "+e.gw.URL+" as admin (admin).\n" {
		t.Fatalf("exit %d stdout %q stderr %q", code, out, errOut)
	}
	out, _, _ = e.run(t, nil, "auth", "status")
	if !strings.Contains(out, "Role:    admin\n") {
		t.Errorf("status: %s", out)
	}
}

func TestAuthLoginRefusedAccount(t *testing.T) {
	e := newTestEnv(t)
	e.p.SetBrowserUser("sub-root")
	out, errOut, code := e.run(t, nil, "--server", e.gw.URL, "auth", "login", "--web", "--port", "0")
	want := `ftctl: logged in at ` + e.p.Issuer + `, but the gateway refuses the token: username "root" may not use the gateway (HTTP 403)` + "\n"
	if code != ExitError || out != "" || !strings.HasSuffix(errOut, want) {
		t.Errorf("exit %d stdout %q stderr %q, want suffix %q", code, out, errOut, want)
	}
}

func TestAuthLoginWeb(t *testing.T) {
	e := newTestEnv(t)
	e.p.SetBrowserUser("sub-bob")
	out, errOut, code := e.run(t, nil, "--server", e.gw.URL, "auth", "login", "--web", "--port", "0")
	if code != 0 || out != "Logged in to "+e.gw.URL+" as bob.\n" {
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

func TestAuthTokenRefresh(t *testing.T) {
	e := newTestEnv(t)
	e.p.SetBrowserUser("sub-alice")
	if _, errOut, code := e.run(t, nil, "--server", e.gw.URL, "auth", "login", "--web", "--port", "0"); code != 0 {
		t.Fatalf("login: %s", errOut)
	}
	first, _, _ := e.run(t, nil, "auth", "token")
	again, _, _ := e.run(t, nil, "auth", "token")
	if first != again {
		t.Errorf("a valid token was refreshed needlessly")
	}
	// Four minutes on, the 5-minute token is within the refresh margin.
	e.nowShift = 4*time.Minute + 30*time.Second
	second, errOut, code := e.run(t, nil, "auth", "token")
	if code != 0 || second == first {
		t.Fatalf("refresh: exit %d stderr %q (same token: %v)", code, errOut, second == first)
	}
	if id, err := e.v.Verify(context.Background(), strings.TrimSpace(second)); err != nil || id.Username != "alice" {
		t.Fatalf("refreshed token: %+v %v", id, err)
	}
	// The refresh token is revoked: one line asks for a new login, exit 4.
	s, err := (&TokenCache{Path: filepath.Join(e.cfgDir, "tokens.json")}).Load(e.gw.URL)
	if err != nil || s == nil {
		t.Fatalf("load session: %v", err)
	}
	e.p.RevokeRefresh(s.RefreshToken)
	e.nowShift = 10 * time.Minute
	out, errOut, code := e.run(t, nil, "auth", "token")
	want := "ftctl: your session has expired; run `ftctl auth login --server " + e.gw.URL + "`\n"
	if code != ExitLogin || out != "" || errOut != want {
		t.Errorf("expired refresh: exit %d stdout %q stderr %q, want %q", code, out, errOut, want)
	}
}

func TestServerResolution(t *testing.T) {
	tests := []struct {
		name, flag, env, config string
		want, wantErr           string
	}{
		{name: "flag wins", flag: "http://flag.example:1", env: "http://env.example:2", config: "server: http://cfg.example:3\n", want: "http://flag.example:1"},
		{name: "env over config", env: "http://env.example:2/", config: "server: http://cfg.example:3\n", want: "http://env.example:2"},
		{name: "config", config: "server: https://cfg.example.edu/gw/\n", want: "https://cfg.example.edu/gw"},
		{name: "none", wantErr: "no gateway: pass --server URL, set FTCTL_SERVER, or log in once with `ftctl auth login --server URL`"},
		{name: "bad scheme", flag: "ftp://x", wantErr: `--server: "ftp://x" is not a gateway URL (want http(s)://host[:port])`},
		{name: "no host", env: "http://", wantErr: `FTCTL_SERVER: "http://" is not a gateway URL`},
		{name: "bad config key", config: "sever: http://x.example\n", wantErr: "field sever not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.config != "" {
				if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(tt.config), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			f := NewFactory(nil, nil, nil)
			f.ServerFlag = tt.flag
			f.Getenv = func(k string) string {
				return map[string]string{"FTCTL_CONFIG_DIR": dir, "FTCTL_SERVER": tt.env}[k]
			}
			got, err := f.Server()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestTokenCacheRefusesWideMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	if err := os.WriteFile(path, []byte(`{"sessions":{}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := (&TokenCache{Path: path}).Load("http://x.example")
	if err == nil || !strings.Contains(err.Error(), "accessible by other users (mode 0644)") {
		t.Errorf("error %v", err)
	}
}

func TestBearerPrefersJWTAccessToken(t *testing.T) {
	jwt := func(exp int64) string {
		return "eyJhbGciOiJSUzI1NiJ9." + b64(`{"exp":`+itoa(exp)+`}`) + ".sig"
	}
	now := time.Now().Truncate(time.Second)
	tests := []struct {
		name    string
		s       Session
		want    string
		wantExp time.Time
	}{
		{"jwt access token", Session{AccessToken: jwt(now.Unix()), IDToken: jwt(now.Unix() + 5), Expiry: now.Add(time.Hour)}, jwt(now.Unix()), now},
		{"opaque access token", Session{AccessToken: "opaque", IDToken: jwt(now.Unix() + 5), Expiry: now.Add(time.Hour)}, jwt(now.Unix() + 5), now.Add(5 * time.Second)},
		{"nothing better", Session{AccessToken: "opaque", Expiry: now}, "opaque", now},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, exp := tt.s.Bearer()
			if got != tt.want || !exp.Equal(tt.wantExp) {
				t.Errorf("got %q %v, want %q %v", got, exp, tt.want, tt.wantExp)
			}
		})
	}
}

func TestLoginNeedsGatewaySettings(t *testing.T) {
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"issuer":"","client_id":"","scopes":null,"audience":""}`))
	}))
	defer gw.Close()
	e := &testEnv{cfgDir: t.TempDir()}
	_, errOut, code := e.run(t, nil, "--server", gw.URL, "auth", "login")
	want := "ftctl: the gateway at " + gw.URL + ` serves no login settings (issuer "", client_id ""): ask its admin to set oidc.issuer and oidc.client_id` + "\n"
	if code != ExitError || errOut != want {
		t.Errorf("exit %d stderr %q, want %q", code, errOut, want)
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestConcurrentRefresh: two ftctl processes refreshing at once spend the (rotating)
// refresh token once; both get the new token.
func TestConcurrentRefresh(t *testing.T) {
	e := newTestEnv(t)
	e.p.SetBrowserUser("sub-alice")
	if _, errOut, code := e.run(t, nil, "--server", e.gw.URL, "auth", "login", "--web", "--port", "0"); code != 0 {
		t.Fatalf("login: %s", errOut)
	}
	later := func() time.Time { return time.Now().Add(4*time.Minute + 30*time.Second) }
	// Hold the cache lock until all four have read the stale token and wait for it.
	unlock, err := (&TokenCache{Path: filepath.Join(e.cfgDir, "tokens.json")}).lock()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	toks, errs := make([]string, 4), make([]error, 4)
	for i := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &TokenCache{Path: filepath.Join(e.cfgDir, "tokens.json"), Now: later}
			toks[i], errs[i] = c.Token(context.Background(), e.gw.URL)
		}()
	}
	time.Sleep(300 * time.Millisecond)
	unlock()
	wg.Wait()
	for i := range toks {
		if errs[i] != nil {
			t.Fatalf("refresh %d: %v", i, errs[i])
		}
		if toks[i] != toks[0] {
			t.Errorf("refresh %d got a different token: the refresh token was spent twice", i)
		}
	}
}
