package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/ftgate/ftgate/internal/job"
)

// errKeyFetch: the provider's key set could not be fetched.
var errKeyFetch = errors.New("cannot fetch the signing keys")

// keyRefetchEvery is the least time between two fetches of the provider's key ids
// caused by tokens naming a key id the gateway does not know.
const keyRefetchEvery = 10 * time.Second

// limitedKeySet wraps the provider's remote key set. It keeps the key ids the JWKS
// lists; a token naming another id refreshes that list, but after a refresh that did
// not list the wanted id, tokens with unlisted ids are refused at once for
// keyRefetchEvery, before go-oidc's key set (which refetches on every unknown id) sees
// them. A real key rotation costs one refresh; a flood of forged key ids costs at most
// one fetch per interval (and delays a rotation that happens during it by as much).
type limitedKeySet struct {
	inner  oidc.KeySet
	url    string
	client *http.Client
	now    func() time.Time

	mu       sync.Mutex
	kids     map[string]bool
	lastMiss time.Time // the last refresh that did not list the wanted id
}

// errSlot carries the key set's typed error past go-oidc, which flattens it to text.
type errSlot struct{ err error }

type errSlotKey struct{}

func withErrSlot(ctx context.Context) (context.Context, *errSlot) {
	s := &errSlot{}
	return context.WithValue(ctx, errSlotKey{}, s), s
}

func (k *limitedKeySet) fail(ctx context.Context, err error) ([]byte, error) {
	if s, ok := ctx.Value(errSlotKey{}).(*errSlot); ok {
		s.err = err
	}
	return nil, err
}

func (k *limitedKeySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	kid := headerKID(jwt)
	if err := k.checkKID(ctx, kid); err != nil {
		return k.fail(ctx, err)
	}
	payload, err := k.inner.VerifySignature(ctx, jwt)
	if keyFetchFailed(err) {
		return k.fail(ctx, fmt.Errorf("%w: %w", errKeyFetch, err))
	}
	return payload, err
}

// keyFetchFailed reports whether go-oidc's key set failed to fetch the keys, not to
// verify the token: jwksTransport's *keyFetchError, or the caller's context ending
// while it waited for the fetch (go-oidc wraps both with %w, so no text is matched).
func keyFetchFailed(err error) bool {
	var fe *keyFetchError
	return errors.As(err, &fe) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// maxJWKS bounds a JWKS document read by the gateway (both key id lists and go-oidc's
// key set).
const maxJWKS = 1 << 20

// newLimitedKeySet wraps go-oidc's remote key set for jwksURL, whose fetches go
// through client's transport wrapped in jwksTransport.
func newLimitedKeySet(ctx context.Context, jwksURL string, client *http.Client, now func() time.Time) *limitedKeySet {
	kc := *client
	kc.Transport = jwksTransport{next: client.Transport}
	inner := oidc.NewRemoteKeySet(oidc.ClientContext(context.WithoutCancel(ctx), &kc), jwksURL)
	return &limitedKeySet{inner: inner, url: jwksURL, client: client, now: now}
}

// keyFetchError is a failed fetch of the JWKS by go-oidc's key set, as jwksTransport
// saw it.
type keyFetchError struct{ err error }

func (e *keyFetchError) Error() string { return "fetch jwks: " + e.err.Error() }
func (e *keyFetchError) Unwrap() error { return e.err }

// jwksTransport is the transport of go-oidc's key set. go-oidc reports most ways a
// fetch fails only as text ("oidc: get keys failed: 500 ...", "failed to decode
// keys"), but wraps the HTTP client's error with %w; so every failure is made a
// *keyFetchError here: no answer, a status other than 200 (redirects are left to the
// client), a body that cannot be read, is over maxJWKS or is not a JSON key set.
// go-oidc then gets a body it can decode (unless a single key is malformed).
type jwksTransport struct{ next http.RoundTripper }

func (t jwksTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	next := t.next
	if next == nil {
		next = http.DefaultTransport
	}
	resp, err := next.RoundTrip(r)
	if err != nil {
		return nil, &keyFetchError{err}
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return resp, nil
	default:
		resp.Body.Close()
		return nil, &keyFetchError{fmt.Errorf("status %s", resp.Status)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKS+1))
	resp.Body.Close()
	switch {
	case err != nil:
		return nil, &keyFetchError{fmt.Errorf("read body: %w", err)}
	case len(body) > maxJWKS:
		return nil, &keyFetchError{fmt.Errorf("body over %d bytes", maxJWKS)}
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, &keyFetchError{fmt.Errorf("decode: %w", err)}
	}
	resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	return resp, nil
}

// checkKID refuses key ids the provider does not list, refreshing the list when the
// last refresh is older than keyRefetchEvery. A token without kid is passed on (a
// provider with one key may omit it).
func (k *limitedKeySet) checkKID(ctx context.Context, kid string) error {
	if kid == "" {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.kids[kid] {
		return nil
	}
	if !k.lastMiss.IsZero() && k.now().Sub(k.lastMiss) < keyRefetchEvery {
		return job.Errorf(job.EUnauthorized, "invalid token: unknown signing key %q", kid)
	}
	kids, err := k.fetchKIDs(ctx)
	if err != nil {
		k.lastMiss = k.now()
		return fmt.Errorf("%w: %w", errKeyFetch, err)
	}
	k.kids = kids
	if !kids[kid] {
		k.lastMiss = k.now()
		return job.Errorf(job.EUnauthorized, "invalid token: unknown signing key %q", kid)
	}
	return nil
}

// fetchKIDs reads the key ids of the provider's JWKS (at most 1 MiB).
func (k *limitedKeySet) fetchKIDs(ctx context.Context) (map[string]bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch jwks: status %s", resp.Status)
	}
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxJWKS)).Decode(&set); err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	kids := map[string]bool{}
	for _, key := range set.Keys {
		kids[key.KID] = true
	}
	return kids, nil
}

func headerKID(jwt string) string {
	h, _, _ := strings.Cut(jwt, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return ""
	}
	var hdr struct {
		KID string `json:"kid"`
	}
	_ = json.Unmarshal(b, &hdr)
	return hdr.KID
}
