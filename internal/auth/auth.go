// Package auth verifies OIDC bearer tokens and maps them to a caller identity: the Unix
// account (from a configured claim, or a mapping file that wins over it), the groups and
// the admin role. It fails closed: a token that verifies but maps to no allowed account
// is refused with 403 and a reason.
package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/job"
)

// signingAlgs are the only algorithms accepted: asymmetric ones, never none or HMAC.
var signingAlgs = []string{
	oidc.RS256, oidc.RS384, oidc.RS512,
	oidc.ES256, oidc.ES384, oidc.ES512,
	oidc.PS256, oidc.PS384, oidc.PS512,
	oidc.EdDSA,
}

// acceptedTypes are the JWT typ headers accepted: ID tokens (none or JWT) and JWT
// access tokens (RFC 9068).
var acceptedTypes = []string{"", "jwt", "at+jwt", "application/at+jwt"}

// Verifier checks bearer tokens against one issuer and maps them to identities.
// It implements api.Authenticator.
type Verifier struct {
	cfg      config.OIDC
	verifier *oidc.IDTokenVerifier
	mapping  atomic.Pointer[map[string]string] // nil: no mapping file
	reload   mappingReload
	deny     map[string]bool
	pins     Pinner
	minUID   int
	uids     *uidCache
	now      func() time.Time
	log      *slog.Logger
}

// Option customizes New.
type Option func(*options)

type options struct {
	client *http.Client
	now    func() time.Time
	log    *slog.Logger
	uid    func(name string) (int, bool)
	pins   Pinner
	onLoad func(err error)
}

// Pinner pins a Unix account to the first subject that maps to it (oidc.pin_accounts);
// *postgres.Store implements it. It returns the owning subject.
type Pinner interface {
	PinAccount(ctx context.Context, account, issuer, subject string) (owner string, err error)
}

// WithPinner sets the account pin store (required with oidc.pin_accounts).
func WithPinner(p Pinner) Option { return func(o *options) { o.pins = p } }

// WithHTTPClient sets the client used for discovery and JWKS fetches.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.client = c } }

// WithClock sets the clock used for exp and nbf checks.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithUIDLookup replaces the gateway host's account lookup used for oidc.min_uid.
func WithUIDLookup(f func(name string) (uid int, ok bool)) Option {
	return func(o *options) { o.uid = f }
}

// WithMappingReloaded is called after each reload of the mapping file with its
// result (nil: the new mapping is in force; else the old one is kept), e.g. to count
// reloads in a metric.
func WithMappingReloaded(f func(err error)) Option { return func(o *options) { o.onLoad = f } }

// WithLogger sets the logger for refused tokens.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// New discovers the issuer's metadata (its JWKS URL) and returns a Verifier. The key
// set is fetched lazily and refetched when a token names an unknown key (rotation).
func New(ctx context.Context, cfg config.OIDC, opts ...Option) (*Verifier, error) {
	o := options{client: &http.Client{Timeout: 10 * time.Second}, now: time.Now, log: slog.Default(), uid: lookupUID}
	for _, f := range opts {
		f(&o)
	}
	if cfg.Issuer == "" {
		return nil, errors.New("config oidc.issuer: is required")
	}
	if len(cfg.Audiences) == 0 {
		return nil, errors.New("config oidc.audiences: needs at least one audience (the API's own identifier)")
	}
	if cfg.UsernameClaim == "" {
		cfg.UsernameClaim = "preferred_username"
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	if cfg.AdminClaim == "" {
		cfg.AdminClaim = cfg.GroupsClaim
	}
	if cfg.MappingMode == "" {
		cfg.MappingMode = "claim"
	}
	if cfg.MappingMode != "claim" && cfg.MappingMode != "file" {
		return nil, fmt.Errorf("config oidc.mapping_mode: must be claim or file, got %q", cfg.MappingMode)
	}
	if cfg.MappingMode == "file" && cfg.MappingFile == "" {
		return nil, errors.New("config oidc.mapping_mode: file needs oidc.mapping_file")
	}
	if cfg.PinAccounts && o.pins == nil {
		return nil, errors.New("config oidc.pin_accounts: needs the database (no pin store)")
	}
	if cfg.ClockSkew < 0 || cfg.ClockSkew > 10*time.Minute {
		return nil, fmt.Errorf("config oidc.clock_skew: must be between 0 and 10m, got %s", cfg.ClockSkew)
	}
	deny := map[string]bool{}
	for _, u := range DefaultDenyUsers {
		deny[u] = true
	}
	for _, u := range cfg.DenyUsers {
		deny[u] = true
	}
	if cfg.MinUID < 0 {
		return nil, fmt.Errorf("config oidc.min_uid: must be >= 0, got %d", cfg.MinUID)
	}
	if cfg.MinUID == 0 {
		cfg.MinUID = defaultMinUID
	}
	v := &Verifier{cfg: cfg, deny: deny, pins: o.pins, minUID: cfg.MinUID, now: o.now, log: o.log,
		uids: &uidCache{lookup: o.uid, now: o.now, m: map[string]uidEntry{}}, reload: mappingReload{onLoad: o.onLoad}}
	if cfg.MappingFile != "" {
		if err := v.loadMapping(); err != nil {
			return nil, err
		}
	}
	cctx := oidc.ClientContext(context.WithoutCancel(ctx), o.client)
	dctx, cancel := context.WithTimeout(cctx, 15*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(dctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("discover OIDC issuer %s: %w", cfg.Issuer, err)
	}
	var meta struct {
		JWKS string `json:"jwks_uri"`
	}
	if err := p.Claims(&meta); err != nil || meta.JWKS == "" {
		return nil, fmt.Errorf("discover OIDC issuer %s: no jwks_uri", cfg.Issuer)
	}
	keys := newLimitedKeySet(ctx, meta.JWKS, o.client, o.now)
	v.verifier = oidc.NewVerifier(cfg.Issuer, keys, &oidc.Config{
		SkipClientIDCheck:    true, // audiences are checked against the configured list below
		SkipExpiryCheck:      true, // exp and nbf are checked below with the configured skew
		SupportedSigningAlgs: signingAlgs,
	})
	return v, nil
}

// Authenticate implements api.Authenticator: it reads the bearer token of r, verifies
// it and maps it to an identity. Errors are *job.Error with code EUnauthorized (no or
// bad token), EForbidden (good token, no allowed account) or EUnavailable (the
// issuer's keys could not be fetched).
func (v *Verifier) Authenticate(r *http.Request) (job.Identity, error) {
	raw, err := BearerToken(r)
	if err == nil {
		var id job.Identity
		id, err = v.Verify(r.Context(), raw)
		if err == nil {
			noteIdentity(r.Context(), id)
			return id, nil
		}
	}
	noteFailure(r.Context(), err)
	v.log.Info("authentication refused", "method", r.Method, "path", r.URL.Path,
		"remote", r.RemoteAddr, "code", job.ErrorCode(err), "reason", job.ErrorMessage(err))
	return job.Identity{}, err
}

// BearerToken returns the token of an "Authorization: Bearer <token>" header.
func BearerToken(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", job.Errorf(job.EUnauthorized, "missing Authorization header: send Authorization: Bearer <token> (ftctl auth token prints one)")
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", job.Errorf(job.EUnauthorized, "Authorization header must use the Bearer scheme")
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", job.Errorf(job.EUnauthorized, "empty bearer token")
	}
	return tok, nil
}

// claims are the standard claims checked beyond what go-oidc checks.
type claims struct {
	Subject  string       `json:"sub"`
	Expiry   *json.Number `json:"exp"`
	NotBef   *json.Number `json:"nbf"`
	AZP      string       `json:"azp"`
	ClientID string       `json:"client_id"`
	Email    string       `json:"email"`
}

// Verify checks raw (signature, issuer, audience, exp, nbf, authorized party) and maps
// its claims to an identity. The cheap claims (iss, aud, exp) are checked before the
// signature, so a forged token costs no key lookup.
func (v *Verifier) Verify(ctx context.Context, raw string) (job.Identity, error) {
	if err := precheck(raw); err != nil {
		return job.Identity{}, err
	}
	if err := v.cheapClaims(raw); err != nil {
		return job.Identity{}, err
	}
	vctx, slot := withErrSlot(ctx)
	tok, err := v.verifier.Verify(vctx, raw)
	if err != nil {
		if slot.err != nil {
			err = slot.err
		}
		var je *job.Error
		switch {
		case errors.As(err, &je):
			return job.Identity{}, je
		case errors.Is(err, errKeyFetch):
			return job.Identity{}, &job.Error{Code: job.EUnavailable, Message: "cannot fetch the identity provider's signing keys; retry later", Err: err}
		}
		return job.Identity{}, &job.Error{Code: job.EUnauthorized, Message: "invalid token: " + strings.TrimPrefix(err.Error(), "oidc: "), Err: err}
	}
	var c claims
	var all map[string]any
	if err := tok.Claims(&c); err != nil {
		return job.Identity{}, &job.Error{Code: job.EUnauthorized, Message: "invalid token claims", Err: err}
	}
	if err := tok.Claims(&all); err != nil {
		return job.Identity{}, &job.Error{Code: job.EUnauthorized, Message: "invalid token claims", Err: err}
	}
	if err := v.checkTimes(c); err != nil {
		return job.Identity{}, err
	}
	if !slices.ContainsFunc(tok.Audience, func(a string) bool { return slices.Contains(v.cfg.Audiences, a) }) {
		return job.Identity{}, job.Errorf(job.EUnauthorized, "invalid token: audience %q does not include this API (%s)",
			tok.Audience, strings.Join(v.cfg.Audiences, ", "))
	}
	if len(v.cfg.AllowedClients) > 0 {
		client := c.AZP
		if client == "" {
			client = c.ClientID
		}
		if client == "" && len(tok.Audience) == 1 {
			client = tok.Audience[0]
		}
		if !slices.Contains(v.cfg.AllowedClients, client) {
			return job.Identity{}, job.Errorf(job.EUnauthorized, "invalid token: client %q is not allowed", client)
		}
	}
	return v.identity(ctx, c.Subject, c.Email, all)
}

// precheck rejects what is not a signed JWT with a clear reason before verification.
func precheck(raw string) error {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return job.Errorf(job.EUnauthorized, "bearer token is not a JWT: opaque tokens are not accepted; send a JWT access token or ID token from the identity provider")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return job.Errorf(job.EUnauthorized, "malformed token: bad JOSE header encoding")
	}
	var h struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return job.Errorf(job.EUnauthorized, "malformed token: bad JOSE header")
	}
	if !slices.Contains(signingAlgs, h.Alg) {
		return job.Errorf(job.EUnauthorized, "invalid token: signing algorithm %q is not accepted", h.Alg)
	}
	if !slices.Contains(acceptedTypes, strings.ToLower(h.Typ)) {
		return job.Errorf(job.EUnauthorized, "invalid token: token type %q is not accepted", h.Typ)
	}
	return nil
}

// cheapClaims checks iss, aud and exp of the unverified payload: a token failing them
// is refused before any signature or key work. The same checks run again on the
// verified claims.
func (v *Verifier) cheapClaims(raw string) error {
	parts := strings.Split(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return job.Errorf(job.EUnauthorized, "malformed token: bad payload encoding")
	}
	var c struct {
		Issuer   string          `json:"iss"`
		Audience json.RawMessage `json:"aud"`
		Expiry   *json.Number    `json:"exp"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return job.Errorf(job.EUnauthorized, "malformed token: bad payload")
	}
	if c.Issuer != v.cfg.Issuer {
		return job.Errorf(job.EUnauthorized, "invalid token: issued by a different provider (iss %q, want %q)", c.Issuer, v.cfg.Issuer)
	}
	var auds []string
	var one string
	if json.Unmarshal(c.Audience, &one) == nil {
		auds = []string{one}
	} else if json.Unmarshal(c.Audience, &auds) != nil {
		return job.Errorf(job.EUnauthorized, "invalid token: bad aud claim")
	}
	if !slices.ContainsFunc(auds, func(a string) bool { return slices.Contains(v.cfg.Audiences, a) }) {
		return job.Errorf(job.EUnauthorized, "invalid token: audience %q does not include this API (%s)", auds, strings.Join(v.cfg.Audiences, ", "))
	}
	return v.checkTimes(claims{Expiry: c.Expiry})
}

func (v *Verifier) checkTimes(c claims) error {
	now := v.now()
	skew := v.cfg.ClockSkew
	if c.Expiry == nil {
		return job.Errorf(job.EUnauthorized, "invalid token: no exp claim")
	}
	exp, err := numericDate(*c.Expiry)
	if err != nil {
		return job.Errorf(job.EUnauthorized, "invalid token: bad exp claim")
	}
	if now.After(exp.Add(skew)) {
		return job.Errorf(job.EUnauthorized, "token expired at %s: log in again (ftctl auth login)", exp.UTC().Format(time.RFC3339))
	}
	if c.NotBef != nil {
		nbf, err := numericDate(*c.NotBef)
		if err != nil {
			return job.Errorf(job.EUnauthorized, "invalid token: bad nbf claim")
		}
		if now.Add(skew).Before(nbf) {
			return job.Errorf(job.EUnauthorized, "token not valid before %s", nbf.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

func numericDate(n json.Number) (time.Time, error) {
	f, err := n.Float64()
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(int64(f), 0), nil
}

// identity maps verified claims to an identity, failing closed with 403.
func (v *Verifier) identity(ctx context.Context, sub, email string, all map[string]any) (job.Identity, error) {
	if sub == "" {
		return job.Identity{}, job.Errorf(job.EForbidden, "token has no sub claim")
	}
	var user string
	var mapping map[string]string
	if m := v.mapping.Load(); m != nil {
		mapping = *m
	}
	if m, ok := mapping[sub]; ok {
		user = m
	} else if v.cfg.MappingMode == "file" {
		return job.Identity{}, job.Errorf(job.EForbidden, "your subject is not in the gateway's account mapping; ask an admin to map it")
	} else {
		val, present := all[v.cfg.UsernameClaim]
		if !present {
			return job.Identity{}, job.Errorf(job.EForbidden, "token has no %s claim to name your Unix account; ask an admin to map your subject", v.cfg.UsernameClaim)
		}
		s, ok := val.(string)
		if !ok {
			return job.Identity{}, job.Errorf(job.EForbidden, "claim %s is not a string", v.cfg.UsernameClaim)
		}
		user = s
	}
	if err := v.CheckUsername(user); err != nil {
		return job.Identity{}, err
	}
	if v.cfg.PinAccounts {
		owner, err := v.pins.PinAccount(ctx, user, v.cfg.Issuer, sub)
		if err != nil {
			return job.Identity{}, &job.Error{Code: job.EUnavailable, Message: "cannot check the account pin; retry later", Err: err}
		}
		if owner != sub {
			return job.Identity{}, job.Errorf(job.EForbidden, "account %q belongs to another identity (pinned on first use); ask an admin", user)
		}
	}
	groups := stringList(all[v.cfg.GroupsClaim])
	adminVals := stringList(all[v.cfg.AdminClaim])
	admin := slices.ContainsFunc(adminVals, func(g string) bool { return slices.Contains(v.cfg.AdminGroups, g) })
	return job.Identity{Subject: sub, Username: user, Email: email, Groups: groups, Admin: admin}, nil
}

// CheckUsername returns a 403 *job.Error unless name is an allowed Unix account: it
// matches UsernamePattern, is not denied (DefaultDenyUsers, oidc.deny_users, the
// clusters' probe and service accounts) and, when the gateway host knows it, its UID
// is at least oidc.min_uid.
func (v *Verifier) CheckUsername(name string) error {
	if err := checkUsername(name, v.deny); err != nil {
		return err
	}
	if uid, ok := v.uids.get(name); ok && uid < v.minUID {
		return job.Errorf(job.EForbidden, "username %q is a system account (UID %d below %d) and may not use the gateway", name, uid, v.minUID)
	}
	return nil
}

func checkUsername(name string, deny map[string]bool) error {
	if name == "" {
		return job.Errorf(job.EForbidden, "the token's username is empty")
	}
	if !job.ValidUser(name) {
		return job.Errorf(job.EForbidden, "username %q is not a valid Unix account name (must match %s)", name, job.UserRE)
	}
	if deny[name] {
		return job.Errorf(job.EForbidden, "username %q may not use the gateway", name)
	}
	return nil
}

// stringList reads a claim that is a list of strings or one string; anything else is
// no groups (so no admin role).
func stringList(v any) []string {
	switch t := v.(type) {
	case string:
		return []string{t}
	case []any:
		out := make([]string, 0, len(t))
		for _, e := range t {
			s, ok := e.(string)
			if !ok {
				return nil
			}
			out = append(out, s)
		}
		return out
	}
	return nil
}
