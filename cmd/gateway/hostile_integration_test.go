package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
)

// hostilePayloads are the values sent into every spec field, path parameter and query
// parameter. Every string that could run a command creates a file under marker when
// it is executed anywhere (gateway host, login node shell, batch script, trainer).
func hostilePayloads(marker string) []any {
	m := func(n int) string { return filepath.Join(marker, fmt.Sprintf("m%d", n)) }
	return []any{
		"; touch " + m(1), "$(touch " + m(2) + ")", "`touch " + m(3) + "`", "a\ntouch " + m(4), "a\rtouch " + m(5),
		"a && touch " + m(6), "a | touch " + m(7), "'; touch " + m(8) + "; '", "\"; touch " + m(9) + "; \"",
		"${IFS}touch${IFS}" + m(10), "/data/$(touch " + m(11) + ").jsonl", "q_proj\ntouch " + m(12),
		"a\x00b", "\x00", "..", "../..", "../../../etc/passwd", "/etc/passwd", "/", "~root", "-rf", "--all",
		"--wrap=touch " + m(13), "-oProxyCommand=touch " + m(14), "%s%n%x", "' OR 1=1 --", "\u202egnp.exe",
		"<script>alert(1)</script>", "*", "?", "[", "\\", "\"", "", " ", strings.Repeat("A", 10000), "ftgate-x\n#SBATCH --wrap=touch " + m(15),
		-1, 0, 1e308, -1e308, 9223372036854775807, 3.5, true, false, nil, []any{}, map[string]any{}, []any{"x", 1},
		map[string]any{"$(touch " + m(16) + ")": 1}, "5", "NaN", "Infinity",
	}
}

// leafPaths lists the JSON paths of every leaf field of t (dotted).
func leafPaths(t reflect.Type, prefix string) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		p := prefix + name
		if f.Type.Kind() == reflect.Struct && f.Type.String() != "time.Time" {
			out = append(out, leafPaths(f.Type, p+".")...)
			continue
		}
		out = append(out, p)
	}
	return out
}

// setPath sets the dotted path in m to v, creating objects.
func setPath(m map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		sub, ok := m[p].(map[string]any)
		if !ok {
			sub = map[string]any{}
			m[p] = sub
		}
		m = sub
	}
	m[parts[len(parts)-1]] = v
}

func deepCopy(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

// hostileTally counts the answers.
type hostileTally struct {
	sent, ok2xx, c4xx, c5xx, other int
	bad5xx                         []string
	badBody                        []string
}

func (h *hostileTally) record(what string, code int, body []byte) {
	h.sent++
	switch {
	case code >= 200 && code < 300:
		h.ok2xx++
	case code >= 400 && code < 500:
		h.c4xx++
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(body, &e) != nil || e.Error.Code == "" || e.Error.Message == "" {
			if len(h.badBody) < 10 {
				h.badBody = append(h.badBody, fmt.Sprintf("%s -> %d %.200q", what, code, body))
			}
		}
	case code >= 500:
		h.c5xx++
		if len(h.bad5xx) < 20 {
			h.bad5xx = append(h.bad5xx, fmt.Sprintf("%s -> %d %.300s", what, code, body))
		}
	default:
		h.other++
	}
}

// TestIntegrationHostileInput sends every hostile payload into every spec field (as
// a dry run, which validates and renders the batch script exactly as a submission
// would), every path parameter and every query parameter of the real API on the
// stack, then submits for real every spec a dry run accepted that carries a marker
// command. It prints payloads sent, 2xx, 4xx, 5xx (must be 0) and executed (marker
// files created: must be 0).
func TestIntegrationHostileInput(t *testing.T) {
	e := startE2E(t)
	marker, err := os.MkdirTemp("", "ftgate-hostile-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(marker, 0o1777) // job users may create markers if anything executes
	t.Cleanup(func() { os.RemoveAll(marker) })
	payloads := hostilePayloads(marker)
	client := &http.Client{}
	send := func(method, path string, body []byte) (int, []byte) {
		// Streams (follow, events) answer 200 and keep going: read what comes within
		// the deadline; a request must get its status line within it.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, method, e.url+path, bytes.NewReader(body))
		if err != nil {
			return 0, nil // not even a valid request line: the client refuses
		}
		go func() {
			select {
			case <-ctx.Done():
			case <-time.After(300 * time.Millisecond):
				if strings.Contains(path, "/events") || strings.Contains(path, "/logs") {
					cancel() // a stream that started: enough
				}
			}
		}()
		req.Header.Set("Authorization", "Bearer "+e.token)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%.200s %.200q: %v (no status within the deadline, or the server died)", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, b
	}
	var tally [3]hostileTally // spec fields, path parameters, query parameters
	start := time.Now()

	// 1. Spec fields (dry runs).
	base := e.spec(5, 0)
	fields := leafPaths(reflect.TypeOf(job.Spec{}), "")
	var accepted [][]byte
	for _, f := range fields {
		for _, p := range payloads {
			m := deepCopy(base)
			setPath(m, f, p)
			body, err := json.Marshal(m)
			if err != nil {
				continue
			}
			code, resp := send("POST", "/api/training/execute?dry_run=1", body)
			tally[0].record(fmt.Sprintf("spec %s=%.40q", f, fmt.Sprint(p)), code, resp)
			if code/100 == 2 && bytes.Contains(body, []byte("touch")) {
				accepted = append(accepted, body)
				t.Logf("dry run accepted a marker payload in %s: %.80q", f, fmt.Sprint(p))
			}
		}
	}
	// Raw bodies that are not JSON objects at all.
	for _, raw := range []string{"", "null", "[]", "\"x\"", "{", "{\"method\":", strings.Repeat("[", 10000), "\x00\x01", "{\"method\":\"sft\"}{}"} {
		code, resp := send("POST", "/api/training/execute", []byte(raw))
		tally[0].record(fmt.Sprintf("body %.40q", raw), code, resp)
	}

	// 2. Path parameters of every route (a real finished job of the caller for {job_id}
	// when the payload is {name}).
	realID := e.execute(5, 0)
	e.wait(realID, 3*time.Minute, "success", stateIs("succeeded"))
	routes := []struct{ method, path string }{
		{"GET", "/api/training/status/%s"}, {"POST", "/api/training/cancel/%s"}, {"POST", "/api/training/pause/%s"},
		{"POST", "/api/training/resume/%s"}, {"GET", "/api/training/%s/logs"}, {"GET", "/api/training/%s/checkpoints"},
		{"GET", "/api/training/%s/model"}, {"GET", "/api/training/%s/model/manifest"}, {"PUT", "/api/training/%s/pin"},
		{"DELETE", "/api/training/%s/pin"}, {"GET", "/api/training/%s/metrics"}, {"GET", "/api/training/%s/events?follow=0"},
		{"GET", "/api/training/" + realID + "/checkpoints/%s"}, {"DELETE", "/api/training/" + realID + "/checkpoints/%s"},
		{"DELETE", "/api/training/%s"},
	}
	for _, rt := range routes {
		for _, p := range payloads {
			s, ok := p.(string)
			if !ok {
				s = fmt.Sprint(p)
			}
			code, resp := send(rt.method, fmt.Sprintf(rt.path, url.PathEscape(s)), nil)
			if code == 0 {
				continue
			}
			tally[1].record(fmt.Sprintf("%s %s with %.40q", rt.method, rt.path, s), code, resp)
		}
	}

	// 3. Query parameters.
	queries := []struct{ path, param string }{
		{"/api/jobs", "status"}, {"/api/jobs", "limit"}, {"/api/jobs", "cursor"}, {"/api/jobs", "user"},
		{"/api/jobs", "model"}, {"/api/jobs", "cluster"}, {"/api/jobs", "from"}, {"/api/jobs", "to"},
		{"/api/training/" + realID + "/logs", "file"}, {"/api/training/" + realID + "/logs", "offset"},
		{"/api/training/" + realID + "/logs", "tail"}, {"/api/training/" + realID + "/model", "file"},
		{"/api/training/" + realID + "/metrics", "max_points"}, {"/api/training/" + realID + "/events?follow=0&x=1", "log_offset"},
		{"/api/training/" + realID + "/events?x=1", "follow"}, {"/api/training/" + realID + "/events?follow=0&x=1", "after"},
		{"/api/training/execute?x=1", "dry_run"},
	}
	for _, q := range queries {
		for _, p := range payloads {
			s, ok := p.(string)
			if !ok {
				s = fmt.Sprint(p)
			}
			sep := "?"
			if strings.Contains(q.path, "?") {
				sep = "&"
			}
			method, body := "GET", []byte(nil)
			if strings.HasPrefix(q.path, "/api/training/execute") {
				method, body = "POST", []byte("{}")
			}
			code, resp := send(method, q.path+sep+q.param+"="+url.QueryEscape(s), body)
			tally[2].record(fmt.Sprintf("%s %s=%.40q", q.path, q.param, s), code, resp)
		}
	}

	// 4. What dry runs accepted with a marker command in it is submitted for real.
	var realIDs []string
	for _, body := range accepted[:min(len(accepted), 10)] {
		code, resp := send("POST", "/api/training/execute", body)
		var j struct{ ID string }
		_ = json.Unmarshal(resp, &j)
		if code/100 == 2 && j.ID != "" {
			realIDs = append(realIDs, j.ID)
		}
	}
	for _, id := range realIDs {
		e.wait(id, 3*time.Minute, "failed or finished", stateIs("succeeded", "failed", "cancelled"))
	}
	executed, _ := filepath.Glob(filepath.Join(marker, "*"))

	var total hostileTally
	t.Logf("hostile input: %d payloads x (%d spec fields, %d path routes, %d query parameters); %v", len(payloads), len(fields), len(routes), len(queries), time.Since(start).Round(time.Second))
	t.Logf("%-18s %8s %6s %6s %6s", "target", "sent", "2xx", "4xx", "5xx")
	for i, name := range []string{"spec fields", "path parameters", "query parameters"} {
		h := tally[i]
		t.Logf("%-18s %8d %6d %6d %6d", name, h.sent, h.ok2xx, h.c4xx, h.c5xx)
		total.sent += h.sent
		total.ok2xx += h.ok2xx
		total.c4xx += h.c4xx
		total.c5xx += h.c5xx
		for _, b := range h.bad5xx {
			t.Errorf("5xx: %s", b)
		}
		for _, b := range h.badBody {
			t.Errorf("4xx without an {error:{code,message}} body: %s", b)
		}
	}
	t.Logf("%-18s %8d %6d %6d %6d", "total", total.sent, total.ok2xx, total.c4xx, total.c5xx)
	t.Logf("accepted dry runs carrying a marker command: %d; submitted for real: %d; executed (marker files): %d", len(accepted), len(realIDs), len(executed))
	sort.Strings(executed)
	if len(executed) > 0 {
		t.Errorf("hostile payloads executed: %v", executed)
	}
	if total.sent < 200 {
		t.Errorf("only %d payloads sent", total.sent)
	}
}
