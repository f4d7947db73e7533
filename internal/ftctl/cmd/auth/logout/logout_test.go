package logout

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/tokencache"
)

// provider is a discovery document and, when revoke is set, a revocation endpoint.
type provider struct {
	srv    *httptest.Server
	revoke http.HandlerFunc
	form   url.Values
}

func newProvider(t *testing.T, revoke http.HandlerFunc) *provider {
	p := &provider{revoke: revoke}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			doc := map[string]any{"issuer": p.srv.URL, "token_endpoint": p.srv.URL + "/token", "jwks_uri": p.srv.URL + "/keys"}
			if p.revoke != nil {
				doc["revocation_endpoint"] = p.srv.URL + "/revoke"
			}
			_ = json.NewEncoder(w).Encode(doc)
		case "/revoke":
			if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
				http.Error(w, "want a form POST", http.StatusMethodNotAllowed)
				return
			}
			_ = r.ParseForm()
			p.form = r.PostForm
			p.revoke(w, r)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func TestLogoutRevokes(t *testing.T) {
	t.Parallel()
	ok := func(w http.ResponseWriter, r *http.Request) {}
	refused := func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
	}
	const gw = "http://gw.example"
	for _, tc := range []struct {
		name          string
		revoke        http.HandlerFunc // nil: no revocation_endpoint (like Dex)
		issuer        string           // "" is the provider
		refresh       string
		out, errOut   string
		wantRevokeReq bool
	}{
		{name: "revoked", revoke: ok, refresh: "r1", wantRevokeReq: true,
			out: "Logged out of " + gw + "; the identity provider revoked the refresh token.\n"},
		{name: "no revocation endpoint", refresh: "r1", out: "Logged out of " + gw + ".\n"},
		{name: "no refresh token", revoke: ok, out: "Logged out of " + gw + ".\n"},
		{name: "refused", revoke: refused, refresh: "r1", wantRevokeReq: true, out: "Logged out of " + gw + ".\n",
			errOut: "warning: could not revoke the refresh token at <issuer>: revocation endpoint answered 401: {\"error\":\"invalid_client\"}\n"},
		{name: "provider down", issuer: "http://127.0.0.1:1", refresh: "r1", out: "Logged out of " + gw + ".\n",
			errOut: "warning: could not revoke the refresh token at http://127.0.0.1:1: discover identity provider: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProvider(t, tc.revoke)
			issuer := tc.issuer
			if issuer == "" {
				issuer = p.srv.URL
			}
			cache := &tokencache.TokenCache{Path: filepath.Join(t.TempDir(), "tokens.json")}
			if err := cache.Save(&tokencache.Session{Server: gw, Issuer: issuer, ClientID: "ftctl", AccessToken: "a", RefreshToken: tc.refresh}); err != nil {
				t.Fatal(err)
			}
			var out, errOut bytes.Buffer
			opts := &LogoutOptions{IO: &cmdutil.IOStreams{Out: &out, ErrOut: &errOut}, Server: gw, Cache: cache, HTTPClient: http.DefaultClient}
			if err := runLogout(context.Background(), opts); err != nil {
				t.Fatal(err)
			}
			wantErr := strings.ReplaceAll(tc.errOut, "<issuer>", issuer)
			if out.String() != tc.out || !strings.HasPrefix(errOut.String(), wantErr) || (wantErr == "") != (errOut.Len() == 0) {
				t.Errorf("stdout %q stderr %q, want %q and %q", out.String(), errOut.String(), tc.out, wantErr)
			}
			if s, err := cache.Load(gw); s != nil || err != nil {
				t.Errorf("session kept after logout: %+v %v", s, err)
			}
			want := url.Values{"token": {"r1"}, "token_type_hint": {"refresh_token"}, "client_id": {"ftctl"}}
			if tc.wantRevokeReq != (p.form != nil) || (p.form != nil && p.form.Encode() != want.Encode()) {
				t.Errorf("revocation request %v, want %v (sent: %v)", p.form, want, tc.wantRevokeReq)
			}
		})
	}
}
