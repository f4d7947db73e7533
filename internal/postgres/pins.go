package postgres

import (
	"context"
	"fmt"
)

// PinAccount records that subject (of issuer) owns the Unix account, unless another
// subject pinned it first; it returns the owning subject either way.
func (s *Store) PinAccount(ctx context.Context, account, issuer, subject string) (string, error) {
	var owner string
	err := s.Pool.QueryRow(ctx, `INSERT INTO account_pins (account, issuer, subject) VALUES ($1, $2, $3)
		ON CONFLICT (account) DO UPDATE SET account = EXCLUDED.account
		RETURNING CASE WHEN account_pins.issuer = $2 THEN account_pins.subject ELSE account_pins.issuer || ' ' || account_pins.subject END`,
		account, issuer, subject).Scan(&owner)
	if err != nil {
		return "", fmt.Errorf("pin account %s: %w", account, err)
	}
	return owner, nil
}
