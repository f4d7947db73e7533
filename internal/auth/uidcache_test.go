package auth

import (
	"testing"
	"time"
)

// TestUIDCacheTTL: a lookup (found or not) is remembered for uidTTL (10 minutes), then
// asked again.
func TestUIDCacheTTL(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	asked := map[string]int{}
	c := &uidCache{now: func() time.Time { return now }, m: map[string]uidEntry{},
		lookup: func(name string) (int, bool) {
			asked[name]++
			if name == "alice" {
				return 1000 + asked[name], true
			}
			return 0, false
		}}
	check := func(what, name string, wantUID int, wantOK bool, wantAsked int) {
		t.Helper()
		uid, ok := c.get(name)
		if uid != wantUID || ok != wantOK || asked[name] != wantAsked {
			t.Errorf("%s: get(%s) = %d, %v after %d lookups; want %d, %v after %d", what, name, uid, ok, asked[name], wantUID, wantOK, wantAsked)
		}
	}
	check("first", "alice", 1001, true, 1)
	check("first", "ghost", 0, false, 1)
	now = now.Add(time.Minute)
	check("a minute later", "alice", 1001, true, 1)
	check("a minute later", "ghost", 0, false, 1)
	now = now.Add(9*time.Minute - time.Second)
	check("just under 10 minutes", "alice", 1001, true, 1)
	now = now.Add(time.Second)
	check("10 minutes", "alice", 1002, true, 2)
	check("10 minutes", "ghost", 0, false, 2)
}
