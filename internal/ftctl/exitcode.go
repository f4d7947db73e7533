package ftctl

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// jobFailedError is the outcome of a job that did not succeed, reported with
// --exit-status: exit code 8.
type jobFailedError struct {
	id, state, reason string
}

func (e *jobFailedError) Error() string {
	msg := fmt.Sprintf("job %s %s", e.id, e.state)
	if e.reason != "" {
		msg += ": " + e.reason
	}
	return msg
}

// hintError carries a hint shown after the error on the same line.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }

func withHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &hintError{err: err, hint: hint}
}

// ExitCode maps an error to ftctl's exit code: 0 ok, 1 error, 2 usage, 4 login
// needed, 8 job failed (with --exit-status).
func ExitCode(err error) int {
	var ue *usageError
	var le *LoginRequiredError
	var je *jobFailedError
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
	msg := strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
	if h := hintFor(err); h != "" {
		msg += " (hint: " + h + ")"
	}
	return msg
}

func hintFor(err error) string {
	var he *hintError
	ae, isAPI := err.(*APIError) // only a bare gateway answer: wrapped ones carry their own context
	var ce *connError
	var le *LoginRequiredError
	var se *specError
	var ue *usageError
	var je *jobFailedError
	switch {
	case errors.As(err, &he):
		return he.hint
	case errors.As(err, &le), errors.As(err, &je):
		return ""
	case errors.As(err, &ce):
		return "check --server, FTCTL_SERVER or the config file, and that the gateway is running"
	case errors.As(err, &se):
		return "fix that field; see `ftctl submit --help` or docs/spec.md"
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
