package auth

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/ftgate/ftgate/internal/job"
)

// Cookie and header names of the dashboard's browser session.
const (
	// SessionCookie holds the sealed Session (HttpOnly, SameSite=Lax).
	SessionCookie = "ftgate_session"
	// CSRFHeader must carry the session's CSRF token on every state-changing request
	// made with the session cookie.
	CSRFHeader = "X-CSRF-Token"
)

// Session is what the sealed session cookie holds: the provider's ID token for the
// dashboard client (verified again on every request, so expiry, deny lists and the
// identity mapping apply exactly as to bearer tokens) and the CSRF token.
type Session struct {
	IDToken string `json:"t"`
	CSRF    string `json:"c"`
	// Expiry is the ID token's exp (Unix seconds).
	Expiry int64 `json:"e"`
}

// Sealer seals small values for cookies with AES-256-GCM; the purpose is bound as
// additional data, so a value sealed for one cookie does not open as another.
type Sealer struct{ aead cipher.AEAD }

// NewSealer returns a Sealer with key (32 bytes), or a random key when key is nil.
func NewSealer(key []byte) (*Sealer, error) {
	if key == nil {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("generate session key: %w", err)
		}
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("session key: want 32 bytes, got %d", len(key))
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("session key: %w", err)
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		return nil, fmt.Errorf("session key: %w", err)
	}
	return &Sealer{aead: a}, nil
}

// Seal encrypts v's JSON for purpose, as URL-safe base64.
func (s *Sealer) Seal(purpose string, v any) (string, error) {
	pt, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("seal %s: %w", purpose, err)
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal %s: %w", purpose, err)
	}
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, pt, []byte(purpose))), nil
}

// Open decrypts a value sealed for purpose into v.
func (s *Sealer) Open(purpose, sealed string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(b) < s.aead.NonceSize() {
		return fmt.Errorf("open %s: malformed", purpose)
	}
	n := s.aead.NonceSize()
	pt, err := s.aead.Open(nil, b[:n], b[n:], []byte(purpose))
	if err != nil {
		return fmt.Errorf("open %s: not sealed by this gateway", purpose)
	}
	if err := json.Unmarshal(pt, v); err != nil {
		return fmt.Errorf("open %s: %w", purpose, err)
	}
	return nil
}

// RandomToken returns 32 random bytes as URL-safe base64 (state, nonce, CSRF tokens,
// PKCE verifiers).
func RandomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Sessions authenticates browser requests by the session cookie. Its Verifier checks
// the ID token with the dashboard's client id as audience; identities map exactly as
// for bearer tokens.
type Sessions struct {
	Sealer   *Sealer
	Verifier *Verifier
	// Secure marks cookies Secure on every request (they are always Secure over TLS).
	Secure bool
}

// Start verifies the ID token of a completed login (including its nonce) and sets the
// session cookie. It returns the identity the token maps to.
func (s *Sessions) Start(ctx context.Context, w http.ResponseWriter, r *http.Request, rawIDToken, nonce string) (job.Identity, error) {
	id, err := s.Verifier.Verify(ctx, rawIDToken)
	if err != nil {
		return id, err
	}
	var c struct {
		Nonce  string      `json:"nonce"`
		Expiry json.Number `json:"exp"`
	}
	if err := unverifiedClaims(rawIDToken, &c); err != nil {
		return job.Identity{}, err
	}
	if nonce == "" || subtle.ConstantTimeCompare([]byte(c.Nonce), []byte(nonce)) != 1 {
		return job.Identity{}, job.Errorf(job.EUnauthorized, "login: the ID token's nonce does not match this login")
	}
	exp, err := numericDate(c.Expiry)
	if err != nil {
		return job.Identity{}, job.Errorf(job.EUnauthorized, "login: bad exp claim")
	}
	sess := Session{IDToken: rawIDToken, CSRF: RandomToken(), Expiry: exp.Unix()}
	v, err := s.Sealer.Seal(SessionCookie, sess)
	if err != nil {
		return job.Identity{}, err
	}
	s.SetCookie(w, r, &http.Cookie{Name: SessionCookie, Value: v, Path: "/", Expires: exp})
	return id, nil
}

// SetCookie sets c HttpOnly, SameSite=Lax, and Secure when configured or over TLS.
func (s *Sessions) SetCookie(w http.ResponseWriter, r *http.Request, c *http.Cookie) {
	c.HttpOnly = true
	c.SameSite = http.SameSiteLaxMode
	c.Secure = s.Secure || r.TLS != nil
	http.SetCookie(w, c)
}

// End clears the session cookie.
func (s *Sessions) End(w http.ResponseWriter, r *http.Request) {
	s.SetCookie(w, r, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1})
}

// Read returns the request's session, if its cookie opens.
func (s *Sessions) Read(r *http.Request) (Session, bool) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return Session{}, false
	}
	var sess Session
	if err := s.Sealer.Open(SessionCookie, c.Value, &sess); err != nil {
		return Session{}, false
	}
	return sess, true
}

// Authenticate implements api.Authenticator for cookie sessions: the cookie must open,
// its ID token must verify, and a state-changing request must carry the session's CSRF
// token in X-CSRF-Token and come from this origin.
func (s *Sessions) Authenticate(r *http.Request) (job.Identity, error) {
	id, _, err := s.authenticate(r)
	if err != nil {
		noteFailure(r.Context(), err)
		return job.Identity{}, err
	}
	noteIdentity(r.Context(), id)
	return id, nil
}

// Identify returns the identity and the session of a request's cookie, without the
// CSRF check (for read-only use such as the dashboard's session probe).
func (s *Sessions) Identify(r *http.Request) (job.Identity, Session, error) {
	sess, ok := s.Read(r)
	if !ok {
		return job.Identity{}, Session{}, job.Errorf(job.EUnauthorized, "not logged in")
	}
	id, err := s.Verifier.Verify(r.Context(), sess.IDToken)
	if err != nil {
		if job.ErrorCode(err) == job.EUnauthorized {
			return job.Identity{}, Session{}, job.Errorf(job.EUnauthorized, "your session has ended: log in again")
		}
		return job.Identity{}, Session{}, err
	}
	return id, sess, nil
}

func (s *Sessions) authenticate(r *http.Request) (job.Identity, Session, error) {
	id, sess, err := s.Identify(r)
	if err != nil {
		return id, sess, err
	}
	if !safeMethod(r.Method) {
		if err := CheckCSRF(r, sess); err != nil {
			return job.Identity{}, Session{}, err
		}
	}
	return id, sess, nil
}

// CheckCSRF refuses a state-changing request that lacks the session's CSRF token or
// comes from another origin (Origin or Sec-Fetch-Site).
func CheckCSRF(r *http.Request, sess Session) error {
	tok := r.Header.Get(CSRFHeader)
	if tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(sess.CSRF)) != 1 {
		return job.Errorf(job.EForbidden, "missing or wrong %s header: reload the page", CSRFHeader)
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return job.Errorf(job.EForbidden, "cross-site request refused")
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return job.Errorf(job.EForbidden, "request from origin %q refused", o)
		}
	}
	return nil
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// BearerOrSession authenticates by the Authorization header when the request has one
// (exactly as Bearer alone does), else by the session cookie when it has one.
type BearerOrSession struct {
	Bearer   *Verifier
	Sessions *Sessions
}

// Authenticate implements api.Authenticator.
func (b BearerOrSession) Authenticate(r *http.Request) (job.Identity, error) {
	if r.Header.Get("Authorization") == "" && b.Sessions != nil {
		if _, err := r.Cookie(SessionCookie); err == nil {
			return b.Sessions.Authenticate(r)
		}
	}
	return b.Bearer.Authenticate(r)
}

// unverifiedClaims decodes a JWT's payload; only for tokens already verified.
func unverifiedClaims(raw string, v any) error {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return errors.New("malformed token")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return fmt.Errorf("decode token payload: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode token payload: %w", err)
	}
	return nil
}
