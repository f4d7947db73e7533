// Package web serves the dashboard: the static front-end embedded from dist/ (built
// from web/ by `make web-build`), security headers on every page, and the login as a
// backend-for-frontend: the gateway runs the OIDC authorization code flow with PKCE,
// exchanges the code itself and keeps the session in a sealed HttpOnly cookie
// (internal/auth.Sessions). No token ever reaches the page's script.
package web

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/ftgate/ftgate/internal/auth"
	"github.com/ftgate/ftgate/internal/job"
)

//go:embed dist
var dist embed.FS

// ContentSecurityPolicy is sent with every response of the dashboard: scripts and
// styles only from this origin (no inline script), no framing.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// loginCookie carries the pending login (state, nonce, PKCE verifier, return path).
const loginCookie = "ftgate_login"

// pendingLogin is sealed into loginCookie between /auth/login and /auth/callback.
type pendingLogin struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Next     string `json:"r"`
}

// Config is what the dashboard needs.
type Config struct {
	// OAuth2 is the dashboard's client: ClientID, ClientSecret, RedirectURL, Scopes;
	// Endpoint is discovered by New when empty. A zero ClientID disables login.
	OAuth2 oauth2.Config
	// Issuer is the OIDC issuer (for discovery).
	Issuer string
	// Sessions verifies ID tokens (audience: the dashboard's client id) and sets cookies.
	Sessions *auth.Sessions
	// HTTPClient is used for discovery and the code exchange (default: 10 s timeout).
	HTTPClient *http.Client
	Log        *slog.Logger
}

// Handler serves the dashboard's pages, assets and /auth/* endpoints.
type Handler struct {
	cfg    Config
	files  fs.FS
	index  []byte
	etags  map[string]string
	gz     map[string][]byte // assets compressed once at start
	mux    *http.ServeMux
	client *http.Client
	// callbackPath is the redirect URL's path (the login cookie is scoped to it).
	callbackPath string
}

// New discovers the provider's endpoints (when login is configured) and returns the
// handler.
func New(ctx context.Context, cfg Config) (*Handler, error) {
	files, err := fs.Sub(dist, "dist")
	if err != nil {
		return nil, fmt.Errorf("web assets: %w", err)
	}
	return newHandler(ctx, cfg, files)
}

func newHandler(ctx context.Context, cfg Config, files fs.FS) (*Handler, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	h := &Handler{cfg: cfg, files: files, etags: map[string]string{}, gz: map[string][]byte{}, client: cfg.HTTPClient}
	if h.client == nil {
		h.client = &http.Client{Timeout: 10 * time.Second}
	}
	index, err := fs.ReadFile(files, "index.html")
	if err != nil {
		return nil, fmt.Errorf("web assets: %w (run make web-build)", err)
	}
	h.index = index
	if err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		h.etags[p] = `"` + hex.EncodeToString(sum[:8]) + `"`
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(b)
		if err := zw.Close(); err != nil {
			return err
		}
		h.gz[p] = buf.Bytes()
		return nil
	}); err != nil {
		return nil, fmt.Errorf("web assets: %w", err)
	}
	if cfg.OAuth2.ClientID != "" {
		if cfg.Sessions == nil {
			return nil, errors.New("web: login needs sessions")
		}
		if cfg.OAuth2.Endpoint.AuthURL == "" {
			dctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, h.client), 15*time.Second)
			defer cancel()
			p, err := oidc.NewProvider(dctx, cfg.Issuer)
			if err != nil {
				return nil, fmt.Errorf("discover OIDC issuer %s for the dashboard: %w", cfg.Issuer, err)
			}
			h.cfg.OAuth2.Endpoint = p.Endpoint()
		}
	}
	h.callbackPath = "/auth/callback"
	if u, err := url.Parse(cfg.OAuth2.RedirectURL); err == nil && u.Path != "" {
		h.callbackPath = u.Path
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /auth/login", h.login)
	mux.HandleFunc("GET "+h.callbackPath, h.callback)
	mux.HandleFunc("POST /auth/logout", h.logout)
	mux.HandleFunc("GET /auth/session", h.session)
	mux.HandleFunc("GET /assets/", h.asset)
	for _, p := range []string{"/{$}", "/jobs", "/jobs/{id}", "/submit", "/system", "/usage", "/webhooks", "/login"} {
		mux.HandleFunc("GET "+p, h.page)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, http.StatusNotFound, "Not found", "There is no page at "+r.URL.Path+".")
	})
	h.mux = mux
	return h, nil
}

// ServeHTTP sets the security headers and dispatches.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	SecurityHeaders(w.Header())
	h.mux.ServeHTTP(w, r)
}

// SecurityHeaders sets the headers every dashboard response carries.
func SecurityHeaders(hd http.Header) {
	hd.Set("Content-Security-Policy", ContentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
}

func (h *Handler) page(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(h.index)
}

var contentTypes = map[string]string{
	".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
	".svg": "image/svg+xml", ".map": "application/json", ".ico": "image/x-icon",
}

func (h *Handler) asset(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
	etag, ok := h.etags[name]
	ct := contentTypes[path.Ext(name)]
	if !ok || ct == "" {
		http.Error(w, "no such asset", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("ETag", etag)
	w.Header().Set("Vary", "Accept-Encoding")
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		w.Header().Set("Content-Encoding", "gzip")
		_, _ = w.Write(h.gz[name])
		return
	}
	b, err := fs.ReadFile(h.files, name)
	if err != nil {
		http.Error(w, "no such asset", http.StatusNotFound)
		return
	}
	_, _ = w.Write(b)
}

// safeNext returns p when it is a path on this site, else "/".
func safeNext(p string) string {
	bad := func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/auth/") || strings.ContainsFunc(p, bad) {
		return "/"
	}
	return p
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	if h.cfg.OAuth2.ClientID == "" {
		h.fail(w, http.StatusServiceUnavailable, "Login is not configured",
			"The gateway has no web.client_id: an administrator registers the dashboard with the identity provider (docs/config.md, section web).")
		return
	}
	p := pendingLogin{State: auth.RandomToken(), Nonce: auth.RandomToken(), Verifier: oauth2.GenerateVerifier(),
		Next: safeNext(r.URL.Query().Get("next"))}
	v, err := h.cfg.Sessions.Sealer.Seal(loginCookie, p)
	if err != nil {
		h.fail(w, http.StatusInternalServerError, "Login failed", err.Error())
		return
	}
	h.cfg.Sessions.SetCookie(w, r, &http.Cookie{Name: loginCookie, Value: v, Path: h.callbackPath, MaxAge: 600})
	http.Redirect(w, r, h.cfg.OAuth2.AuthCodeURL(p.State, oauth2.S256ChallengeOption(p.Verifier), oidc.Nonce(p.Nonce)), http.StatusFound)
}

func (h *Handler) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	c, err := r.Cookie(loginCookie)
	var p pendingLogin
	if err != nil || h.cfg.Sessions.Sealer.Open(loginCookie, c.Value, &p) != nil {
		h.fail(w, http.StatusBadRequest, "Login expired", "This login took too long or was started in another browser. Log in again.")
		return
	}
	h.cfg.Sessions.SetCookie(w, r, &http.Cookie{Name: loginCookie, Value: "", Path: h.callbackPath, MaxAge: -1})
	if e := q.Get("error"); e != "" {
		h.fail(w, http.StatusUnauthorized, "Login refused", "The identity provider said: "+e+" "+q.Get("error_description"))
		return
	}
	if q.Get("state") == "" || q.Get("state") != p.State {
		h.fail(w, http.StatusBadRequest, "Login failed", "The login's state does not match. Log in again.")
		return
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(r.Context(), h.client), 20*time.Second)
	defer cancel()
	tok, err := h.cfg.OAuth2.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(p.Verifier))
	if err != nil {
		h.cfg.Log.Info("dashboard login: code exchange failed", "err", err)
		h.fail(w, http.StatusBadGateway, "Login failed", "The identity provider did not accept the login code. Log in again.")
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		h.fail(w, http.StatusBadGateway, "Login failed", "The identity provider returned no ID token (is the openid scope requested?).")
		return
	}
	id, err := h.cfg.Sessions.Start(ctx, w, r, raw, p.Nonce)
	if err != nil {
		status := http.StatusUnauthorized
		if job.ErrorCode(err) == job.EForbidden {
			status = http.StatusForbidden
		}
		h.fail(w, status, "Login refused", job.ErrorMessage(err))
		return
	}
	h.cfg.Log.Info("dashboard login", "user", id.Username, "subject", id.Subject)
	http.Redirect(w, r, p.Next, http.StatusFound)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Sessions == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if sess, ok := h.cfg.Sessions.Read(r); ok {
		if err := auth.CheckCSRF(r, sess); err != nil {
			writeJSON(w, http.StatusForbidden, errorBody(job.EForbidden, job.ErrorMessage(err)))
			return
		}
	}
	h.cfg.Sessions.End(w, r)
	w.WriteHeader(http.StatusNoContent)
}

// sessionInfo is GET /auth/session: who is logged in and the CSRF token the page
// sends with state-changing requests.
type sessionInfo struct {
	LoginEnabled  bool      `json:"login_enabled"`
	Authenticated bool      `json:"authenticated"`
	Username      string    `json:"username,omitempty"`
	Admin         bool      `json:"admin,omitempty"`
	CSRFToken     string    `json:"csrf_token,omitempty"`
	ExpiresAt     time.Time `json:"expires_at,omitzero"`
	Reason        string    `json:"reason,omitempty"`
}

func (h *Handler) session(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	info := sessionInfo{LoginEnabled: h.cfg.OAuth2.ClientID != ""}
	if info.LoginEnabled {
		if _, has := h.cfg.Sessions.Read(r); has {
			id, sess, err := h.cfg.Sessions.Identify(r)
			if err != nil {
				info.Reason = job.ErrorMessage(err)
				h.cfg.Sessions.End(w, r)
			} else {
				info.Authenticated, info.Username, info.Admin = true, id.Username, id.Admin
				info.CSRFToken, info.ExpiresAt = sess.CSRF, time.Unix(sess.Expiry, 0).UTC()
			}
		}
	}
	writeJSON(w, http.StatusOK, info)
}

// fail renders a small error page (no script) with a way back.
func (h *Handler) fail(w http.ResponseWriter, status int, title, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>%[1]s · ftgate</title>`+
		`<link rel="stylesheet" href="/assets/app.css"></head><body><main class="page narrow"><h1>%[1]s</h1>`+
		`<p class="error-text" role="alert">%[2]s</p><p><a href="/auth/login">Log in</a> · <a href="/">Dashboard</a></p></main></body></html>`,
		html.EscapeString(title), html.EscapeString(msg))
}

func errorBody(code, msg string) map[string]any {
	return map[string]any{"error": map[string]string{"code": code, "message": msg}}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
