package webhook

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
)

// TestSignKnownVector: the signature is HMAC-SHA256 over timestamp + "." + body with
// the secret string as key, hex, prefixed v1= (the value was computed with Python's
// hmac module, as docs/webhooks.md's receiver does).
func TestSignKnownVector(t *testing.T) {
	t.Parallel()
	got := Sign("whsec_test", 1700000000, []byte(`{"id":"x"}`))
	want := "v1=80e8d098018f757aa814ab1abb924f35d304affa1d93d29611a54696207eb7c3"
	if got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	now := time.Unix(1700000000, 0)
	body := []byte(`{"id":"d1","event":"job.succeeded"}`)
	ts := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).Unix(), 10) }
	sig := func(secret string, d time.Duration, b []byte) string { return Sign(secret, now.Add(d).Unix(), b) }
	for _, tc := range []struct {
		name, secret, ts, sig string
		body                  []byte
		wantErr               string
	}{
		{name: "valid", secret: "s", ts: ts(0), sig: sig("s", 0, body), body: body},
		{name: "4m old", secret: "s", ts: ts(-4 * time.Minute), sig: sig("s", -4*time.Minute, body), body: body},
		{name: "6m old", secret: "s", ts: ts(-6 * time.Minute), sig: sig("s", -6*time.Minute, body), body: body, wantErr: "replay window"},
		{name: "6m ahead", secret: "s", ts: ts(6 * time.Minute), sig: sig("s", 6*time.Minute, body), body: body, wantErr: "replay window"},
		{name: "other secret", secret: "s", ts: ts(0), sig: sig("t", 0, body), body: body, wantErr: "does not match"},
		{name: "body changed", secret: "s", ts: ts(0), sig: sig("s", 0, body), body: append(bytes.Clone(body), ' '), wantErr: "does not match"},
		{name: "timestamp changed", secret: "s", ts: ts(time.Second), sig: sig("s", 0, body), body: body, wantErr: "does not match"},
		{name: "two signatures, second matches", secret: "s", ts: ts(0), sig: sig("old", 0, body) + ", " + sig("s", 0, body), body: body},
		{name: "not a number", secret: "s", ts: "yesterday", sig: sig("s", 0, body), body: body, wantErr: "not Unix seconds"},
		{name: "no signature", secret: "s", ts: ts(0), sig: "", body: body, wantErr: "does not match"},
	} {
		err := Verify(tc.secret, tc.ts, tc.sig, tc.body, now, ReplayWindow)
		if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: Verify = %v, want error %q", tc.name, err, tc.wantErr)
		}
	}
}

func TestEventFor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind  string
		state job.State
		want  string
	}{
		{job.EventState, job.Succeeded, EventSucceeded},
		{job.EventState, job.Failed, EventFailed},
		{job.EventState, job.Cancelled, EventCancelled},
		{job.EventState, job.Paused, EventPaused},
		{job.EventCheckpoint, job.Running, EventCheckpoint},
		{job.EventState, job.Submitting, ""},
		{job.EventState, job.Queued, ""},
		{job.EventState, job.Running, ""},
		{job.EventState, job.Pausing, ""},
		{job.EventProgress, job.Running, ""},
		{job.EventProgress, job.Succeeded, ""},
	} {
		if got := EventFor(tc.kind, tc.state); got != tc.want {
			t.Errorf("EventFor(%s, %s) = %q, want %q", tc.kind, tc.state, got, tc.want)
		}
	}
}

func TestCheckEvents(t *testing.T) {
	t.Parallel()
	got, err := CheckEvents([]string{"job.paused", "job.failed", "job.paused"})
	if err != nil || !slices.Equal(got, []string{"job.failed", "job.paused"}) {
		t.Errorf("CheckEvents = %v, %v; want sorted, deduplicated", got, err)
	}
	for _, in := range [][]string{nil, {"job.done"}, {"job.failed", ""}} {
		if _, err := CheckEvents(in); job.ErrorCode(err) != job.EUnprocessable {
			t.Errorf("CheckEvents(%q) = %v, want unprocessable", in, err)
		}
	}
}

// TestOutgoingBodyStable: the body sent carries the delivery's id and is the same
// bytes on every attempt; the job and checkpoint come from the event.
func TestOutgoingBodyStable(t *testing.T) {
	t.Parallel()
	loss := 0.25
	at := time.Date(2026, 11, 29, 12, 0, 0, 123456000, time.UTC)
	j := job.Job{ID: "j1", State: job.Running, User: "alice", Cluster: "dev", Spec: job.Spec{Name: "run"},
		Progress: job.Progress{Step: 50, TotalSteps: 100, Loss: &loss, LatestCheckpoint: "checkpoints/step-50"}}
	payload, err := json.Marshal(NewBody(EventCheckpoint, at, j, job.CheckpointEvent{Name: "checkpoints/step-50", Step: 50}))
	if err != nil {
		t.Fatal(err)
	}
	o := Outgoing{ID: "d1", Payload: payload}
	b1, err1 := o.Body()
	b2, err2 := o.Body()
	if err1 != nil || err2 != nil || !bytes.Equal(b1, b2) {
		t.Fatalf("Body not stable: %s / %s (%v %v)", b1, b2, err1, err2)
	}
	var got Body
	if err := json.Unmarshal(b1, &got); err != nil {
		t.Fatal(err)
	}
	if got.ID != "d1" || got.Event != EventCheckpoint || !got.OccurredAt.Equal(at) || got.Job.ID != "j1" || got.Job.Name != "run" ||
		got.Job.Step != 50 || got.Job.Loss == nil || *got.Job.Loss != 0.25 || got.Checkpoint == nil || got.Checkpoint.Step != 50 {
		t.Errorf("body %s", b1)
	}
	if _, err := (Outgoing{ID: "d2", Payload: []byte("{")}).Body(); err == nil {
		t.Error("a corrupt payload gave no error")
	}
}

func TestNewSecret(t *testing.T) {
	t.Parallel()
	a, b := NewSecret(), NewSecret()
	if a == b || !strings.HasPrefix(a, SecretPrefix) || len(a) != len(SecretPrefix)+43 {
		t.Errorf("secrets %q %q", a, b)
	}
}

// TestCheckAddr is the target policy's table: what is refused unless listed, what a
// listed address or CIDR opens, and what a listed host name does not.
func TestCheckAddr(t *testing.T) {
	t.Parallel()
	open, err := ParsePolicy([]string{"127.0.0.1", "10.20.0.0/16", "fd00:1::/32", "hooks.example.edu", "*.corp.example.edu"}, false)
	if err != nil {
		t.Fatal(err)
	}
	strict := open
	strict.OnlyListed = true
	none := Policy{}
	type row struct {
		p       Policy
		host    string
		addr    string
		wantErr string // "" allowed
	}
	rows := []row{
		// Public addresses: allowed unless only_listed.
		{none, "hooks.example.org", "8.8.8.8", ""},
		{none, "hooks.example.org", "2606:4700::1111", ""},
		{strict, "hooks.example.org", "8.8.8.8", "not in webhooks.allow"},
		{strict, "hooks.example.edu", "8.8.8.8", ""},
		{strict, "HOOKS.example.edu.", "8.8.8.8", ""},
		{strict, "a.b.corp.example.edu", "8.8.8.8", ""},
		{strict, "corp.example.edu", "8.8.8.8", "not in webhooks.allow"},
		{strict, "8.8.8.8", "8.8.8.8", "not in webhooks.allow"},
		// Refused ranges.
		{none, "x", "127.0.0.1", "loopback"},
		{none, "x", "127.255.0.9", "loopback"},
		{none, "x", "::1", "loopback"},
		{none, "x", "::ffff:127.0.0.1", "loopback"},
		{none, "x", "10.0.0.1", "private"},
		{none, "x", "172.16.5.5", "private"},
		{none, "x", "192.168.1.1", "private"},
		{none, "x", "fd12::1", "private"},
		{none, "x", "169.254.169.254", "link-local"},
		{none, "x", "fe80::1", "link-local"},
		{none, "x", "fe80::1%eth0", "link-local"},
		{none, "x", "0.0.0.0", "unspecified"},
		{none, "x", "::", "unspecified"},
		{none, "x", "0.1.2.3", "this-network"},
		{none, "x", "100.64.0.1", "shared"},
		{none, "x", "224.0.0.1", "link-local"}, // link-local multicast
		{none, "x", "239.1.1.1", "multicast"},
		{none, "x", "ff0e::1", "multicast"},
		{none, "x", "255.255.255.255", "broadcast"},
		{none, "x", "240.0.0.1", "reserved"},
		{none, "x", "198.18.0.1", "benchmarking"},
		{none, "x", "192.0.2.1", "documentation"},
		{none, "x", "64:ff9b::a00:1", "NAT64"},
		{none, "x", "2002:a00:1::1", "6to4"},
		// Listed addresses and CIDRs open exactly themselves.
		{open, "x", "127.0.0.1", ""},
		{open, "x", "::ffff:127.0.0.1", ""},
		{open, "x", "127.0.0.2", "loopback"},
		{open, "x", "10.20.3.4", ""},
		{open, "x", "10.21.0.1", "private"},
		{open, "x", "fd00:1:2::3", ""},
		{strict, "unlisted.example.org", "10.20.3.4", ""},
		// A listed host name never opens a non-public address.
		{open, "hooks.example.edu", "10.0.0.1", "private"},
		{open, "hooks.example.edu", "127.0.0.2", "loopback"},
	}
	for _, r := range rows {
		err := r.p.CheckAddr(r.host, netip.MustParseAddr(r.addr))
		if (err == nil) != (r.wantErr == "") || (err != nil && !strings.Contains(err.Error(), r.wantErr)) {
			t.Errorf("CheckAddr(%s, %s) with %+v = %v, want %q", r.host, r.addr, r.p, err, r.wantErr)
		}
	}
}

func TestParsePolicy(t *testing.T) {
	t.Parallel()
	p, err := ParsePolicy([]string{" 127.0.0.1 ", "10.1.2.3/8", "::1", "Hooks.Example.EDU.", "*.example.edu", "intranet"}, true)
	if err != nil {
		t.Fatal(err)
	}
	var pfx []string
	for _, x := range p.Prefixes {
		pfx = append(pfx, x.String())
	}
	if !slices.Equal(pfx, []string{"127.0.0.1/32", "10.0.0.0/8", "::1/128"}) ||
		!slices.Equal(p.Hosts, []string{"hooks.example.edu", "*.example.edu", "intranet"}) || !p.OnlyListed {
		t.Errorf("policy %v %v %v", pfx, p.Hosts, p.OnlyListed)
	}
	for _, bad := range []string{"", "http://hooks.example.edu", "10.0.0.0/33", "a..b", "*", "under_score.example", "127.1", "x.0x7f"} {
		if _, err := ParsePolicy([]string{bad}, false); err == nil {
			t.Errorf("ParsePolicy(%q) accepted", bad)
		}
	}
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	p, _ := ParsePolicy([]string{"127.0.0.1"}, false)
	for _, tc := range []struct {
		url, want, wantErr string
	}{
		{url: "https://hooks.example.edu/ftgate?x=1", want: "https://hooks.example.edu/ftgate?x=1"},
		{url: "http://hooks.example.edu:8080", want: "http://hooks.example.edu:8080"},
		{url: "http://127.0.0.1:9000/hook", want: "http://127.0.0.1:9000/hook"},
		{url: "http://localhost:9000/hook", want: "http://localhost:9000/hook"}, // resolved and checked by the caller
		{url: "", wantErr: "is required"},
		{url: "ftp://hooks.example.edu/", wantErr: "http:// or https://"},
		{url: "hooks.example.edu/x", wantErr: "http:// or https://"},
		{url: "https:///path", wantErr: "must name a host"},
		{url: "https://hooks.example.edu:pw@hooks.example.edu/", wantErr: "credentials"},
		{url: "https://hooks.example.edu/#frag", wantErr: "fragment"},
		{url: "https://hooks.example.edu/a b", wantErr: "spaces"},
		{url: "https://hooks.example.edu:0/", wantErr: "port"},
		{url: "https://hooks.example.edu:99999/", wantErr: "port"},
		{url: "https://hooks.example.edu:/", wantErr: "empty port"},
		{url: "http://[::1]:9000/", wantErr: "loopback"},
		{url: "http://127.0.0.2/", wantErr: "loopback"},
		{url: "http://[fe80::1%25eth0]/", wantErr: "link-local"},
		{url: "http://127.1/", wantErr: "not a valid host name"},
		{url: "http://127.0x1/", wantErr: "not a valid host name"},
		{url: "http://example.com_x/", wantErr: "not a valid host name"},
		{url: "https://hooks.example.edu/" + strings.Repeat("a", MaxURLLength), wantErr: "longer than"},
	} {
		got, err := p.CheckURL("url", tc.url)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || job.ErrorCode(err) != job.EUnprocessable || !strings.Contains(err.Error(), "url: ") {
				t.Errorf("CheckURL(%q) = %+v, %v; want unprocessable %q", truncate(tc.url, 60), got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got.URL != tc.want {
			t.Errorf("CheckURL(%q) = %+v, %v; want %s", tc.url, got, err, tc.want)
		}
	}
}
