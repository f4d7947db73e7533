package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
)

// TestOpenAPICoversEveryRoute walks the route table and checks the document.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(openapiDoc, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	s := &Server{}
	routes := map[string]bool{}
	err := chi.Walk(s.Handler().(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routes[route] = true
		ops, ok := doc.Paths[route]
		if !ok {
			t.Errorf("route %s %s is missing from openapi.json", method, route)
			return nil
		}
		if _, ok := ops[strings.ToLower(method)]; !ok {
			t.Errorf("route %s %s: method missing from openapi.json", method, route)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) != len(doc.Paths) {
		t.Errorf("router has %d routes, openapi.json has %d paths", len(routes), len(doc.Paths))
	}
}

// TestAuthRequired: every /api route but two answers 401 without a token.
func TestAuthRequired(t *testing.T) {
	h := (&Server{Auth: tokenAuth{}}).Handler()
	open := map[string]bool{"/api/auth/config": true, "/api/openapi.json": true}
	err := chi.Walk(h.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if !strings.HasPrefix(route, "/api/") || open[route] {
			return nil
		}
		path := strings.ReplaceAll(route, "{job_id}", "00000000-0000-4000-8000-000000000000")
		for _, auth := range []string{"", "Bearer bad"} {
			req := httptest.NewRequest(method, path, strings.NewReader("{}"))
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), `"code":"unauthorized"`) {
				t.Errorf("%s %s with %q: %d %s, want 401", method, route, auth, rec.Code, rec.Body)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for route := range open {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", route, nil))
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s without a token: %d, want 200", route, rec.Code)
		}
	}
}
