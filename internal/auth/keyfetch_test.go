package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/ftgate/ftgate/internal/auth/authtest"
)

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// errReader fails every read, like a connection reset mid-body.
type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset by peer") }

// TestKeyFetchFailuresAreTyped: every way go-oidc's JWKS fetch fails reaches
// VerifySignature as errKeyFetch (503), told apart from a bad token by type, not by
// go-oidc's text; a token the fetched keys do not verify is not a fetch failure.
func TestKeyFetchFailuresAreTyped(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(k *rsa.PrivateKey) string {
		tok, err := authtest.SignWith(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: k, KeyID: "k1"}}, nil,
			map[string]any{"iss": "http://127.0.0.1:1", "sub": "s"})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good, forged := sign(key), sign(other)
	answer := func(code int, body string) roundTrip {
		return func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: code, Status: http.StatusText(code), Header: http.Header{"Content-Type": {"application/json"}},
				Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
		}
	}
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	for _, tc := range []struct {
		name      string
		transport roundTrip
		tok       string
		fetchErr  bool // want errKeyFetch
		ok        bool // want the payload
	}{
		{"keys served", answer(200, string(jwks)), good, false, true},
		{"no answer", func(*http.Request) (*http.Response, error) { return nil, errors.New("connection refused") }, good, true, false},
		{"status 500", answer(500, "oops"), good, true, false},
		{"status 404", answer(404, ""), good, true, false},
		{"not JSON", answer(200, "<html>maintenance</html>"), good, true, false},
		{"not a key set", answer(200, `{"keys": 5}`), good, true, false},
		{"exactly the size limit", answer(200, string(jwks)+strings.Repeat(" ", maxJWKS-len(jwks))), good, false, true},
		{"body cut off", func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: 200, Status: "200 OK", Body: io.NopCloser(io.MultiReader(strings.NewReader(string(jwks[:10])), errReader{})), Request: r}, nil
		}, good, true, false},
		{"over the size limit", answer(200, `{"keys":[],"pad":"`+strings.Repeat("x", maxJWKS)+`"}`), good, true, false},
		{"fetch outlives the caller", func(*http.Request) (*http.Response, error) { <-hang; return nil, errors.New("late") }, good, true, false},
		{"keys served, token forged", answer(200, string(jwks)), forged, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ks := newLimitedKeySet(context.Background(), "http://127.0.0.1:1/keys", &http.Client{Transport: tc.transport}, time.Now)
			ks.kids = map[string]bool{"k1": true} // the kid check passes: go-oidc's key set is what is tested
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			payload, err := ks.VerifySignature(ctx, tc.tok)
			if tc.ok != (err == nil && len(payload) > 0) || errors.Is(err, errKeyFetch) != tc.fetchErr {
				t.Errorf("VerifySignature = %q, %v; want ok %v, key fetch failure %v", payload, err, tc.ok, tc.fetchErr)
			}
		})
	}
}
