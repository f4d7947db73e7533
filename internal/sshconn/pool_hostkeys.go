package sshconn

// Host key pinning: the known_hosts callback and the algorithms to ask the server for.

import (
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// pinned wraps a knownhosts callback so that every refusal wraps ErrHostKey.
func pinned(cb ssh.HostKeyCallback) ssh.HostKeyCallback {
	return func(host string, remote net.Addr, key ssh.PublicKey) error {
		err := cb(host, remote, key)
		if err == nil {
			return nil
		}
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) && len(ke.Want) > 0 {
			return fmt.Errorf("%w: %s presented a %s key that does not match known_hosts (possible man-in-the-middle): %v",
				ErrHostKey, host, key.Type(), err)
		}
		return fmt.Errorf("%w: %s is not in known_hosts: %v", ErrHostKey, host, err)
	}
}

// hostKeyAlgorithms returns the key algorithms known_hosts pins for addr, so that the
// server is asked for a key we can verify. Nil means the library's default order.
func hostKeyAlgorithms(file, addr string) ([]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	want := knownhosts.Normalize(addr)
	var algs []string
	seen := map[string]bool{}
	add := func(a ...string) {
		for _, x := range a {
			if !seen[x] {
				seen[x] = true
				algs = append(algs, x)
			}
		}
	}
	for len(b) > 0 {
		marker, hosts, key, _, rest, err := ssh.ParseKnownHosts(b)
		if err != nil {
			break
		}
		b = rest
		if marker == "revoked" {
			continue
		}
		match := false
		for _, h := range hosts {
			if knownhosts.Normalize(h) == want {
				match = true
			}
		}
		if !match && marker != "cert-authority" {
			continue
		}
		if marker == "cert-authority" {
			// Any host key type may be certified; keep the default list for those.
			return nil, nil
		}
		switch key.Type() {
		case ssh.KeyAlgoRSA:
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		default:
			add(key.Type())
		}
	}
	return algs, nil
}
