package api

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ftgate/ftgate/internal/metrics"
)

func scrape(t *testing.T, h http.Handler, auth string) (int, string) {
	t.Helper()
	req := httptest.NewRequest("GET", "/metrics", nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

// TestMetricsMethodLabel: odd methods are counted as OTHER, so 500 distinct methods
// add one series, not 500.
func TestMetricsMethodLabel(t *testing.T) {
	t.Parallel()
	srv := &Server{Metrics: metrics.New()}
	h := srv.Handler()
	for i := range 500 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(fmt.Sprintf("X%03d", i), "/health", nil))
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/health", nil))
	_, out := scrape(t, h, "")
	if strings.Contains(out, `method="X0`) {
		t.Errorf("a raw method became a label")
	}
	for _, want := range []string{`method="OTHER",route="unmatched",status="405"} 500`, `method="GET",route="/health",status="200"} 1`} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestMetricsProtected: metrics.bearer_token guards /metrics; metrics.listen moves it
// off the API listener.
func TestMetricsProtected(t *testing.T) {
	t.Parallel()
	srv := &Server{Metrics: metrics.New(), MetricsToken: "s3cret"}
	h := srv.Handler()
	for _, tt := range []struct {
		auth string
		want int
	}{{"", 401}, {"Bearer nope", 401}, {"s3cret", 401}, {"Bearer s3cret", 200}} {
		if code, body := scrape(t, h, tt.auth); code != tt.want {
			t.Errorf("Authorization %q: %d %.80s, want %d", tt.auth, code, body, tt.want)
		}
	}
	srv = &Server{Metrics: metrics.New(), MetricsSeparate: true}
	if code, _ := scrape(t, srv.Handler(), ""); code != 404 {
		t.Errorf("separate metrics on the API listener: %d, want 404", code)
	}
	if code, body := scrape(t, srv.MetricsHandler(), ""); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Errorf("metrics listener: %d %.80s", code, body)
	}
}
