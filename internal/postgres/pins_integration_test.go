package postgres_test

import (
	"context"
	"testing"

	"github.com/ftgate/ftgate/internal/postgres"
	"github.com/ftgate/ftgate/internal/postgres/pgtest"
)

// TestIntegrationPinAccount: the first subject pins an account; a second one gets the
// first as owner; another issuer's subject is a different owner.
func TestIntegrationPinAccount(t *testing.T) {
	s := postgres.New(pgtest.Schema(t))
	ctx := context.Background()
	for _, tc := range []struct{ account, issuer, subject, want string }{
		{"alice", "https://idp.example", "sub-1", "sub-1"},
		{"alice", "https://idp.example", "sub-1", "sub-1"},
		{"alice", "https://idp.example", "sub-2", "sub-1"},
		{"alice", "https://other.example", "sub-1", "https://idp.example sub-1"},
		{"bob", "https://idp.example", "sub-2", "sub-2"},
	} {
		got, err := s.PinAccount(ctx, tc.account, tc.issuer, tc.subject)
		if err != nil || got != tc.want {
			t.Errorf("%+v: %q %v", tc, got, err)
		}
	}
}
