package auth_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/ftgate/ftgate/internal/auth"
	"github.com/ftgate/ftgate/internal/auth/authtest"
	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/job"
)

func oidcConfig(p *authtest.Provider) config.OIDC {
	return config.OIDC{
		Issuer:        p.Issuer,
		Audiences:     []string{authtest.Audience},
		ClientID:      authtest.ClientID,
		UsernameClaim: "preferred_username",
		GroupsClaim:   "groups",
		AdminGroups:   []string{"ftgate-admins"},
		DenyUsers:     []string{"root", "daemon", "nobody"},
		ClockSkew:     30 * time.Second,
	}
}

func newVerifier(t *testing.T, cfg config.OIDC, opts ...auth.Option) *auth.Verifier {
	t.Helper()
	v, err := auth.New(context.Background(), cfg, opts...)
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	return v
}

// verify runs Authenticate over a request carrying tok and returns the identity or the
// error code and message.
func verify(v *auth.Verifier, tok string) (job.Identity, string, string) {
	r := httptest.NewRequest(http.MethodGet, "/api/whoami", nil)
	if tok != "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	id, err := v.Authenticate(r)
	if err != nil {
		return id, job.ErrorCode(err), job.ErrorMessage(err)
	}
	return id, "", ""
}

func TestRealTokensMapToIdentities(t *testing.T) {
	p := authtest.New(t)
	v := newVerifier(t, oidcConfig(p))
	tests := []struct {
		sub, user string
		admin     bool
	}{
		{"sub-alice", "alice", false},
		{"sub-bob", "bob", false},
		{"sub-admin", "admin", true},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			tok := p.Login(t, tt.sub)
			idTok, _ := tok.Extra("id_token").(string)
			for name, raw := range map[string]string{"access token": tok.AccessToken, "id token": idTok} {
				id, code, msg := verify(v, raw)
				if code != "" {
					t.Fatalf("%s refused: %s: %s", name, code, msg)
				}
				if id.Subject != tt.sub || id.Username != tt.user || id.Admin != tt.admin {
					t.Errorf("%s: got %+v, want subject %s user %s admin %v", name, id, tt.sub, tt.user, tt.admin)
				}
				if id.Email != tt.user+"@example.com" {
					t.Errorf("%s: email %q", name, id.Email)
				}
			}
		})
	}
}

func TestBadUsernamesFailClosed(t *testing.T) {
	p := authtest.New(t)
	v := newVerifier(t, oidcConfig(p))
	tests := []struct {
		sub, want string
	}{
		{"sub-root", `username "root" may not use the gateway`},
		{"sub-dotdot", `username "../x" is not a valid Unix account name`},
		{"sub-semicolon", `username "a;b" is not a valid Unix account name`},
		{"sub-empty", "the token's username is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.sub, func(t *testing.T) {
			_, code, msg := verify(v, p.AccessToken(t, tt.sub))
			if code != job.EForbidden || !strings.Contains(msg, tt.want) {
				t.Errorf("got %s %q, want forbidden containing %q", code, msg, tt.want)
			}
		})
	}
}

func TestIdentityClaims(t *testing.T) {
	p := authtest.New(t)
	tests := []struct {
		name   string
		cfg    func(*config.OIDC)
		claims func(map[string]any)
		code   string
		want   string // message substring, or username when code is ""
		admin  bool
	}{
		{name: "missing username claim", claims: func(c map[string]any) { delete(c, "preferred_username") }, code: job.EForbidden, want: "no preferred_username claim"},
		{name: "username not a string", claims: func(c map[string]any) { c["preferred_username"] = 7 }, code: job.EForbidden, want: "not a string"},
		{name: "too long", claims: func(c map[string]any) { c["preferred_username"] = strings.Repeat("a", 33) }, code: job.EForbidden, want: "not a valid Unix account name"},
		{name: "upper case", claims: func(c map[string]any) { c["preferred_username"] = "Alice" }, code: job.EForbidden, want: "not a valid Unix account name"},
		{name: "32 chars ok", claims: func(c map[string]any) { c["preferred_username"] = strings.Repeat("a", 32) }, want: strings.Repeat("a", 32)},
		{name: "no sub", claims: func(c map[string]any) { delete(c, "sub") }, code: job.EForbidden, want: "no sub claim"},
		{name: "other username claim", cfg: func(c *config.OIDC) { c.UsernameClaim = "uid" }, claims: func(c map[string]any) { c["uid"] = "carol" }, want: "carol"},
		{name: "configured deny list", cfg: func(c *config.OIDC) { c.DenyUsers = []string{"alice"} }, code: job.EForbidden, want: `username "alice" may not use the gateway`},
		{name: "groups as a string", claims: func(c map[string]any) { c["groups"] = "ftgate-admins" }, want: "alice", admin: true},
		{name: "malformed groups: no admin", claims: func(c map[string]any) { c["groups"] = []any{"ftgate-admins", 3} }, want: "alice"},
		{name: "other groups claim", cfg: func(c *config.OIDC) { c.GroupsClaim = "roles" }, claims: func(c map[string]any) { c["roles"] = []string{"ftgate-admins"} }, want: "alice", admin: true},
		{name: "groups claim not configured for admin", claims: func(c map[string]any) { c["groups"] = []string{"admins"} }, want: "alice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := oidcConfig(p)
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			v := newVerifier(t, cfg)
			c := p.Claims("sub-alice")
			if tt.claims != nil {
				tt.claims(c)
			}
			tok, err := p.Sign(c, nil)
			if err != nil {
				t.Fatal(err)
			}
			id, code, msg := verify(v, tok)
			if code != tt.code {
				t.Fatalf("code %q (%s), want %q", code, msg, tt.code)
			}
			if code != "" && !strings.Contains(msg, tt.want) {
				t.Errorf("message %q, want it to contain %q", msg, tt.want)
			}
			if code == "" && (id.Username != tt.want || id.Admin != tt.admin) {
				t.Errorf("identity %+v, want user %s admin %v", id, tt.want, tt.admin)
			}
		})
	}
}

func TestTokenChecks(t *testing.T) {
	p := authtest.New(t)
	now := time.Now()
	foreign, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(mod func(map[string]any), header map[string]any) string {
		c := p.Claims("sub-alice")
		if mod != nil {
			mod(c)
		}
		tok, err := p.Sign(c, header)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tests := []struct {
		name  string
		cfg   func(*config.OIDC)
		token func() string
		code  string
		want  string
	}{
		{name: "valid", token: func() string { return sign(nil, nil) }},
		{name: "no header", token: func() string { return "" }, code: job.EUnauthorized, want: "missing Authorization header"},
		{name: "opaque", token: func() string { return "2YotnFZFEjr1zCsicMWpAA" }, code: job.EUnauthorized, want: "opaque tokens are not accepted"},
		{name: "malformed", token: func() string { return "a.b.c" }, code: job.EUnauthorized, want: "malformed token"},
		{name: "expired", token: func() string {
			return sign(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() }, nil)
		}, code: job.EUnauthorized, want: "token expired"},
		{name: "expired within skew", token: func() string {
			return sign(func(c map[string]any) { c["exp"] = now.Add(-10 * time.Second).Unix() }, nil)
		}},
		{name: "no exp", token: func() string { return sign(func(c map[string]any) { delete(c, "exp") }, nil) }, code: job.EUnauthorized, want: "no exp claim"},
		{name: "not yet valid", token: func() string {
			return sign(func(c map[string]any) { c["nbf"] = now.Add(2 * time.Minute).Unix() }, nil)
		}, code: job.EUnauthorized, want: "not valid before"},
		{name: "nbf within skew", token: func() string {
			return sign(func(c map[string]any) { c["nbf"] = now.Add(10 * time.Second).Unix() }, nil)
		}},
		{name: "wrong issuer", token: func() string {
			return sign(func(c map[string]any) { c["iss"] = p.Issuer + "/" }, nil)
		}, code: job.EUnauthorized, want: "issued by a different provider"},
		{name: "wrong audience (the CLI's client id only)", token: func() string {
			return sign(func(c map[string]any) { c["aud"] = authtest.ClientID }, nil)
		}, code: job.EUnauthorized, want: "does not include this API"},
		{name: "second configured audience", cfg: func(c *config.OIDC) { c.Audiences = []string{"other-api", authtest.Audience} }, token: func() string { return sign(nil, nil) }},
		{name: "unknown signing key", token: func() string {
			tok, err := authtest.SignWith(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: foreign, KeyID: "key-1"}}, nil, p.Claims("sub-alice"))
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}, code: job.EUnauthorized, want: "invalid token"},
		{name: "unknown key id", token: func() string {
			tok, err := authtest.SignWith(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: foreign, KeyID: "nope"}}, nil, p.Claims("sub-alice"))
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}, code: job.EUnauthorized, want: "invalid token"},
		{name: "alg none", token: func() string { return authtest.Unsigned(p.Claims("sub-alice")) }, code: job.EUnauthorized, want: `signing algorithm "none" is not accepted`},
		{name: "HS256 with the public key", token: func() string {
			tok, err := p.HS256WithPublicKey(p.Claims("sub-alice"))
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}, code: job.EUnauthorized, want: `signing algorithm "HS256" is not accepted`},
		{name: "at+jwt access token", token: func() string { return sign(nil, map[string]any{"typ": "at+jwt"}) }},
		{name: "other token type", token: func() string { return sign(nil, map[string]any{"typ": "logout+jwt"}) }, code: job.EUnauthorized, want: "token type"},
		{name: "allowed client", cfg: func(c *config.OIDC) { c.AllowedClients = []string{authtest.ClientID} }, token: func() string { return sign(nil, nil) }},
		{name: "client not allowed", cfg: func(c *config.OIDC) { c.AllowedClients = []string{"web"} }, token: func() string { return sign(nil, nil) }, code: job.EUnauthorized, want: `client "ftctl" is not allowed`},
		{name: "client_id claim", cfg: func(c *config.OIDC) { c.AllowedClients = []string{"web"} }, token: func() string {
			return sign(func(c map[string]any) { delete(c, "azp"); c["client_id"] = "web" }, nil)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := oidcConfig(p)
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			v := newVerifier(t, cfg)
			id, code, msg := verify(v, tt.token())
			if code != tt.code {
				t.Fatalf("code %q (%s), want %q", code, msg, tt.code)
			}
			if !strings.Contains(msg, tt.want) {
				t.Errorf("message %q, want it to contain %q", msg, tt.want)
			}
			if code == "" && id.Username != "alice" {
				t.Errorf("identity %+v, want alice", id)
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	p := authtest.New(t)
	v := newVerifier(t, oidcConfig(p))
	before := p.AccessToken(t, "sub-alice")
	if _, code, msg := verify(v, before); code != "" {
		t.Fatalf("before rotation: %s %s", code, msg)
	}
	p.Rotate()
	after := p.AccessToken(t, "sub-alice")
	if _, code, msg := verify(v, after); code != "" {
		t.Fatalf("token signed with the new key refused: %s %s", code, msg)
	}
	if _, code, msg := verify(v, before); code != "" {
		t.Fatalf("token signed with the old key (still published) refused: %s %s", code, msg)
	}
}

func TestClock(t *testing.T) {
	p := authtest.New(t)
	tok := p.AccessToken(t, "sub-alice")
	later := func() time.Time { return time.Now().Add(time.Hour) }
	v := newVerifier(t, oidcConfig(p), auth.WithClock(later))
	if _, code, msg := verify(v, tok); code != job.EUnauthorized || !strings.Contains(msg, "token expired") {
		t.Errorf("an hour later: %s %q, want unauthorized token expired", code, msg)
	}
}

func TestIssuerUnavailable(t *testing.T) {
	p := authtest.New(t)
	tok := p.AccessToken(t, "sub-alice")
	// A verifier whose HTTP client stops working after discovery cannot fetch keys.
	var down bool
	client := &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		if down {
			return nil, http.ErrHandlerTimeout
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	v := newVerifier(t, oidcConfig(p), auth.WithHTTPClient(client))
	down = true
	if _, code, msg := verify(v, tok); code != job.EUnavailable {
		t.Errorf("keys unreachable: %s %q, want unavailable", code, msg)
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestNewErrors(t *testing.T) {
	p := authtest.New(t)
	dir := t.TempDir()
	write := func(name, body string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tests := []struct {
		name string
		cfg  func(*config.OIDC)
		want string
	}{
		{"no issuer", func(c *config.OIDC) { c.Issuer = "" }, "oidc.issuer"},
		{"no audience", func(c *config.OIDC) { c.Audiences = nil }, "oidc.audiences"},
		{"trailing slash issuer", func(c *config.OIDC) { c.Issuer += "/" }, "discover OIDC issuer"},
		{"skew", func(c *config.OIDC) { c.ClockSkew = time.Hour }, "oidc.clock_skew"},
		{"missing mapping file", func(c *config.OIDC) { c.MappingFile = filepath.Join(dir, "nope.yaml") }, "read oidc.mapping_file"},
		{"mapping to root", func(c *config.OIDC) { c.MappingFile = write("root.yaml", "sub-x: root\n") }, `subject "sub-x": username "root" may not use the gateway`},
		{"mapping to bad name", func(c *config.OIDC) { c.MappingFile = write("bad.yaml", "sub-x: a;b\n") }, `not a valid Unix account name`},
		{"mapping not a map", func(c *config.OIDC) { c.MappingFile = write("list.yaml", "- a\n- b\n") }, "must be a map of subject: account"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := oidcConfig(p)
			tt.cfg(&cfg)
			_, err := auth.New(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestMappingFileWins(t *testing.T) {
	p := authtest.New(t)
	path := filepath.Join(t.TempDir(), "map.yaml")
	if err := os.WriteFile(path, []byte("# subject: account\nsub-dotdot: xavier\nsub-bob: robert\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := oidcConfig(p)
	cfg.MappingFile = path
	v := newVerifier(t, cfg)
	for sub, want := range map[string]string{"sub-dotdot": "xavier", "sub-bob": "robert", "sub-alice": "alice"} {
		id, code, msg := verify(v, p.AccessToken(t, sub))
		if code != "" || id.Username != want {
			t.Errorf("%s: got %q (%s %s), want %q", sub, id.Username, code, msg, want)
		}
	}
}

func TestAuditMiddleware(t *testing.T) {
	p := authtest.New(t)
	v := newVerifier(t, oidcConfig(p))
	var buf bytes.Buffer
	a := auth.NewAudit(slog.New(slog.NewJSONHandler(&buf, nil)))
	h := a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := v.Authenticate(r); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/api/training/execute" {
			auth.SetAuditJob(r.Context(), "job-42")
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	tok := p.AccessToken(t, "sub-alice")
	for _, req := range []struct{ method, path, tok string }{
		{http.MethodPost, "/api/training/execute", tok},
		{http.MethodGet, "/api/training/jobs", tok},
		{http.MethodDelete, "/api/training/jobs/7", "garbage"},
	} {
		r := httptest.NewRequest(req.method, req.path, nil)
		r.Header.Set("Authorization", "Bearer "+req.tok)
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		recs = append(recs, m)
	}
	if len(recs) != 2 {
		t.Fatalf("got %d audit records, want 2 (GET is not audited): %s", len(recs), buf.String())
	}
	want := []map[string]any{
		{"msg": "audit", "method": "POST", "path": "/api/training/execute", "job": "job-42", "status": 202.0, "result": "ok", "user": "alice", "subject": "sub-alice", "admin": false},
		{"msg": "audit", "method": "DELETE", "path": "/api/training/jobs/7", "status": 401.0, "result": "denied", "reason": "bearer token is not a JWT: opaque tokens are not accepted; send a JWT access token or ID token from the identity provider"},
	}
	for i, w := range want {
		for k, v := range w {
			if recs[i][k] != v {
				t.Errorf("record %d: %s = %v, want %v", i, k, recs[i][k], v)
			}
		}
	}
	if _, ok := recs[1]["user"]; ok {
		t.Errorf("refused request must not name a user: %v", recs[1])
	}
}
