package cmdutil

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/ftctl/apiclient"
)

// Exit codes.
const (
	ExitOK        = 0
	ExitError     = 1
	ExitUsage     = 2
	ExitLogin     = 4
	ExitJobFailed = 8
)

// JobFailedError is the outcome of a job that did not succeed, reported with
// --exit-status: exit code 8. The outcome was printed already, so Run prints nothing.
type JobFailedError struct {
	ID, State, Reason string
}

func (e *JobFailedError) Error() string {
	msg := fmt.Sprintf("job %s %s", e.ID, e.State)
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg
}

// UsageError is a command-line mistake: exit code 2.
type UsageError struct{ msg string }

func (e *UsageError) Error() string { return e.msg }

// UsageErrorf returns a *UsageError.
func UsageErrorf(format string, a ...any) error {
	return &UsageError{msg: fmt.Sprintf(format, a...)}
}

// Hinter is an error that says what to do about it, e.g. a mistake in a spec file.
type Hinter interface {
	error
	Hint() string
}

// hintError carries a hint shown after the error on the same line.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }

// WithHint attaches hint to err; FormatError shows it after the message.
func WithHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &hintError{err: err, hint: hint}
}

// ExitCode maps an error to ftctl's exit code: 0 ok, 1 error, 2 usage, 4 login
// needed, 8 job failed (with --exit-status).
func ExitCode(err error) int {
	var ue *UsageError
	var le *apiclient.LoginRequiredError
	var je *JobFailedError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &je):
		return ExitJobFailed
	case errors.As(err, &le):
		return ExitLogin
	case errors.As(err, &ue), isCobraUsageError(err):
		return ExitUsage
	}
	return ExitError
}

// isCobraUsageError recognizes cobra's own argument and command errors.
func isCobraUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command ", "unknown flag: ", "unknown shorthand flag: ", "flag needs an argument: ",
		"invalid argument ", "accepts ", "requires at least ", "requires at most ", "required flag(s) ", "if any flags in the group "} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// FormatError renders err as one line, with a hint on what to do next.
func FormatError(err error) string {
	err = apiclient.Unwrap(err)
	msg := strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
	if h := hintFor(err); h != "" {
		msg += " (hint: " + h + ")"
	}
	return msg
}

func hintFor(err error) string {
	var he *hintError
	ae, isAPI := err.(*client.Error) // only a bare gateway answer: wrapped ones carry their own context
	var ce *apiclient.ConnError
	var le *apiclient.LoginRequiredError
	var se Hinter
	var ue *UsageError
	var je *JobFailedError
	switch {
	case errors.As(err, &he):
		return he.hint
	case errors.As(err, &le), errors.As(err, &je):
		return ""
	case errors.As(err, &ce):
		return "check --server, FTCTL_SERVER or the config file, and that the gateway is running"
	case errors.As(err, &se):
		return se.Hint()
	case errors.As(err, &ue), isCobraUsageError(err):
		return "see `ftctl --help` or `ftctl COMMAND --help`"
	case errors.Is(err, context.DeadlineExceeded):
		return "the gateway did not answer in time; try again"
	case isAPI:
		switch {
		case ae.Status == http.StatusNotFound:
			return "`ftctl list` shows your jobs"
		case ae.Status == http.StatusForbidden:
			return "your account is not allowed to do this; ask your cluster admin"
		case ae.Status == http.StatusConflict:
			return "`ftctl status JOB` shows the job's state"
		case ae.Status == http.StatusUnprocessableEntity || ae.Status == http.StatusBadRequest:
			return "fix the named field"
		case ae.Status == http.StatusTooManyRequests:
			return "wait for some of your jobs to finish, or cancel one"
		case ae.Status >= 500:
			return "the gateway or the cluster failed; try again, or ask your cluster admin"
		}
	}
	return ""
}
