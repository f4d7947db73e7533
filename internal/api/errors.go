package api

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/worker"
)

// statusOf maps domain error codes to HTTP status codes: the one place that does.
var statusOf = map[string]int{
	job.EInvalid:       http.StatusBadRequest,
	job.EUnprocessable: http.StatusUnprocessableEntity,
	job.ENotFound:      http.StatusNotFound,
	job.EConflict:      http.StatusConflict,
	job.EUnauthorized:  http.StatusUnauthorized,
	job.EForbidden:     http.StatusForbidden,
	job.ETooMany:       http.StatusTooManyRequests,
	job.ETooLarge:      http.StatusRequestEntityTooLarge,
	job.EUnavailable:   http.StatusServiceUnavailable,
	job.EInternal:      http.StatusInternalServerError,
}

// Error writes err as {"error":{"code","message"}} with the status of its code, and
// the error's details when it has some (a quota refusal's limit and usage).
// Internal errors are logged and shown only as "internal error".
func (s *Server) Error(w http.ResponseWriter, r *http.Request, err error) {
	code := job.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if status >= 500 {
		s.logger().Error("request failed", "method", r.Method, "path", r.URL.Path, "code", code, "err", err)
	}
	var e *job.Error
	if code == job.EUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ftgate"`)
	}
	if errors.As(err, &e) {
		writeJSON(w, status, client.ErrorBody{Error: client.ErrorDetail{Code: code, Message: e.Message, Details: e.Details}})
		return
	}
	writeError(w, status, job.EInternal, "internal error")
}

func (s *Server) logger() *slog.Logger { return worker.Logger(s.Log) }
