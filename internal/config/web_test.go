package config

import (
	"strings"
	"testing"
)

func TestWebDefaultsAndSessionKey(t *testing.T) {
	hexKey := strings.Repeat("0f", 32)
	cases := []struct {
		name     string
		yaml     string
		env      []string
		err      string
		redirect string
		secure   bool
		keyLen   int
	}{
		{name: "no dashboard login", yaml: minimal},
		{name: "client from public_url", yaml: minimal + "public_url: http://gw.example:8080/\nweb:\n  client_id: dash\n",
			redirect: "http://gw.example:8080/auth/callback"},
		{name: "https public_url makes cookies Secure", yaml: minimal + "public_url: https://gw.example\nweb:\n  client_id: dash\n",
			redirect: "https://gw.example/auth/callback", secure: true},
		{name: "hex key from the environment", yaml: minimal + "public_url: http://gw\nweb:\n  client_id: dash\n",
			env: []string{"FTGATE_WEB_SESSION_KEY=" + hexKey}, redirect: "http://gw/auth/callback", keyLen: 32},
		{name: "no redirect", yaml: minimal + "web:\n  client_id: dash\n", err: "config web.redirect_url: is required"},
		{name: "short key", yaml: minimal, env: []string{"FTGATE_WEB_SESSION_KEY=abcd"}, err: "config web.session_key: want 32 bytes, got 2"},
		{name: "bad key", yaml: minimal, env: []string{"FTGATE_WEB_SESSION_KEY=not a key!"}, err: "config web.session_key: want 32 bytes as 64 hex digits or base64"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Load(write(t, "c.yaml", c.yaml), c.env)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Web.RedirectURL != c.redirect && cfg.Web.ClientID != "" {
				t.Errorf("redirect %q, want %q", cfg.Web.RedirectURL, c.redirect)
			}
			if cfg.Web.SecureCookies != c.secure {
				t.Errorf("secure %v", cfg.Web.SecureCookies)
			}
			if strings.Join(cfg.Web.Scopes, " ") != "openid profile email groups" {
				t.Errorf("scopes %v", cfg.Web.Scopes)
			}
			k, err := cfg.Web.Key()
			if err != nil || len(k) != c.keyLen {
				t.Errorf("key %d bytes, %v", len(k), err)
			}
		})
	}
}
