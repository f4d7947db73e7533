package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Client calls the gateway's REST API. HTTP carries authentication (a transport that
// sets the bearer token); nil means http.DefaultClient.
type Client struct {
	BaseURL   string
	HTTP      *http.Client
	UserAgent string
}

// New returns a Client for the gateway at baseURL.
func New(baseURL string, hc *http.Client) *Client {
	return &Client{BaseURL: baseURL, HTTP: hc}
}

// Error is an error answer of the gateway: its HTTP status and {"error":{"code","message"}}.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("gateway answered %d", e.Status)
	}
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
}

// IsStatus reports whether err is an *Error with the given HTTP status.
func IsStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}

// CheckResponse returns nil for a 2xx response and an *Error read from the body for
// any other status.
func CheckResponse(resp *http.Response) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	var body ErrorBody
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_ = json.Unmarshal(b, &body)
	return &Error{Status: resp.StatusCode, Code: body.Error.Code, Message: body.Error.Message}
}

func (c *Client) url(path string, q url.Values) string {
	u := strings.TrimRight(c.BaseURL, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// Request sends one request and returns the response when its status is 2xx; any
// other status is returned as an *Error. The caller closes the body.
func (c *Client) Request(ctx context.Context, method, path string, q url.Values, hdr http.Header, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.url(path, q), body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if err := CheckResponse(resp); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return resp, nil
}

// Do sends a JSON request (in may be nil) and decodes the JSON answer into out (may
// be nil). A *json.RawMessage out receives the answer's bytes.
func (c *Client) Do(ctx context.Context, method, path string, q url.Values, hdr http.Header, in, out any) error {
	_, err := c.do(ctx, method, path, q, hdr, in, out)
	return err
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, hdr http.Header, in, out any) (http.Header, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	resp, err := c.Request(ctx, method, path, q, hdr, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return resp.Header, nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		if err != nil {
			return nil, fmt.Errorf("read answer of %s %s: %w", method, path, err)
		}
		*raw = b
		return resp.Header, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return nil, fmt.Errorf("decode answer of %s %s: %w", method, path, err)
	}
	return resp.Header, nil
}

func get[T any](ctx context.Context, c *Client, path string, q url.Values) (T, error) {
	var out T
	err := c.Do(ctx, http.MethodGet, path, q, nil, nil, &out)
	return out, err
}

func send[T any](ctx context.Context, c *Client, method, path string, q url.Values) (T, error) {
	var out T
	err := c.Do(ctx, method, path, q, nil, nil, &out)
	return out, err
}

func jobPath(id string, rest ...string) string {
	p := "/api/training/" + url.PathEscape(id)
	for _, r := range rest {
		p += "/" + r
	}
	return p
}

// Health is GET /health.
func (c *Client) Health(ctx context.Context) (Health, error) {
	return get[Health](ctx, c, "/health", nil)
}

// AuthConfig is GET /api/auth/config.
func (c *Client) AuthConfig(ctx context.Context) (AuthConfig, error) {
	return get[AuthConfig](ctx, c, "/api/auth/config", nil)
}

// Whoami is GET /api/whoami.
func (c *Client) Whoami(ctx context.Context) (Whoami, error) {
	return get[Whoami](ctx, c, "/api/whoami", nil)
}

// ExecuteOptions are the options of Execute.
type ExecuteOptions struct {
	// IdempotencyKey makes a retried submission answer the first one's job.
	IdempotencyKey string
}

// Execute is POST /api/training/execute. spec is a Spec, a TemplateRun or their JSON
// (json.RawMessage). replayed is true when the Idempotency-Key matched an earlier
// submission, whose job is returned.
func (c *Client) Execute(ctx context.Context, spec any, opts ExecuteOptions) (j Job, replayed bool, err error) {
	var hdr http.Header
	if opts.IdempotencyKey != "" {
		hdr = http.Header{"Idempotency-Key": {opts.IdempotencyKey}}
	}
	h, err := c.do(ctx, http.MethodPost, "/api/training/execute", nil, hdr, spec, &j)
	if err != nil {
		return Job{}, false, err
	}
	return j, h.Get("Idempotent-Replayed") == "true", nil
}

// DryRun is POST /api/training/execute?dry_run=1: nothing is submitted.
func (c *Client) DryRun(ctx context.Context, spec any) (DryRun, error) {
	var out DryRun
	err := c.Do(ctx, http.MethodPost, "/api/training/execute", url.Values{"dry_run": {"1"}}, nil, spec, &out)
	return out, err
}

// Job is GET /api/training/status/{job_id}.
func (c *Client) Job(ctx context.Context, id string) (Job, error) {
	return get[Job](ctx, c, "/api/training/status/"+url.PathEscape(id), nil)
}

// Cancel is POST /api/training/cancel/{job_id}.
func (c *Client) Cancel(ctx context.Context, id string) (Job, error) {
	return send[Job](ctx, c, http.MethodPost, "/api/training/cancel/"+url.PathEscape(id), nil)
}

// Pause is POST /api/training/pause/{job_id}.
func (c *Client) Pause(ctx context.Context, id string) (Job, error) {
	return send[Job](ctx, c, http.MethodPost, "/api/training/pause/"+url.PathEscape(id), nil)
}

// Resume is POST /api/training/resume/{job_id}.
func (c *Client) Resume(ctx context.Context, id string) (Job, error) {
	return send[Job](ctx, c, http.MethodPost, "/api/training/resume/"+url.PathEscape(id), nil)
}

// ListOptions are the filters of GET /api/jobs; zero values are left out.
type ListOptions struct {
	States  []State
	From    string // RFC 3339 or YYYY-MM-DD
	To      string
	Model   string
	Search  string // q: substring of the name or the model
	Cluster string
	User    string // admins only, or the caller's own account
	Sort    string // created (default), duration, loss or eval_loss
	Order   string // asc or desc; "" takes the sort's default
	Limit   int
	Cursor  string
}

// Query returns the options as query parameters.
func (o ListOptions) Query() url.Values {
	q := url.Values{}
	if len(o.States) > 0 {
		s := make([]string, len(o.States))
		for i, st := range o.States {
			s[i] = string(st)
		}
		q.Set("status", strings.Join(s, ","))
	}
	for k, v := range map[string]string{"from": o.From, "to": o.To, "model": o.Model, "q": o.Search, "cluster": o.Cluster, "user": o.User,
		"sort": o.Sort, "order": o.Order, "cursor": o.Cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	return q
}

// Jobs is GET /api/jobs: one page.
func (c *Client) Jobs(ctx context.Context, opts ListOptions) (JobList, error) {
	return get[JobList](ctx, c, "/api/jobs", opts.Query())
}

// TemplateListOptions are the parameters of Templates; zero values are left out.
type TemplateListOptions struct {
	Visibility string // private or shared
	Limit      int
	Cursor     string
}

// Templates is GET /api/templates: one page of the templates the caller may use.
func (c *Client) Templates(ctx context.Context, opts TemplateListOptions) (TemplateList, error) {
	q := url.Values{}
	for k, v := range map[string]string{"visibility": opts.Visibility, "cursor": opts.Cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	return get[TemplateList](ctx, c, "/api/templates", q)
}

func templatePath(name string) string { return "/api/templates/" + url.PathEscape(name) }

// Template is GET /api/templates/{name}: ref is NAME (the latest version) or
// NAME@VERSION.
func (c *Client) Template(ctx context.Context, ref string) (Template, error) {
	return get[Template](ctx, c, templatePath(ref), nil)
}

// CreateTemplate is POST /api/templates.
func (c *Client) CreateTemplate(ctx context.Context, req TemplateRequest) (Template, error) {
	var out Template
	err := c.Do(ctx, http.MethodPost, "/api/templates", nil, nil, req, &out)
	return out, err
}

// UpdateTemplate is PUT /api/templates/{name}: the template's next version.
func (c *Client) UpdateTemplate(ctx context.Context, name string, req TemplateRequest) (Template, error) {
	var out Template
	err := c.Do(ctx, http.MethodPut, templatePath(name), nil, nil, req, &out)
	return out, err
}

// DeleteTemplate is DELETE /api/templates/{name}: every version.
func (c *Client) DeleteTemplate(ctx context.Context, name string) (TemplateDeleted, error) {
	return send[TemplateDeleted](ctx, c, http.MethodDelete, templatePath(name), nil)
}

// SystemStatus is GET /api/system/status.
func (c *Client) SystemStatus(ctx context.Context) (SystemStatus, error) {
	return get[SystemStatus](ctx, c, "/api/system/status", nil)
}

// Usage is GET /api/usage: the caller's usage and limits, or (admins only) those of
// Unix account user.
func (c *Client) Usage(ctx context.Context, user string) (Usage, error) {
	var q url.Values
	if user != "" {
		q = url.Values{"user": {user}}
	}
	return get[Usage](ctx, c, "/api/usage", q)
}

// Checkpoints is GET /api/training/{job_id}/checkpoints.
func (c *Client) Checkpoints(ctx context.Context, id string) (CheckpointList, error) {
	return get[CheckpointList](ctx, c, jobPath(id, "checkpoints"), nil)
}

// DeleteCheckpoint is DELETE /api/training/{job_id}/checkpoints/{name}.
func (c *Client) DeleteCheckpoint(ctx context.Context, id, name string) error {
	return c.Do(ctx, http.MethodDelete, jobPath(id, "checkpoints", url.PathEscape(name)), nil, nil, nil, nil)
}

// ModelManifest is GET /api/training/{job_id}/model/manifest.
func (c *Client) ModelManifest(ctx context.Context, id string) (Manifest, error) {
	return get[Manifest](ctx, c, jobPath(id, "model", "manifest"), nil)
}

// MetricsOptions are the parameters of Metrics; SinceStep < 0 and MaxPoints 0 take
// the gateway's defaults.
type MetricsOptions struct {
	SinceStep int64
	MaxPoints int
}

// Metrics is GET /api/training/{job_id}/metrics.
func (c *Client) Metrics(ctx context.Context, id string, opts MetricsOptions) (Metrics, error) {
	q := url.Values{}
	if opts.SinceStep >= 0 {
		q.Set("since_step", strconv.FormatInt(opts.SinceStep, 10))
	}
	if opts.MaxPoints > 0 {
		q.Set("max_points", strconv.Itoa(opts.MaxPoints))
	}
	return get[Metrics](ctx, c, jobPath(id, "metrics"), q)
}

// Pin is PUT (pinned) or DELETE (not pinned) /api/training/{job_id}/pin.
func (c *Client) Pin(ctx context.Context, id string, pinned bool) (PinState, error) {
	m := http.MethodPut
	if !pinned {
		m = http.MethodDelete
	}
	return send[PinState](ctx, c, m, jobPath(id, "pin"), nil)
}

// Purge is DELETE /api/training/{job_id}?purge=1: removes a finished job's directory.
func (c *Client) Purge(ctx context.Context, id string) (Purged, error) {
	return send[Purged](ctx, c, http.MethodDelete, jobPath(id), url.Values{"purge": {"1"}})
}

// PageOptions page a list: at most Limit entries (0: the gateway's default) after
// Cursor (a NextCursor of the previous page).
type PageOptions struct {
	Limit  int
	Cursor string
}

func (o PageOptions) query() url.Values {
	q := url.Values{}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Cursor != "" {
		q.Set("cursor", o.Cursor)
	}
	return q
}

func webhookPath(id string, rest ...string) string {
	p := "/api/webhooks/" + url.PathEscape(id)
	for _, r := range rest {
		p += "/" + r
	}
	return p
}

// CreateWebhook is POST /api/webhooks: the answer carries the endpoint's signing
// secret, the only time it is shown.
func (c *Client) CreateWebhook(ctx context.Context, req WebhookRequest) (Webhook, error) {
	var out Webhook
	err := c.Do(ctx, http.MethodPost, "/api/webhooks", nil, nil, req, &out)
	return out, err
}

// Webhooks is GET /api/webhooks: one page of the caller's endpoints.
func (c *Client) Webhooks(ctx context.Context, opts PageOptions) (WebhookList, error) {
	return get[WebhookList](ctx, c, "/api/webhooks", opts.query())
}

// DeleteWebhook is DELETE /api/webhooks/{webhook_id}.
func (c *Client) DeleteWebhook(ctx context.Context, id string) (WebhookDeleted, error) {
	return send[WebhookDeleted](ctx, c, http.MethodDelete, webhookPath(id), nil)
}

// WebhookDeliveries is GET /api/webhooks/{webhook_id}/deliveries: one page of the
// endpoint's delivery log.
func (c *Client) WebhookDeliveries(ctx context.Context, id string, opts PageOptions) (DeliveryList, error) {
	return get[DeliveryList](ctx, c, webhookPath(id, "deliveries"), opts.query())
}

// LogOptions are the parameters of Logs: Offset or Tail (not both); Follow keeps the
// response open until the job ends.
type LogOptions struct {
	Offset int64
	Tail   int
	Follow bool
}

// Logs is GET /api/training/{job_id}/logs: the Slurm output as text/plain. The
// headers X-Log-File, X-Log-Offset and (without Follow) X-Log-Next-Offset describe
// it. The caller closes the body.
func (c *Client) Logs(ctx context.Context, id string, opts LogOptions) (*http.Response, error) {
	q := url.Values{}
	if opts.Offset > 0 {
		q.Set("offset", strconv.FormatInt(opts.Offset, 10))
	}
	if opts.Tail > 0 {
		q.Set("tail", strconv.Itoa(opts.Tail))
	}
	if opts.Follow {
		q.Set("follow", "1")
	}
	return c.Request(ctx, http.MethodGet, jobPath(id, "logs"), q, http.Header{"Accept": {"text/plain"}}, nil)
}

// Download is GET of the model (checkpoint "") or a checkpoint of a job: a tar
// stream of the directory, or with file one file (hdr may carry Range/If-Range).
// The caller closes the body.
func (c *Client) Download(ctx context.Context, id, checkpoint, file string, hdr http.Header) (*http.Response, error) {
	p := jobPath(id, "model")
	if checkpoint != "" {
		p = jobPath(id, "checkpoints", url.PathEscape(checkpoint))
	}
	var q url.Values
	if file != "" {
		q = url.Values{"file": {file}}
	}
	if hdr == nil {
		hdr = http.Header{}
	}
	if hdr.Get("Accept") == "" {
		hdr = hdr.Clone()
		hdr.Set("Accept", "*/*")
	}
	return c.Request(ctx, http.MethodGet, p, q, hdr, nil)
}

// EventOptions are the parameters of Events.
type EventOptions struct {
	// After resumes a job's stream after this event id (Last-Event-ID); 0 starts at
	// the first event.
	After int64
	// Cursor resumes GET /api/events (Last-Event-ID): the last SSEEvent.ID read from
	// it. The server replays what the cursor has not seen, each event once; "" starts
	// now. An "event: reset" says the cursor was too far behind (reload the jobs).
	Cursor string
	// Logs adds log lines (SSE event "log") from LogOffset, or from the log's
	// current end when LogOffset < 0.
	Logs      bool
	LogOffset int64
}

// Events is GET /api/training/{job_id}/events (id != "") or GET /api/events (id
// == ""): a Server-Sent Events stream. Read it with ReadSSE; the caller closes
// the body.
func (c *Client) Events(ctx context.Context, id string, opts EventOptions) (*http.Response, error) {
	p, q, hdr := "/api/events", url.Values{}, http.Header{"Accept": {"text/event-stream"}}
	if id == "" && opts.Cursor != "" {
		hdr.Set("Last-Event-ID", opts.Cursor)
	}
	if id != "" {
		p = jobPath(id, "events")
		if opts.After > 0 {
			hdr.Set("Last-Event-ID", strconv.FormatInt(opts.After, 10))
		}
		if opts.Logs {
			q.Set("logs", "1")
			if opts.LogOffset >= 0 {
				q.Set("log_offset", strconv.FormatInt(opts.LogOffset, 10))
			}
		}
	}
	return c.Request(ctx, http.MethodGet, p, q, hdr, nil)
}

// OpenAPI is GET /api/openapi.json, the API's description.
func (c *Client) OpenAPI(ctx context.Context) (json.RawMessage, error) {
	var raw json.RawMessage
	err := c.Do(ctx, http.MethodGet, "/api/openapi.json", nil, nil, nil, &raw)
	return raw, err
}
