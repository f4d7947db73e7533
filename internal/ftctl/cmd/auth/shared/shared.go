// Package shared holds what the auth commands share: the gateway's login settings
// and its view of the caller.
package shared

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/ftgate/ftgate/internal/ftctl/apiclient"
)

// AuthConfig is what the gateway's GET /api/auth/config tells clients.
type AuthConfig struct {
	Issuer   string   `json:"issuer"`
	ClientID string   `json:"client_id"`
	Scopes   []string `json:"scopes"`
	Audience string   `json:"audience"`
	// MinClientVersion is the oldest ftctl the gateway works with ("" when it says none).
	MinClientVersion string `json:"min_client_version,omitempty"`
}

// FetchAuthConfig reads the gateway's login settings (GET /api/auth/config).
func FetchAuthConfig(ctx context.Context, c *http.Client, server string) (*AuthConfig, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, server+"/api/auth/config", nil)
	if err != nil {
		return nil, fmt.Errorf("fetch login settings: %w", err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, &apiclient.ConnError{Server: server, Err: err}
	}
	defer resp.Body.Close()
	if err := apiclient.CheckResponse(resp, server); err != nil {
		return nil, fmt.Errorf("fetch login settings from %s/api/auth/config: %w", server, err)
	}
	var ac AuthConfig
	if err := json.NewDecoder(resp.Body).Decode(&ac); err != nil {
		return nil, fmt.Errorf("read login settings from %s/api/auth/config: %w", server, err)
	}
	if ac.Issuer == "" || ac.ClientID == "" {
		return nil, fmt.Errorf("the gateway at %s serves no login settings (issuer %q, client_id %q): ask its admin to set oidc.issuer and oidc.client_id", server, ac.Issuer, ac.ClientID)
	}
	return &ac, nil
}

// Whoami is the gateway's view of the caller (GET /api/whoami).
type Whoami struct {
	Subject  string   `json:"subject"`
	Username string   `json:"username"`
	Admin    bool     `json:"admin"`
	Groups   []string `json:"groups"`
}

// FetchWhoami asks the gateway who bearer is (GET /api/whoami).
func FetchWhoami(ctx context.Context, c *http.Client, server, bearer string) (*Whoami, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, server+"/api/whoami", nil)
	if err != nil {
		return nil, err
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ask the gateway who I am: %w", err)
	}
	defer resp.Body.Close()
	if err := apiclient.CheckResponse(resp, server); err != nil {
		return nil, err
	}
	var w Whoami
	if err := json.NewDecoder(resp.Body).Decode(&w); err != nil {
		return nil, fmt.Errorf("read whoami: %w", err)
	}
	return &w, nil
}
