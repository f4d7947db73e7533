package token_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
	"github.com/ftgate/ftgate/internal/ftctl/tokencache"
)

func TestAuthTokenRefresh(t *testing.T) {
	t.Parallel()
	e := ftctltest.NewAuthEnv(t)
	e.P.SetBrowserUser("sub-alice")
	if _, errOut, code := e.Run(t, nil, "--server", e.GW.URL, "auth", "login", "--web", "--port", "0"); code != 0 {
		t.Fatalf("login: %s", errOut)
	}
	first, _, _ := e.Run(t, nil, "auth", "token")
	again, _, _ := e.Run(t, nil, "auth", "token")
	if first != again {
		t.Errorf("a valid token was refreshed needlessly")
	}
	// Four minutes on, the 5-minute token is within the refresh margin.
	e.NowShift = 4*time.Minute + 30*time.Second
	second, errOut, code := e.Run(t, nil, "auth", "token")
	if code != 0 || second == first {
		t.Fatalf("refresh: exit %d stderr %q (same token: %v)", code, errOut, second == first)
	}
	if id, err := e.V.Verify(context.Background(), strings.TrimSpace(second)); err != nil || id.Username != "alice" {
		t.Fatalf("refreshed token: %+v %v", id, err)
	}
	// The refresh token is revoked: one line asks for a new login, exit 4.
	s, err := (&tokencache.TokenCache{Path: filepath.Join(e.CfgDir, "tokens.json")}).Load(e.GW.URL)
	if err != nil || s == nil {
		t.Fatalf("load session: %v", err)
	}
	e.P.RevokeRefresh(s.RefreshToken)
	e.NowShift = 10 * time.Minute
	out, errOut, code := e.Run(t, nil, "auth", "token")
	want := "ftctl: your session has expired; run `ftctl auth login --server " + e.GW.URL + "`\n"
	if code != cmdutil.ExitLogin || out != "" || errOut != want {
		t.Errorf("expired refresh: exit %d stdout %q stderr %q, want %q", code, out, errOut, want)
	}
}
