//go:build tools

// Package dex pins the Dex OpenID provider (v2.45.1) that the dev stack builds with
// `go build github.com/dexidp/dex/cmd/dex`. It is kept out of the main module.
package dex

import _ "github.com/dexidp/dex/cmd/dex"
