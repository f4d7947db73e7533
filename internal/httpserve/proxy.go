package httpserve

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Forwarded headers handled by TrustProxies.
const (
	HeaderFor   = "X-Forwarded-For"
	HeaderProto = "X-Forwarded-Proto"
	HeaderHost  = "X-Forwarded-Host"
)

// ParsePrefixes parses CIDRs ("10.0.0.0/8") or single addresses ("192.0.2.1").
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR nor an IP address", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// TrustProxies returns middleware that honours X-Forwarded-For, -Proto and -Host only
// on requests whose direct peer is in trusted:
//   - r.RemoteAddr becomes the client address: the right-most X-Forwarded-For entry
//     that is not itself a trusted proxy (so a client cannot spoof it by sending its
//     own header through the proxy);
//   - r.Host becomes X-Forwarded-Host, and r.URL.Scheme X-Forwarded-Proto (http or https).
//
// From any other peer the three headers are deleted, so nothing downstream can
// mistake a client's claim for the proxy's.
func TrustProxies(trusted []netip.Prefix, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isTrusted(trusted, peerAddr(r.RemoteAddr)) {
			r.Header.Del(HeaderFor)
			r.Header.Del(HeaderProto)
			r.Header.Del(HeaderHost)
			next.ServeHTTP(w, r)
			return
		}
		r2 := r.Clone(r.Context())
		if client, ok := clientAddr(trusted, r.Header.Values(HeaderFor)); ok {
			r2.RemoteAddr = net.JoinHostPort(client.String(), "0")
		}
		if p := strings.ToLower(strings.TrimSpace(lastValue(r.Header.Values(HeaderProto)))); p == "http" || p == "https" {
			r2.URL.Scheme = p
		}
		if h := strings.TrimSpace(lastValue(r.Header.Values(HeaderHost))); h != "" && !strings.ContainsAny(h, " /\\@") {
			r2.Host = h
		}
		next.ServeHTTP(w, r2)
	})
}

func peerAddr(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

func isTrusted(trusted []netip.Prefix, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientAddr walks X-Forwarded-For from the right, skipping trusted proxies.
func clientAddr(trusted []netip.Prefix, values []string) (netip.Addr, bool) {
	var hops []string
	for _, v := range values {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return netip.Addr{}, false // malformed: keep the proxy as the peer
		}
		a = a.Unmap()
		if !isTrusted(trusted, a) {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// lastValue is the right-most comma-separated value (the one our proxy appended).
func lastValue(values []string) string {
	if len(values) == 0 {
		return ""
	}
	v := values[len(values)-1]
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return v
}
