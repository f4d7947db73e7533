package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestWebServesWhatNoRouteMatches: the dashboard gets unmatched paths outside /api/;
// API paths keep their JSON errors.
func TestWebServesWhatNoRouteMatches(t *testing.T) {
	web := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("web " + r.URL.Path)) })
	h := (&Server{Web: web, Version: "t"}).Handler()
	for _, c := range []struct {
		path, want string
		status     int
	}{
		{"/", "web /", 200},
		{"/jobs/3c7eb71e-0bdc-44e5-a420-2b636ff19f30", "web /jobs/", 200},
		{"/auth/login", "web /auth/login", 200},
		{"/assets/app.js", "web /assets/app.js", 200},
		{"/api/nope", `"code":"not_found"`, 404},
		{"/api/whoami", `"code":"unauthorized"`, 401},
		{"/health", `"status":"ok"`, 200},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", c.path, nil))
		if rec.Code != c.status || !strings.Contains(rec.Body.String(), c.want) {
			t.Errorf("GET %s: %d %q, want %d %q", c.path, rec.Code, rec.Body, c.status, c.want)
		}
	}
	rec := httptest.NewRecorder()
	(&Server{}).Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 404 || !strings.Contains(rec.Body.String(), "not_found") {
		t.Errorf("without Web: GET / %d %s", rec.Code, rec.Body)
	}
}
