package auth_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/auth"
	"github.com/ftgate/ftgate/internal/auth/authtest"
	"github.com/ftgate/ftgate/internal/job"
)

// sessionFixture is a dashboard session setup: a provider, a Sessions whose verifier
// takes the dashboard client's ID tokens, and helpers to mint and seal tokens.
type sessionFixture struct {
	p  *authtest.Provider
	s  *auth.Sessions
	bo auth.BearerOrSession
}

func newSessions(t *testing.T) *sessionFixture {
	t.Helper()
	p := authtest.New(t)
	cfg := oidcConfig(p)
	cfg.Audiences = []string{authtest.ClientID}
	sealer, err := auth.NewSealer(nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &auth.Sessions{Sealer: sealer, Verifier: newVerifier(t, cfg)}
	return &sessionFixture{p: p, s: s, bo: auth.BearerOrSession{Bearer: newVerifier(t, oidcConfig(p)), Sessions: s}}
}

// idToken signs an ID token for sub with extra claims (nil values delete a claim).
func (f *sessionFixture) idToken(t *testing.T, sub string, extra map[string]any) string {
	t.Helper()
	c := f.p.Claims(sub)
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	tok, err := f.p.Sign(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// cookie seals a session for sub with the CSRF token csrf.
func (f *sessionFixture) cookie(t *testing.T, sub, csrf string) *http.Cookie {
	t.Helper()
	v, err := f.s.Sealer.Seal(auth.SessionCookie, auth.Session{IDToken: f.idToken(t, sub, nil), CSRF: csrf, Expiry: time.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	return &http.Cookie{Name: auth.SessionCookie, Value: v}
}

func TestNewSealerKeys(t *testing.T) {
	tests := []struct {
		name string
		key  []byte
		ok   bool
	}{
		{"random", nil, true},
		{"32 bytes", bytes.Repeat([]byte{7}, 32), true},
		{"31 bytes", bytes.Repeat([]byte{7}, 31), false},
		{"33 bytes", bytes.Repeat([]byte{7}, 33), false},
		{"16 bytes (AES-128 is not accepted)", bytes.Repeat([]byte{7}, 16), false},
		{"empty", []byte{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := auth.NewSealer(tt.key)
			if (err == nil) != tt.ok {
				t.Fatalf("NewSealer(%d bytes): err %v, want ok=%v", len(tt.key), err, tt.ok)
			}
			if err != nil {
				if !strings.Contains(err.Error(), "32 bytes") {
					t.Errorf("error %q does not say the key must be 32 bytes", err)
				}
				return
			}
			v, err := s.Seal("p", "x")
			if err != nil {
				t.Fatal(err)
			}
			var got string
			if err := s.Open("p", v, &got); err != nil || got != "x" {
				t.Fatalf("round trip: %q, %v", got, err)
			}
		})
	}
	// Two random keys differ: a value sealed under one does not open under the other.
	a, _ := auth.NewSealer(nil)
	b, _ := auth.NewSealer(nil)
	v, _ := a.Seal("p", "x")
	var got string
	if err := b.Open("p", v, &got); err == nil {
		t.Error("two random keys are the same")
	}
}

func TestSealOpen(t *testing.T) {
	key := bytes.Repeat([]byte{1}, 32)
	s, _ := auth.NewSealer(key)
	same, _ := auth.NewSealer(bytes.Repeat([]byte{1}, 32))
	other, _ := auth.NewSealer(bytes.Repeat([]byte{2}, 32))
	want := auth.Session{IDToken: "a.b.c", CSRF: "csrf", Expiry: 1234}
	sealed, err := s.Seal(auth.SessionCookie, want)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := s.Seal(auth.SessionCookie, want)
	if again == sealed {
		t.Error("two seals of one value are equal: the nonce is not random")
	}
	if strings.ContainsAny(sealed, "+/=") {
		t.Errorf("sealed value %q is not raw URL-safe base64", sealed)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(sealed)
	if bytes.Contains(raw, []byte("csrf")) || bytes.Contains(raw, []byte("a.b.c")) {
		t.Error("sealed value holds the plaintext")
	}
	flip := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 1
		return base64.RawURLEncoding.EncodeToString(b)
	}
	tests := []struct {
		name    string
		sealer  *auth.Sealer
		purpose string
		value   string
		err     string // "" opens
	}{
		{"same sealer", s, auth.SessionCookie, sealed, ""},
		{"same key in another sealer", same, auth.SessionCookie, sealed, ""},
		{"other key", other, auth.SessionCookie, sealed, "not sealed by this gateway"},
		{"other purpose", s, "ftgate_login", sealed, "not sealed by this gateway"},
		{"nonce flipped", s, auth.SessionCookie, flip(0), "not sealed by this gateway"},
		{"ciphertext flipped", s, auth.SessionCookie, flip(len(raw) / 2), "not sealed by this gateway"},
		{"tag flipped", s, auth.SessionCookie, flip(len(raw) - 1), "not sealed by this gateway"},
		{"truncated", s, auth.SessionCookie, base64.RawURLEncoding.EncodeToString(raw[:len(raw)-1]), "not sealed by this gateway"},
		{"nonce only", s, auth.SessionCookie, base64.RawURLEncoding.EncodeToString(raw[:12]), "not sealed by this gateway"},
		{"shorter than a nonce", s, auth.SessionCookie, base64.RawURLEncoding.EncodeToString(raw[:11]), "malformed"},
		{"empty", s, auth.SessionCookie, "", "malformed"},
		{"not base64", s, auth.SessionCookie, "%%%" + sealed, "malformed"},
		{"padded base64", s, auth.SessionCookie, base64.URLEncoding.EncodeToString(raw), "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got auth.Session
			err := tt.sealer.Open(tt.purpose, tt.value, &got)
			if tt.err == "" {
				if err != nil || got != want {
					t.Fatalf("Open: %+v, %v; want %+v", got, err, want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("Open: err %v, want it to say %q", err, tt.err)
			}
			if got != (auth.Session{}) {
				t.Errorf("Open failed but filled %+v", got)
			}
		})
	}
	// A sealed value of another shape opens but does not decode.
	str, _ := s.Seal(auth.SessionCookie, "a string")
	var got auth.Session
	if err := s.Open(auth.SessionCookie, str, &got); err == nil {
		t.Error("a sealed string decoded as a Session")
	}
	// A value that cannot be marshalled is refused by Seal.
	if _, err := s.Seal("p", func() {}); err == nil {
		t.Error("Seal of a func succeeded")
	}
}

func TestRandomToken(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		tok := auth.RandomToken()
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(b) != 32 {
			t.Fatalf("RandomToken %q: %d bytes, %v", tok, len(b), err)
		}
		if bytes.Equal(b, make([]byte, 32)) || seen[tok] {
			t.Fatalf("RandomToken %q is zero or repeated", tok)
		}
		seen[tok] = true
	}
}

// setCookies returns the cookies a response sets.
func setCookies(rec *httptest.ResponseRecorder) []*http.Cookie {
	return (&http.Response{Header: rec.Header()}).Cookies()
}

func TestCookieAttributes(t *testing.T) {
	sealer, _ := auth.NewSealer(nil)
	tests := []struct {
		name   string
		secure bool // Sessions.Secure
		tls    bool // the request came over TLS
		want   bool // the cookie is Secure
	}{
		{"plain http", false, false, false},
		{"tls", false, true, true},
		{"configured secure", true, false, true},
		{"configured secure over tls", true, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &auth.Sessions{Sealer: sealer, Secure: tt.secure}
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			check := func(what string, c *http.Cookie) {
				t.Helper()
				if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure != tt.want {
					t.Errorf("%s: HttpOnly %v SameSite %v Secure %v; want HttpOnly, Lax, Secure %v", what, c.HttpOnly, c.SameSite, c.Secure, tt.want)
				}
			}
			rec := httptest.NewRecorder()
			s.SetCookie(rec, r, &http.Cookie{Name: "x", Value: "v", Path: "/", HttpOnly: false, SameSite: http.SameSiteNoneMode, Secure: !tt.want})
			cs := setCookies(rec)
			if len(cs) != 1 || cs[0].Name != "x" || cs[0].Value != "v" {
				t.Fatalf("SetCookie set %v", cs)
			}
			check("SetCookie", cs[0])

			rec = httptest.NewRecorder()
			s.End(rec, r)
			cs = setCookies(rec)
			if len(cs) != 1 {
				t.Fatalf("End set %v", cs)
			}
			c := cs[0]
			if c.Name != auth.SessionCookie || c.Value != "" || c.Path != "/" || c.MaxAge >= 0 {
				t.Errorf("End: cookie %q=%q path %q MaxAge %d; want %s cleared on / with MaxAge<0", c.Name, c.Value, c.Path, c.MaxAge, auth.SessionCookie)
			}
			if !strings.Contains(rec.Header().Get("Set-Cookie"), "Max-Age=0") {
				t.Errorf("End: Set-Cookie %q does not expire the cookie", rec.Header().Get("Set-Cookie"))
			}
			check("End", c)
		})
	}
}

func TestSessionStart(t *testing.T) {
	f := newSessions(t)
	exp := time.Now().Add(10 * time.Minute).Truncate(time.Second)
	tests := []struct {
		name   string
		sub    string
		extra  map[string]any
		nonce  string
		code   string // "" starts a session
		reason string
	}{
		{"good", "sub-alice", map[string]any{"nonce": "n1", "exp": exp.Unix()}, "n1", "", ""},
		{"other nonce", "sub-alice", map[string]any{"nonce": "n1"}, "n2", job.EUnauthorized, "nonce"},
		{"nonce prefix", "sub-alice", map[string]any{"nonce": "n1x"}, "n1", job.EUnauthorized, "nonce"},
		{"no nonce claim, no nonce", "sub-alice", nil, "", job.EUnauthorized, "nonce"},
		{"empty nonce claim, empty nonce", "sub-alice", map[string]any{"nonce": ""}, "", job.EUnauthorized, "nonce"},
		{"no nonce claim", "sub-alice", nil, "n1", job.EUnauthorized, "nonce"},
		{"expired", "sub-alice", map[string]any{"nonce": "n1", "exp": time.Now().Add(-time.Hour).Unix()}, "n1", job.EUnauthorized, "expired"},
		{"another audience", "sub-alice", map[string]any{"nonce": "n1", "aud": "elsewhere"}, "n1", job.EUnauthorized, "audience"},
		{"denied account", "sub-root", map[string]any{"nonce": "n1"}, "n1", job.EForbidden, "root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := f.idToken(t, tt.sub, tt.extra)
			rec := httptest.NewRecorder()
			id, err := f.s.Start(context.Background(), rec, httptest.NewRequest(http.MethodGet, "/callback", nil), tok, tt.nonce)
			cs := setCookies(rec)
			if tt.code != "" {
				if job.ErrorCode(err) != tt.code || !strings.Contains(job.ErrorMessage(err), tt.reason) {
					t.Fatalf("Start: %v (%s); want %s mentioning %q", err, job.ErrorCode(err), tt.code, tt.reason)
				}
				if len(cs) != 0 || !reflect.DeepEqual(id, job.Identity{}) {
					t.Fatalf("refused login set cookies %v, identity %+v", cs, id)
				}
				return
			}
			if err != nil || id.Username != "alice" {
				t.Fatalf("Start: %+v, %v", id, err)
			}
			if len(cs) != 1 || cs[0].Name != auth.SessionCookie || cs[0].Path != "/" || !cs[0].HttpOnly || cs[0].SameSite != http.SameSiteLaxMode {
				t.Fatalf("Start set %+v", cs)
			}
			if !cs[0].Expires.Equal(exp) {
				t.Errorf("cookie expires %v, want the token's exp %v", cs[0].Expires, exp)
			}
			var sess auth.Session
			if err := f.s.Sealer.Open(auth.SessionCookie, cs[0].Value, &sess); err != nil {
				t.Fatal(err)
			}
			if sess.IDToken != tok || sess.Expiry != exp.Unix() || len(sess.CSRF) < 32 {
				t.Errorf("session %+v; want the token, exp %d and a CSRF token", sess, exp.Unix())
			}
			// The cookie authenticates, and each login gets its own CSRF token.
			r := httptest.NewRequest(http.MethodGet, "/api/whoami", nil)
			r.AddCookie(cs[0])
			if id, err := f.s.Authenticate(r); err != nil || id.Username != "alice" {
				t.Errorf("Authenticate with the new cookie: %+v, %v", id, err)
			}
			rec2 := httptest.NewRecorder()
			if _, err := f.s.Start(context.Background(), rec2, httptest.NewRequest(http.MethodGet, "/callback", nil), tok, tt.nonce); err != nil {
				t.Fatal(err)
			}
			var sess2 auth.Session
			_ = f.s.Sealer.Open(auth.SessionCookie, setCookies(rec2)[0].Value, &sess2)
			if sess2.CSRF == sess.CSRF {
				t.Error("two logins share a CSRF token")
			}
		})
	}
}

func TestSessionRead(t *testing.T) {
	f := newSessions(t)
	good := f.cookie(t, "sub-alice", "c1")
	other, _ := auth.NewSealer(nil)
	foreign, _ := other.Seal(auth.SessionCookie, auth.Session{IDToken: "x", CSRF: "c"})
	login, _ := f.s.Sealer.Seal("ftgate_login", auth.Session{IDToken: "x", CSRF: "c"})
	tests := []struct {
		name   string
		cookie *http.Cookie // nil: none
		ok     bool
	}{
		{"none", nil, false},
		{"empty", &http.Cookie{Name: auth.SessionCookie, Value: ""}, false},
		{"garbage", &http.Cookie{Name: auth.SessionCookie, Value: "xyz"}, false},
		{"foreign key", &http.Cookie{Name: auth.SessionCookie, Value: foreign}, false},
		{"other purpose", &http.Cookie{Name: auth.SessionCookie, Value: login}, false},
		{"good value under another name", &http.Cookie{Name: "other", Value: good.Value}, false},
		{"good", good, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tt.cookie != nil {
				r.AddCookie(tt.cookie)
			}
			sess, ok := f.s.Read(r)
			if ok != tt.ok {
				t.Fatalf("Read: ok %v, want %v", ok, tt.ok)
			}
			if ok && sess.CSRF != "c1" {
				t.Errorf("Read: %+v", sess)
			}
			if !ok && sess != (auth.Session{}) {
				t.Errorf("Read failed but returned %+v", sess)
			}
		})
	}
}

func TestSessionAuthenticate(t *testing.T) {
	f := newSessions(t)
	const csrf = "the-csrf-token"
	good := f.cookie(t, "sub-alice", csrf)
	sealedTok := func(tok string) *http.Cookie {
		v, _ := f.s.Sealer.Seal(auth.SessionCookie, auth.Session{IDToken: tok, CSRF: csrf})
		return &http.Cookie{Name: auth.SessionCookie, Value: v}
	}
	expired := sealedTok(f.idToken(t, "sub-alice", map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}))
	denied := sealedTok(f.idToken(t, "sub-root", nil))
	tests := []struct {
		name   string
		method string
		cookie *http.Cookie
		hdr    map[string]string
		code   string // "" authenticates as alice
		reason string
	}{
		{"GET without CSRF", http.MethodGet, good, nil, "", ""},
		{"HEAD without CSRF", http.MethodHead, good, nil, "", ""},
		{"OPTIONS without CSRF", http.MethodOptions, good, nil, "", ""},
		{"GET cross-site without CSRF", http.MethodGet, good, map[string]string{"Sec-Fetch-Site": "cross-site"}, "", ""},
		{"POST with CSRF", http.MethodPost, good, map[string]string{auth.CSRFHeader: csrf}, "", ""},
		{"POST missing CSRF", http.MethodPost, good, nil, job.EForbidden, auth.CSRFHeader},
		{"PUT missing CSRF", http.MethodPut, good, nil, job.EForbidden, auth.CSRFHeader},
		{"PATCH missing CSRF", http.MethodPatch, good, nil, job.EForbidden, auth.CSRFHeader},
		{"DELETE missing CSRF", http.MethodDelete, good, nil, job.EForbidden, auth.CSRFHeader},
		{"POST wrong CSRF", http.MethodPost, good, map[string]string{auth.CSRFHeader: "guess"}, job.EForbidden, auth.CSRFHeader},
		{"POST CSRF prefix", http.MethodPost, good, map[string]string{auth.CSRFHeader: csrf[:len(csrf)-1]}, job.EForbidden, auth.CSRFHeader},
		{"POST CSRF with a suffix", http.MethodPost, good, map[string]string{auth.CSRFHeader: csrf + "x"}, job.EForbidden, auth.CSRFHeader},
		{"POST same-origin", http.MethodPost, good, map[string]string{auth.CSRFHeader: csrf, "Sec-Fetch-Site": "same-origin"}, "", ""},
		{"POST same-site", http.MethodPost, good, map[string]string{auth.CSRFHeader: csrf, "Sec-Fetch-Site": "same-site"}, job.EForbidden, "cross-site"},
		{"POST cross-site", http.MethodPost, good, map[string]string{auth.CSRFHeader: csrf, "Sec-Fetch-Site": "cross-site"}, job.EForbidden, "cross-site"},
		{"POST from this origin", http.MethodPost, good, map[string]string{auth.CSRFHeader: csrf, "Origin": "https://GW.example:8443"}, "", ""},
		{"POST from another origin", http.MethodPost, good, map[string]string{auth.CSRFHeader: csrf, "Origin": "https://evil.example"}, job.EForbidden, "origin"},
		{"POST from another port", http.MethodPost, good, map[string]string{auth.CSRFHeader: csrf, "Origin": "https://gw.example:9999"}, job.EForbidden, "origin"},
		{"POST from an unparsable origin", http.MethodPost, good, map[string]string{auth.CSRFHeader: csrf, "Origin": "://gw.example:8443"}, job.EForbidden, "origin"},
		{"no cookie", http.MethodGet, nil, nil, job.EUnauthorized, "not logged in"},
		{"expired token", http.MethodGet, expired, nil, job.EUnauthorized, "log in again"},
		{"expired token, POST with CSRF", http.MethodPost, expired, map[string]string{auth.CSRFHeader: csrf}, job.EUnauthorized, "log in again"},
		{"denied account", http.MethodGet, denied, nil, job.EForbidden, "root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			var id job.Identity
			var err error
			h := auth.NewAudit(slog.New(slog.NewJSONHandler(&buf, nil))).Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				id, err = f.s.Authenticate(r)
			}))
			r := httptest.NewRequest(tt.method, "https://gw.example:8443/api/x", nil)
			if tt.cookie != nil {
				r.AddCookie(tt.cookie)
			}
			for k, v := range tt.hdr {
				r.Header.Set(k, v)
			}
			h.ServeHTTP(httptest.NewRecorder(), r)
			var audit map[string]any
			if buf.Len() > 0 {
				if e := json.Unmarshal(buf.Bytes(), &audit); e != nil {
					t.Fatalf("audit line %q: %v", buf.String(), e)
				}
			}
			if tt.code == "" {
				if err != nil || id.Username != "alice" {
					t.Fatalf("Authenticate: %+v, %v", id, err)
				}
				if audit != nil && audit["user"] != "alice" {
					t.Errorf("audit %v does not name alice", audit)
				}
				return
			}
			if job.ErrorCode(err) != tt.code || !strings.Contains(job.ErrorMessage(err), tt.reason) {
				t.Fatalf("Authenticate: %v (%s); want %s mentioning %q", err, job.ErrorCode(err), tt.code, tt.reason)
			}
			if !reflect.DeepEqual(id, job.Identity{}) {
				t.Errorf("refused request has identity %+v", id)
			}
			if audit != nil {
				if reason, _ := audit["reason"].(string); audit["user"] != nil || !strings.Contains(reason, tt.reason) {
					t.Errorf("audit %v: want no user and the reason %q", audit, tt.reason)
				}
			}
		})
	}
}

func TestCheckCSRFNeedsASessionToken(t *testing.T) {
	// A session without a CSRF token (a forged or old cookie) matches no header, not
	// even an empty one.
	r := httptest.NewRequest(http.MethodPost, "/api/x", nil)
	r.Header.Set(auth.CSRFHeader, "")
	if err := auth.CheckCSRF(r, auth.Session{}); job.ErrorCode(err) != job.EForbidden {
		t.Errorf("empty CSRF token accepted: %v", err)
	}
	r.Header.Set(auth.CSRFHeader, "x")
	if err := auth.CheckCSRF(r, auth.Session{CSRF: "x"}); err != nil {
		t.Errorf("matching token refused: %v", err)
	}
}

func TestBearerOrSession(t *testing.T) {
	f := newSessions(t)
	const csrf = "c"
	cookie := f.cookie(t, "sub-alice", csrf)
	bobBearer := f.p.AccessToken(t, "sub-bob")
	tests := []struct {
		name     string
		method   string
		bearer   string // Authorization: Bearer <bearer>; "" none
		cookie   bool
		csrf     bool
		sessions bool // BearerOrSession.Sessions set
		user     string
		reason   string // when user == ""
	}{
		{"bearer alone", http.MethodPost, bobBearer, false, false, true, "bob", ""},
		{"bearer wins over the cookie", http.MethodPost, bobBearer, true, false, true, "bob", ""},
		{"bad bearer is not rescued by the cookie", http.MethodGet, "garbage", true, false, true, "", "not a JWT"},
		{"cookie alone", http.MethodGet, "", true, false, true, "alice", ""},
		{"cookie POST with CSRF", http.MethodPost, "", true, true, true, "alice", ""},
		{"cookie POST without CSRF", http.MethodPost, "", true, false, true, "", auth.CSRFHeader},
		{"neither", http.MethodGet, "", false, false, true, "", "Authorization"},
		{"cookie without sessions configured", http.MethodGet, "", true, false, false, "", "Authorization"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "/api/x", nil)
			if tt.bearer != "" {
				r.Header.Set("Authorization", "Bearer "+tt.bearer)
			}
			if tt.cookie {
				r.AddCookie(cookie)
			}
			if tt.csrf {
				r.Header.Set(auth.CSRFHeader, csrf)
			}
			bo := f.bo
			if !tt.sessions {
				bo.Sessions = nil
			}
			id, err := bo.Authenticate(r)
			if tt.user != "" {
				if err != nil || id.Username != tt.user {
					t.Fatalf("Authenticate: %+v, %v; want %s", id, err, tt.user)
				}
				return
			}
			if err == nil || !strings.Contains(job.ErrorMessage(err), tt.reason) {
				t.Fatalf("Authenticate: %+v, %v; want a refusal mentioning %q", id, err, tt.reason)
			}
		})
	}
}
