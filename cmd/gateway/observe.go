package main

import (
	"errors"

	"github.com/ftgate/ftgate/internal/sshconn"
)

// dialFailureReason is the reason label of ftgate_ssh_dial_failures_total: host_key
// (the login node's key does not match the pin), auth (it refused our certificate or
// key) or unreachable (anything else).
func dialFailureReason(err error) string {
	switch {
	case errors.Is(err, sshconn.ErrHostKey):
		return "host_key"
	case errors.Is(err, sshconn.ErrAuth):
		return "auth"
	}
	return "unreachable"
}
