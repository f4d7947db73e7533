package webhook

import (
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/ftgate/ftgate/internal/job"
)

// Policy decides which addresses a webhook may reach (webhooks.allow and
// webhooks.only_listed in the gateway's config). An address is allowed when it lies in
// a listed address or CIDR; otherwise it is refused when it is not public (loopback,
// private, link-local, unspecified, multicast, shared, reserved, documentation,
// NAT64), and, with OnlyListed, when the URL's host is not a listed name. A listed
// host name never opens a non-public address: DNS could point it anywhere.
//
// The check is made on every address a URL resolves to, at registration and again at
// each dial (internal/deliver), so DNS rebinding cannot move a registered host to a
// refused address.
type Policy struct {
	// Prefixes are the listed addresses and CIDRs.
	Prefixes []netip.Prefix
	// Hosts are the listed host names, lower case; "*.example.edu" matches every name
	// below example.edu.
	Hosts []string
	// OnlyListed refuses public addresses of hosts that are not listed.
	OnlyListed bool
}

var hostRE = regexp.MustCompile(`^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ParsePolicy reads webhooks.allow entries: addresses, CIDRs and host names.
func ParsePolicy(allow []string, onlyListed bool) (Policy, error) {
	p := Policy{OnlyListed: onlyListed}
	for _, e := range allow {
		e = strings.TrimSpace(e)
		if pfx, err := netip.ParsePrefix(e); err == nil {
			p.Prefixes = append(p.Prefixes, pfx.Masked())
			continue
		}
		if a, err := netip.ParseAddr(e); err == nil {
			a = a.Unmap().WithZone("")
			p.Prefixes = append(p.Prefixes, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		h := strings.ToLower(strings.TrimSuffix(e, "."))
		if len(h) > 253 || !hostRE.MatchString(h) || numericTLD(h) {
			return Policy{}, fmt.Errorf("entry %q is neither an address, a CIDR nor a host name", e)
		}
		p.Hosts = append(p.Hosts, h)
	}
	return p, nil
}

// numericTLD reports whether a name's last label is all digits: such names are
// addresses to some resolvers (127.1, 0x7f.1), never host names.
func numericTLD(h string) bool {
	last := h[strings.LastIndexByte(h, '.')+1:]
	return strings.Trim(last, "0123456789") == "" || strings.HasPrefix(last, "0x")
}

// listedHost reports whether host matches a listed name.
func (p Policy) listedHost(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, h := range p.Hosts {
		if suffix, ok := strings.CutPrefix(h, "*"); ok {
			if strings.HasSuffix(host, suffix) {
				return true
			}
		} else if host == h {
			return true
		}
	}
	return false
}

// special are the ranges that are not public beyond what netip's predicates cover.
var special = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this-network"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (carrier-grade NAT)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "reserved"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "NAT64"},
	{netip.MustParsePrefix("100::/64"), "discard"},
	{netip.MustParsePrefix("2001::/23"), "reserved"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("2002::/16"), "6to4"},
}

// kind names why a is not public, or "" when it is.
func kind(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "invalid"
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLoopback():
		return "loopback"
	case a.IsPrivate():
		return "private"
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return "link-local"
	case a.IsMulticast(), a.IsInterfaceLocalMulticast():
		return "multicast"
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast"
	}
	for _, s := range special {
		if s.prefix.Contains(a) {
			return s.what
		}
	}
	if !a.IsGlobalUnicast() {
		return "not global unicast"
	}
	return ""
}

// CheckAddr reports whether a webhook to host (as written in its URL) may connect to
// a; the error says why not.
func (p Policy) CheckAddr(host string, a netip.Addr) error {
	a = a.Unmap().WithZone("")
	if slices.ContainsFunc(p.Prefixes, func(pfx netip.Prefix) bool { return pfx.Contains(a) }) {
		return nil
	}
	if k := kind(a); k != "" {
		return &BlockedError{Addr: a, Msg: fmt.Sprintf("address %s is %s; an admin must list it in webhooks.allow", a, k)}
	}
	if p.OnlyListed && !p.listedHost(host) {
		return &BlockedError{Addr: a, Msg: fmt.Sprintf("host %s is not in webhooks.allow (webhooks.only_listed is set)", host)}
	}
	return nil
}

// BlockedError is a target the policy refuses.
type BlockedError struct {
	Addr netip.Addr
	Msg  string
}

func (e *BlockedError) Error() string { return e.Msg }

// Target is a checked webhook URL.
type Target struct {
	// URL is the normalised URL to store and send to.
	URL string
	// Host is the URL's host name or address; Addr is set when it is an address.
	Host string
	Addr netip.Addr
}

// CheckURL validates a webhook URL's form (http or https, a host, no credentials or
// fragment, at most MaxURLLength bytes) and, when its host is an address, the
// address. A host name must be resolved by the caller and each address checked with
// CheckAddr. Errors are EUnprocessable naming field.
func (p Policy) CheckURL(field, raw string) (Target, error) {
	bad := func(format string, a ...any) (Target, error) {
		return Target{}, job.Errorf(job.EUnprocessable, "%s: %s", field, fmt.Sprintf(format, a...))
	}
	if raw == "" {
		return bad("is required")
	}
	if len(raw) > MaxURLLength {
		return bad("longer than %d bytes", MaxURLLength)
	}
	if strings.ContainsFunc(raw, func(r rune) bool { return r <= 0x20 || r == 0x7f }) {
		return bad("must not contain spaces or control characters")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad("not a URL: %v", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return bad("must be an http:// or https:// URL, got %q", truncate(raw, 80))
	case u.Opaque != "" || u.Host == "":
		return bad("must name a host, as in https://hooks.example.edu/path")
	case u.User != nil:
		return bad("must not carry credentials (user:password@); authenticate with the signature")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return bad("must not have a #fragment")
	}
	host := u.Hostname()
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return bad("port %q: want 1 to 65535", port)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return bad("empty port")
	}
	t := Target{URL: u.String(), Host: host}
	if a, err := netip.ParseAddr(host); err == nil {
		if err := p.CheckAddr(host, a); err != nil {
			return bad("%v", err)
		}
		t.Addr = a
		return t, nil
	}
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if len(h) > 253 || !hostRE.MatchString(h) || strings.HasPrefix(h, "*") || numericTLD(h) {
		return bad("host %q is not a valid host name or address", truncate(host, 80))
	}
	return t, nil
}
