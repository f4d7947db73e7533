package ftctltest

import (
	"bytes"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

// DexBrowser approves a device code through Dex's HTML pages with a cookie jar: the
// code form, then the local connector's login form.
type DexBrowser struct {
	Email, Password string
	once            sync.Once
	done            chan error
}

// Approve starts approving code at verifyURI (an authorization URL when code is "").
func (b *DexBrowser) Approve(verifyURI, code string) {
	b.once.Do(func() {
		b.done = make(chan error, 1)
		go func() { b.done <- b.run(verifyURI, code) }()
	})
}

// Wait waits for the approval to finish.
func (b *DexBrowser) Wait() error {
	if b.done == nil {
		return fmt.Errorf("no device code was printed")
	}
	return <-b.done
}

var formActionRE = regexp.MustCompile(`<form method="post" action="([^"]+)"`)

// run approves code at verifyURI; with no code, verifyURI is an authorization URL
// whose redirect lands on ftctl's loopback listener.
func (b *DexBrowser) run(verifyURI, code string) error {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 20 * time.Second}
	page, at, err := get(c, verifyURI)
	if err != nil {
		return err
	}
	if code != "" {
		page, at, err = submit(c, page, at, url.Values{"user_code": {code}})
		if err != nil {
			return fmt.Errorf("user code form: %w", err)
		}
	}
	page, _, err = submit(c, page, at, url.Values{"login": {b.Email}, "password": {b.Password}})
	if err != nil {
		return fmt.Errorf("login form: %w", err)
	}
	if !strings.Contains(strings.ToLower(page), "success") && !strings.Contains(page, "ftctl is logged in") {
		return fmt.Errorf("after login Dex shows: %.400s", page)
	}
	return nil
}

func get(c *http.Client, u string) (string, *url.URL, error) {
	resp, err := c.Get(u)
	if err != nil {
		return "", nil, err
	}
	return read(resp)
}

// submit posts form to the first POST form's action on page (at is the page's URL).
func submit(c *http.Client, page string, at *url.URL, form url.Values) (string, *url.URL, error) {
	m := formActionRE.FindStringSubmatch(page)
	if m == nil {
		return "", nil, fmt.Errorf("no POST form on %s: %.400s", at, page)
	}
	action, err := at.Parse(html.UnescapeString(m[1]))
	if err != nil {
		return "", nil, err
	}
	resp, err := c.PostForm(action.String(), form)
	if err != nil {
		return "", nil, err
	}
	return read(resp)
}

func read(resp *http.Response) (string, *url.URL, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return "", nil, fmt.Errorf("%s: HTTP %d: %.400s", resp.Request.URL, resp.StatusCode, bytes.TrimSpace(b))
	}
	return string(b), resp.Request.URL, nil
}
