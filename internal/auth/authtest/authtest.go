// Package authtest runs a real OpenID provider (zitadel/oidc's op, over its example
// in-memory storage) inside go test, bound to 127.0.0.1. It issues real tokens through
// the device authorization grant, the authorization code grant with PKCE and the
// refresh grant, and can sign arbitrary claims with its own key for negative tests.
//
// The wrapper adds what the example storage lacks: JWT access tokens, profile claims
// and groups in tokens, Dex's `audience:server:client_id:<aud>` scope (adds <aud> to
// aud), key rotation and test-controlled approval.
package authtest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/oauth2"
	"golang.org/x/text/language"
)

// ClientID is the public client registered for ftctl; Audience is the API's
// identifier that the audience scope adds.
const (
	ClientID = "ftctl"
	Audience = "ftgate-api"
	// AudienceScopePrefix is Dex's scope prefix for cross-client audiences.
	AudienceScopePrefix = "audience:server:client_id:"
	password            = "secret"
)

// User is an account of the provider. ID is the token's sub.
type User struct {
	ID       string
	Username string // preferred_username; "" sets an empty claim
	Email    string
	Groups   []string
}

// DefaultUsers are alice, bob, admin (group ftgate-admins) and accounts whose
// usernames must be refused: root, ../x, a;b and an empty one.
var DefaultUsers = []User{
	{ID: "sub-alice", Username: "alice", Email: "alice@example.com", Groups: []string{"users"}},
	{ID: "sub-bob", Username: "bob", Email: "bob@example.com", Groups: []string{"users"}},
	{ID: "sub-admin", Username: "admin", Email: "admin@example.com", Groups: []string{"users", "ftgate-admins"}},
	{ID: "sub-root", Username: "root", Email: "root@example.com"},
	{ID: "sub-dotdot", Username: "../x", Email: "x@example.com"},
	{ID: "sub-semicolon", Username: "a;b", Email: "ab@example.com"},
	{ID: "sub-empty", Username: "", Email: "empty@example.com"},
}

// Provider is a running OpenID provider.
type Provider struct {
	Issuer string
	srv    *http.Server
	st     *store
	op     *op.Provider
}

// New starts a provider on 127.0.0.1 with DefaultUsers; it stops when t ends.
func New(t testing.TB) *Provider {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	issuer := "http://" + ln.Addr().String()
	users := &userStore{users: map[string]*User{}}
	for _, u := range DefaultUsers {
		users.users[u.ID] = &u
	}
	st := &store{
		Storage: storage.NewStorageWithClients(users, map[string]*storage.Client{ClientID: storage.NativeClient(ClientID)}),
		users:   users,
	}
	st.rotate()
	var key [32]byte
	_, _ = rand.Read(key[:])
	provider, err := op.NewProvider(&op.Config{
		CryptoKey:             key,
		CodeMethodS256:        true,
		AuthMethodPost:        true,
		GrantTypeRefreshToken: true,
		SupportedUILocales:    []language.Tag{language.English},
		DeviceAuthorization: op.DeviceAuthorizationConfig{
			Lifetime:     5 * time.Minute,
			PollInterval: time.Second,
			UserFormPath: "/device",
			UserCode:     op.UserCodeBase20,
		},
	}, st, op.StaticIssuer(issuer), op.WithAllowInsecure())
	if err != nil {
		t.Fatalf("new provider: %v", err)
	}
	p := &Provider{Issuer: issuer, st: st, op: provider}
	mux := http.NewServeMux()
	mux.Handle("/login", op.NewIssuerInterceptor(provider.IssuerFromRequest).Handler(http.HandlerFunc(p.login)))
	mux.Handle("/", provider)
	p.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	t.Cleanup(func() { _ = p.srv.Close() })
	return p
}

// OAuth2Config is ftctl's client configuration for this provider.
func (p *Provider) OAuth2Config(scopes ...string) *oauth2.Config {
	return &oauth2.Config{
		ClientID: ClientID,
		Endpoint: oauth2.Endpoint{
			AuthURL:       p.Issuer + "/authorize",
			TokenURL:      p.Issuer + "/oauth/token",
			DeviceAuthURL: p.Issuer + "/device_authorization",
			AuthStyle:     oauth2.AuthStyleInParams,
		},
		Scopes: scopes,
	}
}

// Scopes are the scopes ftctl asks for, including the API audience.
func Scopes() []string {
	return []string{"openid", "profile", "email", "groups", "offline_access", AudienceScopePrefix + Audience}
}

// Login runs the device authorization grant for the user with subject sub, approving
// it as that user, and returns the token response (the ID token is in Extra("id_token")).
func (p *Provider) Login(t testing.TB, sub string) *oauth2.Token {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conf := p.OAuth2Config(Scopes()...)
	da, err := conf.DeviceAuth(ctx)
	if err != nil {
		t.Fatalf("device auth: %v", err)
	}
	if err := p.Approve(da.UserCode, sub); err != nil {
		t.Fatal(err)
	}
	tok, err := conf.DeviceAccessToken(ctx, da)
	if err != nil {
		t.Fatalf("device access token: %v", err)
	}
	return tok
}

// AccessToken returns a fresh access token of the user with subject sub, from the
// authorization code grant with PKCE (faster than the device grant's polling).
func (p *Provider) AccessToken(t testing.TB, sub string) string {
	t.Helper()
	return p.CodeLogin(t, sub).AccessToken
}

// CodeLogin runs the authorization code grant with PKCE as the user with subject sub
// (passed as login_hint to the login page, which approves at once).
func (p *Provider) CodeLogin(t testing.TB, sub string) *oauth2.Token {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conf := p.OAuth2Config(Scopes()...)
	conf.RedirectURL = "http://127.0.0.1:1/callback" // never contacted: the redirect is intercepted
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("state-1", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("login_hint", sub))
	var code string
	c := &http.Client{Timeout: 20 * time.Second, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(r.URL.String(), conf.RedirectURL) {
			code = r.URL.Query().Get("code")
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
	resp.Body.Close()
	if code == "" {
		t.Fatalf("authorize as %s: no code (HTTP %d)", sub, resp.StatusCode)
	}
	tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange code: %v", err)
	}
	return tok
}

// Approve completes the pending device authorization with userCode as the user sub,
// as the user would in a browser.
func (p *Provider) Approve(userCode, sub string) error {
	if p.st.users.GetUserByID(sub) == nil {
		return fmt.Errorf("approve device code: no user %q", sub)
	}
	if err := p.st.CompleteDeviceAuthorization(context.Background(), userCode, sub); err != nil {
		return fmt.Errorf("approve device code %s: %w", userCode, err)
	}
	return nil
}

// SetBrowserUser selects who logs in when the authorization code flow's login page is
// visited without a login_hint (the page approves at once, like a browser with a
// session).
func (p *Provider) SetBrowserUser(sub string) {
	p.st.mu.Lock()
	p.st.browserUser = sub
	p.st.mu.Unlock()
}

// RevokeRefresh revokes a refresh token, as an admin or an expiry would.
func (p *Provider) RevokeRefresh(refreshToken string) {
	p.st.RevokeToken(context.Background(), refreshToken, "", ClientID)
}

// Rotate makes a new signing key current; the old one stays in the JWKS.
func (p *Provider) Rotate() { p.st.rotate() }

// Sign signs claims with the provider's current key (a well-signed token with any
// claims, e.g. expired or for another audience). header adds JOSE header fields.
func (p *Provider) Sign(claims map[string]any, header map[string]any) (string, error) {
	k := p.st.current()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	for name, v := range header {
		opts = opts.WithHeader(jose.HeaderKey(name), v)
	}
	return SignWith(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: k.key, KeyID: k.id}}, opts, claims)
}

// Claims returns a valid claim set for sub as the provider would issue it.
func (p *Provider) Claims(sub string) map[string]any {
	now := time.Now()
	c := map[string]any{
		"iss": p.Issuer, "sub": sub, "aud": []string{Audience, ClientID}, "azp": ClientID,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
	}
	if u := p.st.users.byID(sub); u != nil {
		for k, v := range userClaims(u, true) {
			c[k] = v
		}
	}
	return c
}

// SignWith signs claims with any key and options (for forged tokens).
func SignWith(key jose.SigningKey, opts *jose.SignerOptions, claims map[string]any) (string, error) {
	signer, err := jose.NewSigner(key, opts)
	if err != nil {
		return "", fmt.Errorf("new signer: %w", err)
	}
	jws, err := signer.Sign(mustJSON(claims))
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return jws.CompactSerialize()
}

func (p *Provider) login(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("authRequestID")
	p.st.mu.Lock()
	sub := p.st.browserUser
	p.st.mu.Unlock()
	if req, err := p.st.Storage.AuthRequestByID(r.Context(), id); err == nil && req.(*storage.AuthRequest).LoginHint != "" {
		sub = req.(*storage.AuthRequest).LoginHint
	}
	u := p.st.users.GetUserByID(sub)
	if u == nil {
		http.Error(w, "no browser user set (SetBrowserUser)", http.StatusForbidden)
		return
	}
	if err := p.st.CheckUsernamePassword(u.Username, password, id); err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	http.Redirect(w, r, op.AuthCallbackURL(p.op)(r.Context(), id), http.StatusFound)
}

type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *signingKey) Key() any                                    { return k.key }
func (k *signingKey) ID() string                                  { return k.id }

type publicKey struct{ k *signingKey }

func (k publicKey) ID() string                         { return k.k.id }
func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return &k.k.key.PublicKey }

// store wraps the example storage with what the tests need.
type store struct {
	*storage.Storage
	users       *userStore
	mu          sync.Mutex
	keys        []*signingKey // last is current
	browserUser string
}

func (s *store) rotate() {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append(s.keys, &signingKey{id: fmt.Sprintf("key-%d", len(s.keys)+1), key: key})
}

func (s *store) current() *signingKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[len(s.keys)-1]
}

func (s *store) SigningKey(context.Context) (op.SigningKey, error) { return s.current(), nil }

func (s *store) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *store) KeySet(context.Context) ([]op.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]op.Key, 0, len(s.keys))
	for _, k := range s.keys {
		out = append(out, publicKey{k})
	}
	return out, nil
}

func (s *store) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	if id != ClientID {
		return nil, fmt.Errorf("client %q not found", id)
	}
	return client{}, nil
}

func (s *store) AuthorizeClientIDSecret(_ context.Context, id, _ string) error {
	if id != ClientID {
		return fmt.Errorf("client %q not found", id)
	}
	return nil
}

// StoreDeviceAuthorization stores the request and adds the audience scopes' audiences.
func (s *store) StoreDeviceAuthorization(ctx context.Context, clientID, deviceCode, userCode string, expires time.Time, scopes []string) error {
	if err := s.Storage.StoreDeviceAuthorization(ctx, clientID, deviceCode, userCode, expires, scopes); err != nil {
		return err
	}
	state, err := s.GetDeviceAuthorizatonState(ctx, clientID, deviceCode)
	if err != nil {
		return err
	}
	state.Audience = audiences(scopes)
	return nil
}

func (s *store) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	r, err := s.Storage.AuthRequestByID(ctx, id)
	if err != nil {
		return nil, err
	}
	return audRequest{r.(*storage.AuthRequest)}, nil
}

func (s *store) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	r, err := s.Storage.AuthRequestByCode(ctx, code)
	if err != nil {
		return nil, err
	}
	return audRequest{r.(*storage.AuthRequest)}, nil
}

// CreateAccessAndRefreshTokens records the client id of device and code requests
// (the example storage loses it for them, which breaks the refresh grant).
func (s *store) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	if current == "" {
		if r, ok := req.(interface {
			GetClientID() string
			GetAuthTime() time.Time
			GetAMR() []string
		}); ok {
			req = storage.RefreshTokenRequestFromBusiness(&storage.RefreshToken{
				ApplicationID: r.GetClientID(), UserID: req.GetSubject(), Audience: req.GetAudience(),
				Scopes: req.GetScopes(), AuthTime: r.GetAuthTime(), AMR: r.GetAMR(),
			})
		}
	}
	return s.Storage.CreateAccessAndRefreshTokens(ctx, req, current)
}

// SetUserinfoFromRequest puts profile, email and groups claims into ID tokens.
func (s *store) SetUserinfoFromRequest(_ context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	u := s.users.byID(req.GetSubject())
	if u == nil {
		return fmt.Errorf("user %q not found", req.GetSubject())
	}
	info.Subject = u.ID
	for k, v := range userClaims(u, slices.Contains(scopes, "groups")) {
		info.AppendClaims(k, v)
	}
	return nil
}

// GetPrivateClaimsFromRequest puts the same claims into JWT access tokens.
func (s *store) GetPrivateClaimsFromRequest(_ context.Context, req op.TokenRequest, _ []string) (map[string]any, error) {
	u := s.users.byID(req.GetSubject())
	if u == nil {
		return nil, fmt.Errorf("user %q not found", req.GetSubject())
	}
	c := userClaims(u, slices.Contains(req.GetScopes(), "groups"))
	if r, ok := req.(interface{ GetClientID() string }); ok {
		c["azp"] = r.GetClientID()
	}
	return c, nil
}

func userClaims(u *User, groups bool) map[string]any {
	c := map[string]any{"preferred_username": u.Username, "email": u.Email, "email_verified": true}
	if groups {
		g := u.Groups
		if g == nil {
			g = []string{}
		}
		c["groups"] = g
	}
	return c
}

func audiences(scopes []string) []string {
	var out []string
	for _, sc := range scopes {
		if a, ok := strings.CutPrefix(sc, AudienceScopePrefix); ok && a != "" {
			out = append(out, a)
		}
	}
	return out
}

type audRequest struct{ *storage.AuthRequest }

func (r audRequest) GetAudience() []string {
	return append(audiences(r.Scopes), r.ApplicationID)
}

type userStore struct {
	users map[string]*User
}

func (u *userStore) byID(id string) *User { return u.users[id] }

func (u *userStore) GetUserByID(id string) *storage.User {
	x, ok := u.users[id]
	if !ok {
		return nil
	}
	return &storage.User{ID: x.ID, Username: x.Username, Password: password, Email: x.Email, EmailVerified: true}
}

func (u *userStore) GetUserByUsername(name string) *storage.User {
	for _, x := range u.users {
		if x.Username == name {
			return u.GetUserByID(x.ID)
		}
	}
	return nil
}

func (u *userStore) ExampleClientID() string { return "service" }

// client is ftctl: public, device + code + refresh grants, JWT access tokens.
type client struct{}

func (client) GetID() string                       { return ClientID }
func (client) RedirectURIs() []string              { return []string{"http://127.0.0.1/callback"} }
func (client) PostLogoutRedirectURIs() []string    { return nil }
func (client) ApplicationType() op.ApplicationType { return op.ApplicationTypeNative }
func (client) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodNone }
func (client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (client) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken, oidc.GrantTypeDeviceCode}
}
func (client) LoginURL(id string) string            { return "/login?authRequestID=" + id }
func (client) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeJWT }
func (client) IDTokenLifetime() time.Duration       { return time.Hour }
func (client) DevMode() bool                        { return false }
func (client) IsScopeAllowed(string) bool           { return true }
func (client) IDTokenUserinfoClaimsAssertion() bool { return true }
func (client) ClockSkew() time.Duration             { return 0 }
func (client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("marshal claims: %v", err)) // claims are plain maps built by tests
	}
	return b
}

// Unsigned returns a JWT with alg none and an empty signature.
func Unsigned(claims map[string]any) string {
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	return h + "." + base64.RawURLEncoding.EncodeToString(mustJSON(claims)) + "."
}

// HS256WithPublicKey forges the key-confusion token: HMAC-SHA256 keyed with the DER
// bytes of the provider's public key, which anyone can read from the JWKS.
func (p *Provider) HS256WithPublicKey(claims map[string]any) (string, error) {
	k := p.st.current()
	der, err := x509.MarshalPKIXPublicKey(&k.key.PublicKey)
	if err != nil {
		return "", fmt.Errorf("marshal public key: %w", err)
	}
	return SignWith(jose.SigningKey{Algorithm: jose.HS256, Key: der},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", k.id), claims)
}
