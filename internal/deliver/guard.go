package deliver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/webhook"
)

// Resolver looks host names up; *net.Resolver implements it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Guard checks webhook URLs against the admin's policy: at registration (Check, which
// resolves the host) and at every dial (Control, on the address actually dialled).
type Guard struct {
	Policy webhook.Policy
	// Resolver resolves host names at registration (nil: net.DefaultResolver).
	Resolver Resolver
}

// lookupTimeout bounds the resolution of a URL's host at registration.
const lookupTimeout = 5 * time.Second

// Check validates raw as the webhook URL of field and returns it normalised: its form,
// and every address its host resolves to now. Errors are EUnprocessable naming field.
func (g *Guard) Check(ctx context.Context, field, raw string) (string, error) {
	t, err := g.Policy.CheckURL(field, raw)
	if err != nil || t.Addr.IsValid() {
		return t.URL, err
	}
	r := g.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, "ip", t.Host)
	if err != nil || len(addrs) == 0 {
		return "", job.Errorf(job.EUnprocessable, "%s: host %s does not resolve: %v", field, t.Host, lookupError(err))
	}
	for _, a := range addrs {
		if err := g.Policy.CheckAddr(t.Host, a); err != nil {
			return "", job.Errorf(job.EUnprocessable, "%s: host %s resolves to a refused address: %v", field, t.Host, err)
		}
	}
	return t.URL, nil
}

func lookupError(err error) string {
	var de *net.DNSError
	switch {
	case err == nil:
		return "no addresses"
	case errors.As(err, &de) && de.IsNotFound:
		return "no such host"
	case errors.As(err, &de):
		return de.Err
	}
	return err.Error()
}

// Control is a net.Dialer Control function for connections to host (as written in
// the URL): it refuses every address the policy refuses, after resolution, so a host
// whose DNS changed since registration (rebinding) cannot reach a refused address.
func (g *Guard) Control(host string) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("webhook dial %s: %w", address, err)
		}
		return g.Policy.CheckAddr(host, ap.Addr())
	}
}
