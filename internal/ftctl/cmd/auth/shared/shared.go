// Package shared holds what the auth commands share: the gateway's login settings
// and its view of the caller.
package shared

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/ftctl/apiclient"
)

// FetchAuthConfig reads the gateway's login settings (GET /api/auth/config) over hc,
// which carries no credentials.
func FetchAuthConfig(ctx context.Context, hc *http.Client, server string) (*client.AuthConfig, error) {
	ac, err := apiclient.New(server, hc).AuthConfig(ctx)
	var ae *client.Error
	var ce *apiclient.ConnError
	switch {
	case errors.As(err, &ae):
		return nil, fmt.Errorf("fetch login settings from %s/api/auth/config: %w", server, ae)
	case errors.As(err, &ce):
		return nil, ce
	case err != nil:
		return nil, fmt.Errorf("read login settings from %s/api/auth/config: %w", server, apiclient.Unwrap(err))
	}
	if ac.Issuer == "" || ac.ClientID == "" {
		return nil, fmt.Errorf("the gateway at %s serves no login settings (issuer %q, client_id %q): ask its admin to set oidc.issuer and oidc.client_id", server, ac.Issuer, ac.ClientID)
	}
	return &ac, nil
}

// FetchWhoami asks the gateway who bearer is (GET /api/whoami) over hc.
func FetchWhoami(ctx context.Context, hc *http.Client, server, bearer string) (*client.Whoami, error) {
	w, err := apiclient.WithToken(server, hc, bearer).Whoami(ctx)
	var ae *client.Error
	var le *apiclient.LoginRequiredError
	switch {
	case errors.As(err, &ae):
		return nil, ae
	case errors.As(err, &le):
		return nil, le
	case err != nil:
		return nil, fmt.Errorf("ask the gateway who I am: %w", apiclient.Unwrap(err))
	}
	return &w, nil
}
