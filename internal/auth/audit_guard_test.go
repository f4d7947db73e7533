package auth_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/ftgate/ftgate/internal/auth"
)

// TestAuditResults: the result of each audited request follows its status (ok below
// 400, denied for 401 and 403, error for the rest), a handler that writes nothing is
// 200, and the job id of a created job comes from its Location header (2xx only).
func TestAuditResults(t *testing.T) {
	tests := []struct {
		status   int // 0: the handler writes nothing
		location string
		result   string
		job      string
		code     float64
	}{
		{0, "", "ok", "", 200},
		{http.StatusCreated, "/api/training/status/j-new", "ok", "j-new", 201},
		{http.StatusMultipleChoices, "/elsewhere/j-300", "ok", "", 300},
		{http.StatusFound, "/elsewhere/j-x", "ok", "", 302},
		{http.StatusBadRequest, "", "error", "", 400},
		{http.StatusUnauthorized, "", "denied", "", 401},
		{http.StatusForbidden, "", "denied", "", 403},
		{http.StatusNotFound, "/api/training/status/j-404", "error", "", 404},
		{http.StatusServiceUnavailable, "", "error", "", 503},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		h := auth.NewAudit(slog.New(slog.NewJSONHandler(&buf, nil))).Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if tt.location != "" {
				w.Header().Set("Location", tt.location)
			}
			if tt.status != 0 {
				w.WriteHeader(tt.status)
			}
		}))
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/api/x", nil))
		var m map[string]any
		if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
			t.Fatalf("status %d: audit line %q: %v", tt.status, buf.String(), err)
		}
		if m["result"] != tt.result || m["job"] != tt.job || m["status"] != tt.code || m["route"] != "/api/x" {
			t.Errorf("status %d: result %v job %v status %v route %v; want %s %q %v /api/x", tt.status, m["result"], m["job"], m["status"], m["route"], tt.result, tt.job, tt.code)
		}
	}
}
