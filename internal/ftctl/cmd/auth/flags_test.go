package auth_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/ftctl/cmd/auth/login"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/auth/logout"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/auth/status"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/auth/token"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
)

// TestNewCmdLogin parses login's flags through the runF seam.
func TestNewCmdLogin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args             string
		web              bool
		port             int
		timeout          time.Duration
		browser, wantErr string
	}{
		{args: "", port: 8085, timeout: 10 * time.Minute},
		{args: "--web --port 0 --timeout 30s", web: true, port: 0, timeout: 30 * time.Second},
		{args: "-w", web: true, port: 8085, timeout: 10 * time.Minute},
		{args: "--port 70000", wantErr: "--port must be 0..65535, got 70000"},
		{args: "now", wantErr: `unknown command "now"`},
	} {
		var got *login.LoginOptions
		f := ftctltest.FlagFactory(t)
		f.AppVersion = "v1.2.3"
		cmd := login.NewCmdLogin(f, func(_ context.Context, o *login.LoginOptions) error { got = o; return nil })
		cmd.SetContext(context.Background())
		err := ftctltest.Exec(cmd, strings.Fields(tc.args)...)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || cmdutil.ExitCode(err) != cmdutil.ExitUsage || got != nil {
				t.Errorf("%q: error %v (exit %d, ran %v), want usage error %q", tc.args, err, cmdutil.ExitCode(err), got != nil, tc.wantErr)
			}
			continue
		}
		if err != nil || got == nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if got.Server != ftctltest.FlagServer || got.Web != tc.web || got.Port != tc.port || got.Timeout != tc.timeout || got.ClientVersion != "v1.2.3" ||
			got.IO == nil || got.Cache == nil || got.HTTPClient == nil || got.RememberServer == nil || (tc.web && got.OpenBrowser == nil) {
			t.Errorf("%q: options %+v", tc.args, got)
		}
	}
}

// TestNewCmdAuthSessionVerbs: status, logout and token resolve the gateway and the
// token cache before their run function, and take no arguments.
func TestNewCmdAuthSessionVerbs(t *testing.T) {
	t.Parallel()
	type seen struct {
		server string
		cache  bool
	}
	for name, mk := range map[string]func(f *cmdutil.Factory, s *seen) (run func(args ...string) error){
		"status": func(f *cmdutil.Factory, s *seen) func(...string) error {
			cmd := status.NewCmdStatus(f, func(_ context.Context, o *status.StatusOptions) error {
				*s = seen{o.Server, o.Cache != nil && o.HTTPClient != nil && o.Now != nil}
				return nil
			})
			return func(args ...string) error { return ftctltest.Exec(cmd, args...) }
		},
		"logout": func(f *cmdutil.Factory, s *seen) func(...string) error {
			cmd := logout.NewCmdLogout(f, func(_ context.Context, o *logout.LogoutOptions) error {
				*s = seen{o.Server, o.Cache != nil && o.HTTPClient != nil}
				return nil
			})
			return func(args ...string) error { return ftctltest.Exec(cmd, args...) }
		},
		"token": func(f *cmdutil.Factory, s *seen) func(...string) error {
			cmd := token.NewCmdToken(f, func(_ context.Context, o *token.TokenOptions) error {
				*s = seen{o.Server, o.Cache != nil}
				return nil
			})
			return func(args ...string) error { return ftctltest.Exec(cmd, args...) }
		},
	} {
		var s seen
		if err := mk(ftctltest.FlagFactory(t), &s)(); err != nil || s != (seen{ftctltest.FlagServer, true}) {
			t.Errorf("%s: %v, options %+v", name, err, s)
		}
		s = seen{}
		if err := mk(ftctltest.FlagFactory(t), &s)("extra"); err == nil || s != (seen{}) {
			t.Errorf("%s extra: error %v, ran %+v", name, err, s)
		}
	}
}
