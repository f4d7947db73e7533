// Package job holds ftgate's domain types: jobs, specs, states and their legal
// transitions, identities and error codes. It does no I/O.
package job

// Identity is an authenticated caller.
type Identity struct {
	Subject  string   // the token's sub claim (immutable)
	Username string   // the mapped Unix account
	Email    string   // informational
	Groups   []string // from the configured groups claim
	Admin    bool     // member of a configured admin group
}
