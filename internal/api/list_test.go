package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/metrics"
)

// TestListSortAndSearch: GET /api/jobs's q, sort and order reach the store, a cursor
// continues only its own sort, and bad values answer 400 naming the parameter.
func TestListSortAndSearch(t *testing.T) {
	t.Parallel()
	store := newMemStore()
	for id, v := range map[string]float64{"job-a": 0.9, "job-p": 0.4} {
		j := store.jobs[id]
		j.Progress.Loss = &v
		store.jobs[id] = j
	}
	j := store.jobs["job-p"]
	j.Spec.Name = "llama-sweep"
	store.jobs["job-p"] = j
	srv := &Server{Auth: tokenAuth{}, Store: store, Log: slog.New(slog.DiscardHandler), MaxBody: 4096, Version: "test", Metrics: metrics.New()}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	c := client.New(ts.URL, &http.Client{Transport: authTransport{http.DefaultTransport, "admin"}})
	ctx := context.Background()
	list := func(o client.ListOptions) string {
		t.Helper()
		page, err := c.Jobs(ctx, o)
		if err != nil {
			t.Fatalf("%+v: %v", o, err)
		}
		var got []string
		for _, j := range page.Jobs {
			got = append(got, j.ID)
		}
		return strings.Join(got, " ")
	}
	for _, tc := range []struct {
		o    client.ListOptions
		want string
	}{
		{client.ListOptions{}, "job-b job-p job-a"},
		{client.ListOptions{Order: "asc"}, "job-a job-p job-b"},
		{client.ListOptions{Sort: "loss"}, "job-p job-a job-b"},
		{client.ListOptions{Sort: "loss", Order: "desc"}, "job-a job-p job-b"},
		{client.ListOptions{Search: "LLAMA"}, "job-p"},
		{client.ListOptions{Search: "tiny", Sort: "loss"}, "job-p job-a job-b"},
		{client.ListOptions{Search: "nothing"}, ""},
	} {
		if got := list(tc.o); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.o, got, tc.want)
		}
	}
	page, err := c.Jobs(ctx, client.ListOptions{Sort: "loss", Limit: 1})
	if err != nil || page.NextCursor == "" {
		t.Fatalf("first loss page: %v %+v", err, page)
	}
	if got := list(client.ListOptions{Sort: "loss", Limit: 1, Cursor: page.NextCursor}); got != "job-a" {
		t.Errorf("second loss page: %q, want job-a", got)
	}
	for _, tc := range []struct{ query, field string }{
		{"sort=size", "sort: want one of created, duration, loss, eval_loss"},
		{"sort=-loss", "sort: "},
		{"sort=loss&order=up", "order: want asc or desc"},
		{"q=" + strings.Repeat("x", 257), "q: at most 256 characters"},
		{"sort=created&cursor=" + url.QueryEscape(page.NextCursor), "cursor: it continues a list sorted by loss asc"},
		{"sort=loss&order=desc&cursor=" + url.QueryEscape(page.NextCursor), "cursor: it continues a list sorted by loss asc"},
		{"search=llama", `unknown query parameter "search"`},
	} {
		req, _ := http.NewRequest("GET", ts.URL+"/api/jobs?"+tc.query, nil)
		req.Header.Set("Authorization", "Bearer alice")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body client.ErrorBody
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 400 || err != nil || body.Error.Code != "invalid" || !strings.Contains(body.Error.Message, tc.field) {
			t.Errorf("%.60s: %d %+v, want 400 invalid %q", tc.query, resp.StatusCode, body, tc.field)
		}
	}
}
