package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
)

// TestOpenAPICoversEveryRoute: the route table's documented routes and the document's
// operations are the same set, and the router serves exactly the table.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	s := &Server{}
	table := map[string]bool{}
	for _, rt := range s.routes() {
		table[rt.method+" "+rt.pattern] = true
		if rt.undocumented {
			continue
		}
		if _, ok := doc.Paths[rt.pattern][strings.ToLower(rt.method)]; !ok {
			t.Errorf("route %s %s is missing from openapi.json", rt.method, rt.pattern)
		}
	}
	for p, ops := range doc.Paths {
		for m := range ops {
			if m == "parameters" {
				continue
			}
			if !table[strings.ToUpper(m)+" "+p] {
				t.Errorf("openapi.json documents %s %s, which is not in the route table", strings.ToUpper(m), p)
			}
		}
	}
	served := 0
	err := chi.Walk(s.Handler().(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		served++
		if !table[method+" "+route] {
			t.Errorf("router serves %s %s, which is not in the route table", method, route)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if served != len(table) {
		t.Errorf("router serves %d routes, the table has %d", served, len(table))
	}
}

// TestAuthRequired: every /api route but two answers 401 without a token.
func TestAuthRequired(t *testing.T) {
	t.Parallel()
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
