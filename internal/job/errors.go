package job

import (
	"errors"
	"fmt"
)

// Error codes. The API maps each to one HTTP status in one place (internal/api).
const (
	EInvalid       = "invalid"       // the client's input is wrong (400/422)
	EUnprocessable = "unprocessable" // well-formed but not acceptable (422)
	ENotFound      = "not_found"     // no such thing, or not the caller's (404)
	EConflict      = "conflict"      // the state does not allow it (409)
	EUnauthorized  = "unauthorized"  // no or bad credentials (401)
	EForbidden     = "forbidden"     // authenticated but not allowed (403)
	ETooMany       = "too_many"      // quota exceeded (429)
	ETooLarge      = "too_large"     // body too large (413)
	EUnavailable   = "unavailable"   // a dependency is down; retry (503)
	EInternal      = "internal"      // a bug or an unexpected failure (500)
)

// Error is a domain error with a code and a message safe to show the client.
type Error struct {
	Code    string
	Message string
	// Details are optional structured facts for clients beside the message (the limit
	// and usage of a quota refusal); the API writes them as error.details.
	Details map[string]any
	Err     error // optional cause, never shown to clients
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, or EInternal.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err == nil {
		return ""
	}
	return EInternal
}

// ErrorMessage returns the client-safe message of err.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
