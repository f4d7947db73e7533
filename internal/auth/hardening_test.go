package auth_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/ftgate/ftgate/internal/auth"
	"github.com/ftgate/ftgate/internal/auth/authtest"
	"github.com/ftgate/ftgate/internal/job"
)

// TestDenyListAlwaysHoldsRoot: configuring oidc.deny_users adds to the built-in list,
// it never replaces it (root, slurm and munge stay unmappable).
func TestDenyListAlwaysHoldsRoot(t *testing.T) {
	p := authtest.New(t)
	cfg := oidcConfig(p)
	cfg.DenyUsers = []string{"mallory"}
	v := newVerifier(t, cfg, auth.WithUIDLookup(func(string) (int, bool) { return 0, false }))
	for _, name := range []string{"root", "slurm", "munge", "mallory"} {
		c := p.Claims("sub-alice")
		c["preferred_username"] = name
		tok, err := p.Sign(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, code, msg := verify(v, tok); code != job.EForbidden {
			t.Errorf("%s: code %q (%s), want forbidden", name, code, msg)
		}
	}
	if _, code, msg := verify(v, p.AccessToken(t, "sub-alice")); code != "" {
		t.Errorf("alice refused: %s %s", code, msg)
	}
}

// TestMinUID: an account the gateway host knows with a UID below oidc.min_uid is a
// system account and refused; unknown accounts and ordinary UIDs pass.
func TestMinUID(t *testing.T) {
	p := authtest.New(t)
	cfg := oidcConfig(p)
	cfg.MinUID = 1000
	uids := map[string]int{"alice": 1001, "bob": 999}
	v := newVerifier(t, cfg, auth.WithUIDLookup(func(n string) (int, bool) { u, ok := uids[n]; return u, ok }))
	if _, code, msg := verify(v, p.AccessToken(t, "sub-alice")); code != "" {
		t.Errorf("alice (UID 1001) refused: %s %s", code, msg)
	}
	if _, code, msg := verify(v, p.AccessToken(t, "sub-bob")); code != job.EForbidden || !strings.Contains(msg, "UID 999") {
		t.Errorf("bob (UID 999): %q %q, want forbidden naming the UID", code, msg)
	}
	if _, code, msg := verify(v, p.AccessToken(t, "sub-admin")); code != "" {
		t.Errorf("admin (unknown on the gateway host) refused: %s %s", code, msg)
	}
}

// countingTransport counts requests whose path ends in suffix.
type countingTransport struct {
	suffix string
	n      atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, c.suffix) {
		c.n.Add(1)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestForgedTokensCostNoKeyFetches: tokens with the real issuer but unknown key ids
// refetch the provider's keys at most once per interval, and tokens whose cheap
// claims fail (issuer, audience, exp) fetch nothing.
func TestForgedTokensCostNoKeyFetches(t *testing.T) {
	p := authtest.New(t)
	ct := &countingTransport{suffix: "/keys"}
	v := newVerifier(t, oidcConfig(p), auth.WithHTTPClient(&http.Client{Transport: ct, Timeout: 5 * time.Second}))
	foreign, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	forge := func(i int, mod func(map[string]any)) string {
		c := p.Claims("sub-alice")
		if mod != nil {
			mod(c)
		}
		tok, err := authtest.SignWith(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: foreign, KeyID: fmt.Sprintf("forged-%d", i)}},
			(&jose.SignerOptions{}).WithType("JWT"), c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for i := 0; i < 20; i++ {
		for _, mod := range []func(map[string]any){
			func(c map[string]any) { c["iss"] = "http://127.0.0.1:1/other" },
			func(c map[string]any) { c["aud"] = "someone-else" },
			func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() },
		} {
			if _, code, _ := verify(v, forge(i, mod)); code != job.EUnauthorized {
				t.Fatalf("bad cheap claims: code %q", code)
			}
		}
	}
	if n := ct.n.Load(); n != 0 {
		t.Errorf("%d key fetches for 60 tokens with a wrong iss, aud or exp, want 0", n)
	}
	for i := 0; i < 50; i++ {
		if _, code, _ := verify(v, forge(i, nil)); code != job.EUnauthorized {
			t.Fatalf("forged kid: code %q", code)
		}
	}
	if n := ct.n.Load(); n > 2 {
		t.Errorf("%d key fetches for 50 tokens with unknown key ids, want at most 2", n)
	}
	// The real key still works (it verified before any forged one was rate-limited).
	if _, code, msg := verify(v, p.AccessToken(t, "sub-alice")); code != "" {
		t.Errorf("real token refused after the flood: %s %s", code, msg)
	}
}

// memPins is an in-memory Pinner.
type memPins struct{ m map[string]string }

func (p *memPins) PinAccount(_ context.Context, account, issuer, subject string) (string, error) {
	if o, ok := p.m[account]; ok {
		return o, nil
	}
	p.m[account] = subject
	return subject, nil
}

// TestSafeMapping: mapping_mode file maps only listed subjects; pin_accounts refuses a
// second subject for a pinned account; admin_claim picks the claim admin groups are
// matched on.
func TestSafeMapping(t *testing.T) {
	p := authtest.New(t)
	mf := filepath.Join(t.TempDir(), "map.yaml")
	if err := os.WriteFile(mf, []byte("sub-alice: alice\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := oidcConfig(p)
	cfg.MappingFile, cfg.MappingMode = mf, "file"
	v := newVerifier(t, cfg)
	if _, code, msg := verify(v, p.AccessToken(t, "sub-alice")); code != "" {
		t.Errorf("mapped alice refused: %s %s", code, msg)
	}
	if _, code, _ := verify(v, p.AccessToken(t, "sub-bob")); code != job.EForbidden {
		t.Errorf("unmapped bob in file mode: %q, want forbidden", code)
	}

	cfg = oidcConfig(p)
	cfg.PinAccounts = true
	v = newVerifier(t, cfg, auth.WithPinner(&memPins{m: map[string]string{}}))
	if _, code, msg := verify(v, p.AccessToken(t, "sub-alice")); code != "" {
		t.Fatalf("first use: %s %s", code, msg)
	}
	c := p.Claims("sub-bob")
	c["preferred_username"] = "alice" // bob renamed himself at the provider
	tok, _ := p.Sign(c, nil)
	if _, code, msg := verify(v, tok); code != job.EForbidden || !strings.Contains(msg, "pinned") {
		t.Errorf("second subject for alice: %q %q, want forbidden (pinned)", code, msg)
	}
	if _, err := auth.New(context.Background(), cfg); err == nil {
		t.Error("pin_accounts without a pin store accepted")
	}

	cfg = oidcConfig(p)
	cfg.AdminClaim = "roles"
	v = newVerifier(t, cfg)
	c = p.Claims("sub-bob")
	c["roles"] = []string{"ftgate-admins"}
	tok, _ = p.Sign(c, nil)
	if id, code, msg := verify(v, tok); code != "" || !id.Admin {
		t.Errorf("admin via roles: %+v %s %s", id, code, msg)
	}
	if id, _, _ := verify(v, p.AccessToken(t, "sub-admin")); id.Admin {
		t.Errorf("groups claim still grants admin with admin_claim roles")
	}
}
