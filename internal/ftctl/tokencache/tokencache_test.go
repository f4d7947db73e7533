package tokencache

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/auth/authtest"
)

func TestTokenCacheRefusesWideMode(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestConcurrentRefresh: two ftctl processes refreshing at once spend the (rotating)
// refresh token once; both get the new token.
func TestConcurrentRefresh(t *testing.T) {
	t.Parallel()
	p := authtest.New(t)
	path := filepath.Join(t.TempDir(), "tokens.json")
	const server = "http://gw.example"
	s := &Session{Server: server, Issuer: p.Issuer, ClientID: authtest.ClientID, Scopes: authtest.Scopes(), TokenURL: p.OAuth2Config().Endpoint.TokenURL}
	s.SetToken(p.CodeLogin(t, "sub-alice"))
	if err := (&TokenCache{Path: path}).Save(s); err != nil {
		t.Fatal(err)
	}
	later := func() time.Time { return time.Now().Add(4*time.Minute + 30*time.Second) }
	// Hold the cache lock until all four have read the stale token and wait for it.
	unlock, err := (&TokenCache{Path: path}).lock()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	toks, errs := make([]string, 4), make([]error, 4)
	for i := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &TokenCache{Path: path, Now: later}
			toks[i], errs[i] = c.Token(context.Background(), server)
		}()
	}
	time.Sleep(300 * time.Millisecond)
	unlock()
	wg.Wait()
	if old, _ := s.Bearer(); toks[0] == "" || toks[0] == old {
		t.Fatalf("no refreshed token: %q", toks[0])
	}
	for i := range toks {
		if errs[i] != nil {
			t.Fatalf("refresh %d: %v", i, errs[i])
		}
		if toks[i] != toks[0] {
			t.Errorf("refresh %d got a different token: the refresh token was spent twice", i)
		}
	}
}
