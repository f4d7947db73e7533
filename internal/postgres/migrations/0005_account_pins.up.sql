-- oidc.pin_accounts: the first OIDC subject that maps to a Unix account owns it; a
-- second subject mapping to the same account is refused.
CREATE TABLE account_pins (
    account   text PRIMARY KEY,
    issuer    text NOT NULL,
    subject   text NOT NULL,
    pinned_at timestamptz NOT NULL DEFAULT now()
);
