// Package version is the one home of the build's version and commit, stamped at link
// time by `make build` and `make dist`:
//
//	go build -ldflags "-X github.com/ftgate/ftgate/internal/version.Version=v1.2.3 \
//	  -X github.com/ftgate/ftgate/internal/version.Commit=$(git rev-parse HEAD)"
//
// Without -ldflags, Commit falls back to the VCS revision go build records.
package version

import (
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
)

// Version is the release version (vMAJOR.MINOR.PATCH[-pre]); "dev" when not stamped.
var Version = "dev"

// Commit is the git commit the binary was built from; "unknown" when not stamped and
// the build recorded none.
var Commit = ""

// MinClient is the oldest ftctl this gateway's API works with; the gateway advertises
// it in GET /api/auth/config and ftctl warns at login when it is older. Raise it when
// a change breaks older clients.
const MinClient = "v0.1.0"

func init() {
	if Commit != "" {
		return
	}
	Commit = "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			Commit = rev
			if dirty {
				Commit += "-dirty"
			}
		}
	}
}

// String is what --version prints after the program name: the version and the commit.
func String() string {
	return fmt.Sprintf("%s (commit %s)", Version, Commit)
}

// Older reports whether version a is older than b. Both must be semantic versions
// (v1.2.3, optionally -pre); ok is false when either is not, e.g. a "dev" build, and
// then nothing can be said.
func Older(a, b string) (older, ok bool) {
	pa, okA := parse(a)
	pb, okB := parse(b)
	if !okA || !okB {
		return false, false
	}
	for i := range 3 {
		if pa.n[i] != pb.n[i] {
			return pa.n[i] < pb.n[i], true
		}
	}
	// A pre-release is older than its release; two pre-releases compare as strings.
	switch {
	case pa.pre == pb.pre:
		return false, true
	case pa.pre == "":
		return false, true
	case pb.pre == "":
		return true, true
	}
	return pa.pre < pb.pre, true
}

type semver struct {
	n   [3]int
	pre string
}

func parse(v string) (semver, bool) {
	var s semver
	v, ok := strings.CutPrefix(v, "v")
	if !ok {
		return s, false
	}
	v, _, _ = strings.Cut(v, "+")
	v, s.pre, _ = strings.Cut(v, "-")
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return s, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || p == "" {
			return s, false
		}
		s.n[i] = n
	}
	return s, true
}
