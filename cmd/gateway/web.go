package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"golang.org/x/oauth2"

	"github.com/ftgate/ftgate/internal/api"
	"github.com/ftgate/ftgate/internal/auth"
	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/web"
)

// dashboard builds the web dashboard and the API's authenticator: bearer tokens as
// always, plus the dashboard's session cookie when web.client_id is configured.
func dashboard(ctx context.Context, cfg *config.Config, bearer *auth.Verifier, log *slog.Logger) (api.Authenticator, http.Handler, error) {
	wc := web.Config{Issuer: cfg.OIDC.Issuer, Log: log.With("component", "web")}
	var authn api.Authenticator = bearer
	if cfg.Web.ClientID != "" {
		key, err := cfg.Web.Key()
		if err != nil {
			return nil, nil, fmt.Errorf("config web.session_key: %w", err)
		}
		if key == nil {
			log.Warn("web.session_key is not set: dashboard sessions use a random key and end when the gateway restarts")
		}
		sealer, err := auth.NewSealer(key)
		if err != nil {
			return nil, nil, err
		}
		oc := cfg.OIDC
		oc.Audiences, oc.AllowedClients = []string{cfg.Web.ClientID}, nil
		sv, err := auth.New(ctx, oc, auth.WithLogger(log))
		if err != nil {
			return nil, nil, fmt.Errorf("dashboard sessions: %w", err)
		}
		wc.Sessions = &auth.Sessions{Sealer: sealer, Verifier: sv, Secure: cfg.Web.SecureCookies}
		wc.OAuth2 = oauth2.Config{ClientID: cfg.Web.ClientID, ClientSecret: cfg.Web.ClientSecret,
			RedirectURL: cfg.Web.RedirectURL, Scopes: cfg.Web.Scopes}
		authn = auth.BearerOrSession{Bearer: bearer, Sessions: wc.Sessions}
	}
	h, err := web.New(ctx, wc)
	if err != nil {
		return nil, nil, err
	}
	return authn, h, nil
}
