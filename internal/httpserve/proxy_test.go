package httpserve

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// echo reports what the handler behind TrustProxies sees.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "remote=%s host=%s scheme=%s xff=%q", r.RemoteAddr, r.Host, r.URL.Scheme, r.Header.Get(HeaderFor))
})

func TestTrustProxies(t *testing.T) {
	trusted, err := ParsePrefixes([]string{"10.0.0.0/8", "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	h := TrustProxies(trusted, echo)
	for _, tc := range []struct {
		name, peer string
		headers    map[string]string
		want       string
	}{
		{"direct client, no headers", "198.51.100.9:5000", nil, `remote=198.51.100.9:5000 host=gw scheme= xff=""`},
		{"untrusted peer: headers dropped", "198.51.100.9:5000",
			map[string]string{HeaderFor: "203.0.113.5", HeaderProto: "https", HeaderHost: "evil"},
			`remote=198.51.100.9:5000 host=gw scheme= xff=""`},
		{"trusted proxy", "10.1.2.3:443",
			map[string]string{HeaderFor: "203.0.113.5", HeaderProto: "https", HeaderHost: "ftgate.example"},
			`remote=203.0.113.5:0 host=ftgate.example scheme=https xff="203.0.113.5"`},
		{"client-sent XFF through the proxy: right-most untrusted hop wins", "10.1.2.3:443",
			map[string]string{HeaderFor: "1.2.3.4, 203.0.113.5, 10.9.9.9"},
			`remote=203.0.113.5:0 host=gw scheme= xff="1.2.3.4, 203.0.113.5, 10.9.9.9"`},
		{"single trusted address", "192.0.2.7:1", map[string]string{HeaderFor: "203.0.113.5"},
			`remote=203.0.113.5:0 host=gw scheme= xff="203.0.113.5"`},
		{"neighbour of the single address is not trusted", "192.0.2.8:1", map[string]string{HeaderFor: "203.0.113.5"},
			`remote=192.0.2.8:1 host=gw scheme= xff=""`},
		{"malformed XFF keeps the proxy", "10.1.2.3:443", map[string]string{HeaderFor: "not-an-ip"},
			`remote=10.1.2.3:443 host=gw scheme= xff="not-an-ip"`},
		{"odd proto and host ignored", "10.1.2.3:443", map[string]string{HeaderProto: "gopher", HeaderHost: "a/b"},
			`remote=10.1.2.3:443 host=gw scheme= xff=""`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/api/jobs", nil)
			r.Host = "gw"
			r.RemoteAddr = tc.peer
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if got := w.Body.String(); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestTrustProxiesOnALoopbackListener: the same rules on a real server, where the peer
// address is the TCP connection's.
func TestTrustProxiesOnALoopbackListener(t *testing.T) {
	get := func(trusted []string) string {
		ps, err := ParsePrefixes(trusted)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(TrustProxies(ps, echo))
		defer srv.Close()
		req, _ := http.NewRequest("GET", srv.URL, nil)
		req.Header.Set(HeaderFor, "203.0.113.5")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := get([]string{"127.0.0.1/32"}); !strings.Contains(got, "remote=203.0.113.5:0") {
		t.Errorf("loopback trusted: %s", got)
	}
	if got := get([]string{"10.0.0.0/8"}); !strings.Contains(got, "remote=127.0.0.1:") || !strings.Contains(got, `xff=""`) {
		t.Errorf("loopback not trusted: %s", got)
	}
}

func TestParsePrefixes(t *testing.T) {
	if _, err := ParsePrefixes([]string{"10.0.0.0/8", "::1", "fd00::/8"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ParsePrefixes([]string{"10.0.0.0/33"}); err == nil {
		t.Fatal("bad CIDR accepted")
	}
}
