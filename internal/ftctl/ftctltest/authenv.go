package ftctltest

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/api"
	"github.com/ftgate/ftgate/internal/auth"
	"github.com/ftgate/ftgate/internal/auth/authtest"
	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/root"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
)

// AuthEnv is an embedded OpenID provider and a real gateway handler verifying its
// tokens; ftctl runs with its config in CfgDir and the environment Env.
type AuthEnv struct {
	P        *authtest.Provider
	V        *auth.Verifier
	GW       *httptest.Server
	CfgDir   string
	Env      map[string]string
	NowShift time.Duration
	// Open is the browser for --web (Browse when nil).
	Open func(url string) error
	// MinClientVersion is what the gateway advertises; AppVersion is ftctl's version
	// (the build's when empty).
	MinClientVersion, AppVersion string
	handler                      atomic.Pointer[http.Handler]
}

// NewAuthEnv starts the provider and the gateway.
func NewAuthEnv(t *testing.T) *AuthEnv {
	t.Helper()
	p := authtest.New(t)
	v, err := auth.New(context.Background(), config.OIDC{
		Issuer: p.Issuer, Audiences: []string{authtest.Audience}, ClientID: authtest.ClientID,
		UsernameClaim: "preferred_username", GroupsClaim: "groups", AdminGroups: []string{"ftgate-admins"},
		DenyUsers: []string{"root"}, ClockSkew: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &AuthEnv{P: p, V: v, CfgDir: filepath.Join(t.TempDir(), "ftctl"), Env: map[string]string{}}
	e.serve()
	e.GW = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*e.handler.Load()).ServeHTTP(w, r)
	}))
	t.Cleanup(e.GW.Close)
	return e
}

// serve (re)builds the gateway's handler with the current MinClientVersion.
func (e *AuthEnv) serve() {
	srv := &api.Server{Auth: e.V, AuthConfig: api.AuthConfig{
		Issuer: e.P.Issuer, ClientID: authtest.ClientID, Audience: authtest.Audience,
		Scopes:           []string{"openid", "profile", "email", "groups", "offline_access"},
		MinClientVersion: e.MinClientVersion,
	}}
	h := srv.Handler()
	e.handler.Store(&h)
}

// Run runs ftctl with args; errOut receives stderr (a fresh Approver when nil).
func (e *AuthEnv) Run(t *testing.T, errOut *Approver, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out bytes.Buffer
	if errOut == nil {
		errOut = &Approver{}
	}
	f := cmdutil.NewFactory(strings.NewReader(""), &out, errOut)
	f.Getenv = func(k string) string {
		if k == "FTCTL_CONFIG_DIR" {
			return e.CfgDir
		}
		return e.Env[k]
	}
	f.Now = func() time.Time { return time.Now().Add(e.NowShift) }
	if e.AppVersion != "" {
		f.AppVersion = e.AppVersion
	}
	if e.handler.Load() != nil {
		e.serve()
	}
	f.OpenBrowser = Browse
	if e.Open != nil {
		f.OpenBrowser = e.Open
	}
	code = root.Run(f, args)
	return out.String(), errOut.String(), code
}

// Approver is stderr that approves the device code it sees, as the user would: in
// the embedded provider P as Sub, or by calling OnCode. Err is P's answer.
type Approver struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	P      *authtest.Provider
	Sub    string
	OnCode func(verifyURI, code string)
	seen   bool
	Err    error
}

var (
	// CodeRE finds the device code ftctl prints.
	CodeRE      = regexp.MustCompile(`enter the code: (\S+)\n`)
	deviceURIRE = regexp.MustCompile(`Open (\S+) in a browser and enter the code: (\S+)\n`)
)

func (a *Approver) Write(b []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.buf.Write(b)
	if m := deviceURIRE.FindStringSubmatch(a.buf.String()); m != nil && !a.seen {
		a.seen = true
		if a.P != nil {
			a.Err = a.P.Approve(m[2], a.Sub)
		}
		if a.OnCode != nil {
			a.OnCode(m[1], m[2])
		}
	}
	return len(b), nil
}

// String is what was written.
func (a *Approver) String() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.buf.String()
}

// Browse follows the login URL as a browser with a session would, ending at ftctl's
// loopback callback.
func Browse(u string) error {
	go func() {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
		}
	}()
	return nil
}
