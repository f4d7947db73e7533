package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestWebhooksNotConfigured: without a webhook store every webhook route answers 503
// with the error body, never a 500 or a panic.
func TestWebhooksNotConfigured(t *testing.T) {
	t.Parallel()
	h := (&Server{Auth: tokenAuth{}}).Handler()
	for _, rt := range []struct{ method, path, body string }{
		{"POST", "/api/webhooks", `{"url":"http://127.0.0.1:9/x","events":["job.failed"]}`},
		{"GET", "/api/webhooks", ""},
		{"DELETE", "/api/webhooks/00000000-0000-4000-8000-000000000001", ""},
		{"GET", "/api/webhooks/00000000-0000-4000-8000-000000000001/deliveries", ""},
	} {
		req := httptest.NewRequest(rt.method, rt.path, strings.NewReader(rt.body))
		req.Header.Set("Authorization", "Bearer alice")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), `"code":"unavailable"`) {
			t.Errorf("%s %s: %d %s, want 503", rt.method, rt.path, rec.Code, rec.Body)
		}
	}
}
