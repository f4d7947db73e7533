package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/ftgate/ftgate/internal/sshconn"
)

func TestDialFailureReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("x: %w", sshconn.ErrHostKey), "host_key"},
		{fmt.Errorf("x: %w", sshconn.ErrAuth), "auth"},
		{errors.New("connection refused"), "unreachable"},
	} {
		if got := dialFailureReason(tc.err); got != tc.want {
			t.Errorf("dialFailureReason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
