// Package logout is `ftctl auth logout`.
package logout

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/spf13/cobra"

	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/tokencache"
)

// LogoutOptions are the options of `ftctl auth logout`.
type LogoutOptions struct {
	IO     *cmdutil.IOStreams
	Server string
	Cache  *tokencache.TokenCache
	// HTTPClient reaches the identity provider to revoke the refresh token.
	HTTPClient *http.Client
}

// NewCmdLogout returns `ftctl auth logout`.
func NewCmdLogout(f *cmdutil.Factory, runF func(context.Context, *LogoutOptions) error) *cobra.Command {
	opts := &LogoutOptions{}
	return &cobra.Command{
		Use:   "logout",
		Short: "Revoke and forget the cached tokens for the gateway",
		Long: `Log out of the gateway: the refresh token is revoked at the identity provider
when the provider offers revocation (its discovery document names a
revocation_endpoint), and the cached tokens are deleted either way. An access
token already handed out stays valid until it expires (minutes).`,
		Example: `  ftctl auth logout
  ftctl auth logout --server https://ftgate.example.edu`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			server, err := f.Server()
			if err != nil {
				return err
			}
			cache, err := f.TokenCache()
			if err != nil {
				return err
			}
			opts.IO, opts.Server, opts.Cache, opts.HTTPClient = f.IO, server, cache, f.PlainHTTPClient()
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runLogout(cmd.Context(), opts)
		},
	}
}

// revokeTimeout bounds the revocation: logging out must not hang on a provider that
// is down.
const revokeTimeout = 15 * time.Second

func runLogout(ctx context.Context, opts *LogoutOptions) error {
	s, err := opts.Cache.Load(opts.Server)
	if err != nil {
		return err
	}
	revoked := false
	if s != nil && s.RefreshToken != "" {
		rctx, cancel := context.WithTimeout(ctx, revokeTimeout)
		revoked, err = revoke(rctx, opts.HTTPClient, s)
		cancel()
		if err != nil {
			fmt.Fprintf(opts.IO.ErrOut, "warning: could not revoke the refresh token at %s: %v\n", s.Issuer, err)
		}
	}
	had, err := opts.Cache.Delete(opts.Server)
	if err != nil {
		return err
	}
	switch {
	case !had:
		fmt.Fprintf(opts.IO.Out, "Not logged in to %s.\n", opts.Server)
	case revoked:
		fmt.Fprintf(opts.IO.Out, "Logged out of %s; the identity provider revoked the refresh token.\n", opts.Server)
	default:
		fmt.Fprintf(opts.IO.Out, "Logged out of %s.\n", opts.Server)
	}
	return nil
}

// revoke revokes s's refresh token at the provider's revocation endpoint (RFC 7009,
// as a public client). It reports false without an error when the provider's
// discovery document names no revocation endpoint (Dex, for one).
func revoke(ctx context.Context, hc *http.Client, s *tokencache.Session) (bool, error) {
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, hc), s.Issuer)
	if err != nil {
		return false, fmt.Errorf("discover identity provider: %w", err)
	}
	var meta struct {
		RevocationEndpoint string `json:"revocation_endpoint"`
	}
	if err := p.Claims(&meta); err != nil {
		return false, fmt.Errorf("read discovery document: %w", err)
	}
	if meta.RevocationEndpoint == "" {
		return false, nil
	}
	form := url.Values{"token": {s.RefreshToken}, "token_type_hint": {"refresh_token"}, "client_id": {s.ClientID}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, meta.RevocationEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return false, fmt.Errorf("build revocation request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		return false, fmt.Errorf("revoke: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("revocation endpoint answered %d: %s", resp.StatusCode, strings.Join(strings.Fields(string(body)), " "))
	}
	return true, nil
}
