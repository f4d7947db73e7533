package web

import (
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"golang.org/x/oauth2"

	"github.com/ftgate/ftgate/internal/auth"
	"github.com/ftgate/ftgate/internal/auth/authtest"
	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/job"
)

var testFiles = fstest.MapFS{
	"index.html":     {Data: []byte("<!doctype html><title>ftgate</title>")},
	"assets/app.js":  {Data: []byte("console.log(1)")},
	"assets/app.css": {Data: []byte("body{}")},
}

func checkHeaders(t *testing.T, what string, h http.Header) {
	t.Helper()
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"script-src 'self'", "frame-ancestors 'none'", "object-src 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("%s: CSP %q lacks %s", what, csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("%s: CSP allows inline or eval: %q", what, csp)
	}
	if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") == "" {
		t.Errorf("%s: headers %v", what, h)
	}
}

func TestPagesAssetsAndHeaders(t *testing.T) {
	h, err := newHandler(context.Background(), Config{}, testFiles)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		method, path string
		status       int
		ctype        string
		body         string
	}{
		{"GET", "/", 200, "text/html; charset=utf-8", "<title>ftgate"},
		{"GET", "/jobs", 200, "text/html; charset=utf-8", "<title>ftgate"},
		{"GET", "/jobs/3c7eb71e-0bdc-44e5-a420-2b636ff19f30", 200, "text/html; charset=utf-8", "<title>ftgate"},
		{"GET", "/submit", 200, "text/html; charset=utf-8", "<title>ftgate"},
		{"GET", "/system", 200, "text/html; charset=utf-8", "<title>ftgate"},
		{"GET", "/usage", 200, "text/html; charset=utf-8", "<title>ftgate"},
		{"GET", "/webhooks", 200, "text/html; charset=utf-8", "<title>ftgate"},
		{"GET", "/webhooks/x", 404, "text/html; charset=utf-8", "There is no page at /webhooks/x"},
		{"GET", "/assets/app.js", 200, "text/javascript; charset=utf-8", "console.log(1)"},
		{"GET", "/assets/app.css", 200, "text/css; charset=utf-8", "body{}"},
		{"GET", "/assets/nope.js", 404, "", ""},
		{"GET", "/assets/index.html", 404, "", ""},
		{"GET", "/nope", 404, "text/html; charset=utf-8", "There is no page at /nope"},
		{"GET", "/auth/login", 503, "text/html; charset=utf-8", "Login is not configured"},
		{"POST", "/", 404, "", ""},
	}
	for _, c := range cases {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		if rec.Code != c.status {
			t.Errorf("%s %s: status %d, want %d", c.method, c.path, rec.Code, c.status)
		}
		if c.ctype != "" && rec.Header().Get("Content-Type") != c.ctype {
			t.Errorf("%s %s: Content-Type %q, want %q", c.method, c.path, rec.Header().Get("Content-Type"), c.ctype)
		}
		if !strings.Contains(rec.Body.String(), c.body) {
			t.Errorf("%s %s: body %q lacks %q", c.method, c.path, rec.Body.String(), c.body)
		}
		checkHeaders(t, c.method+" "+c.path, rec.Header())
	}
	// ETags let the browser revalidate assets.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/assets/app.js", nil))
	req := httptest.NewRequest("GET", "/assets/app.js", nil)
	req.Header.Set("If-None-Match", rec.Header().Get("ETag"))
	rec2 := httptest.NewRecorder()
	h.ServeHTTP(rec2, req)
	if rec.Header().Get("ETag") == "" || rec2.Code != http.StatusNotModified {
		t.Errorf("etag %q, revalidation status %d", rec.Header().Get("ETag"), rec2.Code)
	}
	// Browsers that accept gzip get the asset compressed.
	req = httptest.NewRequest("GET", "/assets/app.js", nil)
	req.Header.Set("Accept-Encoding", "gzip, deflate, br")
	rec3 := httptest.NewRecorder()
	h.ServeHTTP(rec3, req)
	zr, err := gzip.NewReader(rec3.Body)
	if err != nil || rec3.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("gzip: %v %v", err, rec3.Header())
	}
	if b, _ := io.ReadAll(zr); string(b) != "console.log(1)" {
		t.Errorf("gzip body %q", b)
	}
}

func TestEmbeddedBundle(t *testing.T) {
	h, err := New(context.Background(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if !strings.Contains(rec.Body.String(), `src="/assets/app.js"`) || strings.Contains(rec.Body.String(), "<script>") {
		t.Fatalf("index.html: %s", rec.Body)
	}
	for _, p := range []string{"/assets/app.js", "/assets/app.css"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
		if rec.Code != 200 || rec.Body.Len() < 1000 {
			t.Errorf("%s: %d, %d bytes", p, rec.Code, rec.Body.Len())
		}
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/jobs/x?a=1": "/jobs/x?a=1", "": "/", "jobs": "/", "//evil.example/x": "/", "/\\evil": "/",
		"https://evil.example": "/", "/auth/logout": "/", "/a\r\nSet-Cookie: x": "/", "/\t/evil.example": "/", "/x\\y": "/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

// dashboard is the handler plus an API-like endpoint authenticated by
// auth.BearerOrSession, as the gateway mounts them.
type dashboard struct {
	srv      *httptest.Server
	base     string
	client   *http.Client
	sessions *auth.Sessions
	provider *authtest.Provider
}

func newDashboard(t *testing.T) *dashboard {
	t.Helper()
	p := authtest.New(t)
	p.SetBrowserUser("sub-alice")
	ctx := context.Background()
	sv, err := auth.New(ctx, config.OIDC{Issuer: p.Issuer, Audiences: []string{authtest.ClientID}})
	if err != nil {
		t.Fatal(err)
	}
	bearer, err := auth.New(ctx, config.OIDC{Issuer: p.Issuer, Audiences: []string{authtest.Audience}})
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := auth.NewSealer(nil)
	if err != nil {
		t.Fatal(err)
	}
	d := &dashboard{provider: p, sessions: &auth.Sessions{Sealer: sealer, Verifier: sv}}
	d.srv = httptest.NewUnstartedServer(nil)
	d.srv.Start()
	t.Cleanup(d.srv.Close)
	d.base = d.srv.URL
	h, err := newHandler(ctx, Config{Issuer: p.Issuer, Sessions: d.sessions, OAuth2: oauth2.Config{
		ClientID: authtest.ClientID, RedirectURL: d.base + "/callback", Scopes: authtest.Scopes(), // authtest registers /callback
	}}, testFiles)
	if err != nil {
		t.Fatal(err)
	}
	authn := auth.BearerOrSession{Bearer: bearer, Sessions: d.sessions}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/whoami", func(w http.ResponseWriter, r *http.Request) {
		id, err := authn.Authenticate(r)
		if err != nil {
			status := map[string]int{job.EUnauthorized: 401, job.EForbidden: 403}[job.ErrorCode(err)]
			writeJSON(w, status, errorBody(job.ErrorCode(err), job.ErrorMessage(err)))
			return
		}
		writeJSON(w, 200, map[string]string{"username": id.Username})
	})
	mux.Handle("/", h)
	d.srv.Config.Handler = mux
	jar, _ := cookiejar.New(nil)
	d.client = &http.Client{Jar: jar, Timeout: 20 * time.Second}
	return d
}

func (d *dashboard) do(t *testing.T, method, path string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, d.base+path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (d *dashboard) cookie(name string) *http.Cookie {
	u, _ := url.Parse(d.base)
	for _, c := range d.client.Jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func TestLoginSessionCSRFLogout(t *testing.T) {
	d := newDashboard(t)
	// Not logged in: the API refuses, the session probe says so.
	if code, _ := d.do(t, "GET", "/api/whoami", nil); code != 401 {
		t.Fatalf("whoami before login: %d", code)
	}
	// The Set-Cookie flags, seen on the login redirect.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(d.base + "/auth/login?next=/jobs/abc")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != 302 || loc.Query().Get("code_challenge_method") != "S256" || loc.Query().Get("nonce") == "" || loc.Query().Get("state") == "" {
		t.Fatalf("login redirect %d %s", resp.StatusCode, loc)
	}
	sc := resp.Header.Get("Set-Cookie")
	if !strings.Contains(sc, "HttpOnly") || !strings.Contains(sc, "SameSite=Lax") || strings.Contains(sc, "Secure") {
		t.Errorf("login cookie %q", sc)
	}
	// The whole flow, following redirects through the provider and back.
	resp, err = d.client.Get(d.base + "/auth/login?next=/jobs/abc")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Path != "/jobs/abc" || resp.StatusCode != 200 {
		t.Fatalf("after login at %s (%d)", resp.Request.URL, resp.StatusCode)
	}
	if d.cookie(auth.SessionCookie) == nil {
		t.Fatal("no session cookie")
	}
	code, body := d.do(t, "GET", "/auth/session", nil)
	if code != 200 || !strings.Contains(body, `"authenticated":true`) || !strings.Contains(body, `"username":"alice"`) {
		t.Fatalf("session: %d %s", code, body)
	}
	csrf := between(body, `"csrf_token":"`, `"`)
	if len(csrf) < 40 {
		t.Fatalf("csrf token %q", csrf)
	}
	if code, body := d.do(t, "GET", "/api/whoami", nil); code != 200 || !strings.Contains(body, "alice") {
		t.Fatalf("whoami with session: %d %s", code, body)
	}
	// State-changing requests need the CSRF token and this origin.
	for _, c := range []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"no token", nil, 403},
		{"wrong token", map[string]string{auth.CSRFHeader: "x" + csrf[1:]}, 403},
		{"token", map[string]string{auth.CSRFHeader: csrf}, 200},
		{"token, same origin", map[string]string{auth.CSRFHeader: csrf, "Origin": d.base, "Sec-Fetch-Site": "same-origin"}, 200},
		{"token, other origin", map[string]string{auth.CSRFHeader: csrf, "Origin": "http://evil.example"}, 403},
		{"token, cross-site fetch", map[string]string{auth.CSRFHeader: csrf, "Sec-Fetch-Site": "cross-site"}, 403},
	} {
		if code, body := d.do(t, "POST", "/api/whoami", c.hdr); code != c.want {
			t.Errorf("POST %s: %d, want %d (%s)", c.name, code, c.want, body)
		}
	}
	// A bearer token still wins over the cookie and is checked as before.
	if code, _ := d.do(t, "GET", "/api/whoami", map[string]string{"Authorization": "Bearer nope"}); code != 401 {
		t.Errorf("bad bearer with a session cookie: %d, want 401", code)
	}
	// Logout needs the token too, then the session is gone.
	if code, _ := d.do(t, "POST", "/auth/logout", nil); code != 403 {
		t.Errorf("logout without CSRF: %d", code)
	}
	if code, _ := d.do(t, "POST", "/auth/logout", map[string]string{auth.CSRFHeader: csrf}); code != 204 {
		t.Errorf("logout: %d", code)
	}
	if code, _ := d.do(t, "GET", "/api/whoami", nil); code != 401 {
		t.Errorf("whoami after logout: %d", code)
	}
}

func TestTamperedAndForeignCookies(t *testing.T) {
	d := newDashboard(t)
	u, _ := url.Parse(d.base)
	set := func(v string) {
		d.client.Jar.SetCookies(u, []*http.Cookie{{Name: auth.SessionCookie, Value: v, Path: "/"}})
	}
	// A token that verifies but is sealed by another gateway's key.
	other, _ := auth.NewSealer(nil)
	tok, err := d.provider.Sign(d.provider.Claims("sub-alice"), nil)
	if err != nil {
		t.Fatal(err)
	}
	foreign, _ := other.Seal(auth.SessionCookie, auth.Session{IDToken: tok, CSRF: "c", Expiry: time.Now().Add(time.Hour).Unix()})
	// An expired ID token sealed by this gateway.
	claims := d.provider.Claims("sub-alice")
	claims["exp"] = time.Now().Add(-time.Hour).Unix()
	expired, _ := d.provider.Sign(claims, nil)
	sealedExpired, _ := d.sessions.Sealer.Seal(auth.SessionCookie, auth.Session{IDToken: expired, CSRF: "c"})
	// A login cookie's value is not a session.
	asLogin, _ := d.sessions.Sealer.Seal(loginCookie, auth.Session{IDToken: tok, CSRF: "c"})
	for name, v := range map[string]string{"garbage": "xyz", "foreign key": foreign, "expired": sealedExpired, "other purpose": asLogin} {
		set(v)
		code, body := d.do(t, "GET", "/api/whoami", nil)
		if code != 401 {
			t.Errorf("%s: whoami %d %s", name, code, body)
		}
		_, body = d.do(t, "GET", "/auth/session", nil)
		if !strings.Contains(body, `"authenticated":false`) {
			t.Errorf("%s: session %s", name, body)
		}
	}
	set(sealedExpired)
	if _, body := d.do(t, "GET", "/auth/session", nil); !strings.Contains(body, "log in again") {
		t.Errorf("expired session: %s", body)
	}
}

func TestCallbackRefusals(t *testing.T) {
	d := newDashboard(t)
	if code, body := d.do(t, "GET", "/callback?code=x&state=y", nil); code != 400 || !strings.Contains(body, "Login expired") {
		t.Errorf("callback without login cookie: %d %s", code, body)
	}
	// Start a login but come back with another state.
	noFollow := *d.client
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noFollow.Get(d.base + "/auth/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code, body := d.do(t, "GET", "/callback?code=x&state=forged", nil); code != 400 || !strings.Contains(body, "state does not match") {
		t.Errorf("forged state: %d %s", code, body)
	}
	// The provider's error is shown in words.
	resp, _ = noFollow.Get(d.base + "/auth/login")
	resp.Body.Close()
	if code, body := d.do(t, "GET", "/callback?error=access_denied&error_description=no", nil); code != 401 || !strings.Contains(body, "access_denied") {
		t.Errorf("provider error: %d %s", code, body)
	}
	// A token whose nonce is not this login's is refused.
	claims := d.provider.Claims("sub-alice")
	claims["aud"], claims["nonce"] = authtest.ClientID, "other"
	tok, _ := d.provider.Sign(claims, nil)
	rec := httptest.NewRecorder()
	if _, err := d.sessions.Start(context.Background(), rec, httptest.NewRequest("GET", "/", nil), tok, "mine"); err == nil || !strings.Contains(err.Error(), "nonce") {
		t.Errorf("nonce mismatch: %v", err)
	}
	if rec.Header().Get("Set-Cookie") != "" {
		t.Error("a refused login set a cookie")
	}
}

func between(s, a, b string) string {
	_, rest, ok := strings.Cut(s, a)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, b)
	return v
}
