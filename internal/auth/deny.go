package auth

import (
	"os/user"
	"strconv"
	"sync"
	"time"
)

// DefaultDenyUsers are never mapped to a gateway user, whatever oidc.deny_users adds:
// root, the usual system and daemon accounts, and the accounts of the cluster
// software (Slurm, munge, databases, sshd).
var DefaultDenyUsers = []string{"root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail",
	"news", "uucp", "proxy", "www-data", "backup", "list", "irc", "gnats", "nobody", "_apt",
	"systemd-network", "systemd-resolve", "systemd-timesync", "messagebus", "polkitd", "sshd",
	"slurm", "slurmdbd", "munge", "mysql", "mariadb", "postgres", "ftgate"}

// defaultMinUID is the UID floor when oidc.min_uid is unset.
const defaultMinUID = 1000

// uidCache remembers UID lookups on the gateway host for uidTTL.
type uidCache struct {
	lookup func(name string) (uid int, ok bool)
	now    func() time.Time
	mu     sync.Mutex
	m      map[string]uidEntry
}

type uidEntry struct {
	uid int
	ok  bool
	at  time.Time
}

const uidTTL = 10 * time.Minute

// lookupUID returns the UID of name in the gateway host's account database (NSS);
// ok is false when the host does not know the account.
func lookupUID(name string) (int, bool) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(u.Uid)
	if err != nil {
		return 0, false
	}
	return n, true
}

func (c *uidCache) get(name string) (int, bool) {
	now := c.now()
	c.mu.Lock()
	e, hit := c.m[name]
	c.mu.Unlock()
	if hit && now.Sub(e.at) < uidTTL {
		return e.uid, e.ok
	}
	uid, ok := c.lookup(name)
	c.mu.Lock()
	if len(c.m) > 100000 {
		c.m = map[string]uidEntry{}
	}
	c.m[name] = uidEntry{uid: uid, ok: ok, at: now}
	c.mu.Unlock()
	return uid, ok
}
