// Package tokencache keeps ftctl's login sessions (one per gateway) in one private
// file and hands out fresh bearer tokens, refreshing them under a file lock.
package tokencache

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/oauth2"

	"github.com/ftgate/ftgate/internal/atomicfile"
	"github.com/ftgate/ftgate/internal/ftctl/apiclient"
)

// refreshMargin is how long before expiry a token is refreshed.
const refreshMargin = time.Minute

// Session is one login to one gateway: where the tokens come from and the tokens.
type Session struct {
	Server       string    `json:"server"`
	Issuer       string    `json:"issuer"`
	ClientID     string    `json:"client_id"`
	Scopes       []string  `json:"scopes"`
	Audience     string    `json:"audience,omitempty"`
	TokenURL     string    `json:"token_url"`
	AccessToken  string    `json:"access_token"`
	IDToken      string    `json:"id_token,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry"`
}

// Bearer returns the token to send to the gateway and its expiry: the access token
// when it is a JWT, else the ID token (the gateway verifies JWTs only).
func (s *Session) Bearer() (string, time.Time) {
	tok := s.AccessToken
	if !isJWT(tok) && isJWT(s.IDToken) {
		tok = s.IDToken
	}
	exp := s.Expiry
	if e, ok := jwtExpiry(tok); ok && (exp.IsZero() || e.Before(exp)) {
		exp = e
	}
	return tok, exp
}

func isJWT(tok string) bool { return strings.Count(tok, ".") == 2 }

// jwtExpiry reads a JWT's exp claim without verifying it (for scheduling refreshes).
func jwtExpiry(tok string) (time.Time, bool) {
	c, ok := JWTClaims(tok)
	if !ok {
		return time.Time{}, false
	}
	exp, ok := c["exp"].(float64)
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(int64(exp), 0), true
}

// JWTClaims decodes a JWT's claims without verifying it.
func JWTClaims(tok string) (map[string]any, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, false
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, false
	}
	var c map[string]any
	if json.Unmarshal(b, &c) != nil {
		return nil, false
	}
	return c, true
}

// SetToken stores an OAuth2 token response in the session.
func (s *Session) SetToken(t *oauth2.Token) {
	s.AccessToken = t.AccessToken
	if id, ok := t.Extra("id_token").(string); ok && id != "" {
		s.IDToken = id
	}
	if t.RefreshToken != "" {
		s.RefreshToken = t.RefreshToken
	}
	s.Expiry = t.Expiry
}

// TokenCache keeps sessions per gateway in one JSON file (mode 0600).
type TokenCache struct {
	Path   string
	Now    func() time.Time
	Client *http.Client // for refresh requests
}

type cacheFile struct {
	Sessions map[string]*Session `json:"sessions"`
}

func (c *TokenCache) read() (*cacheFile, error) {
	f := &cacheFile{Sessions: map[string]*Session{}}
	fi, err := os.Stat(c.Path)
	if errors.Is(err, os.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read token cache: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("token cache %s is accessible by other users (mode %04o): run `chmod 600 %s` or log in again", c.Path, fi.Mode().Perm(), c.Path)
	}
	b, err := os.ReadFile(c.Path)
	if err != nil {
		return nil, fmt.Errorf("read token cache: %w", err)
	}
	if err := json.Unmarshal(b, f); err != nil {
		return nil, fmt.Errorf("parse token cache %s: %w (delete it and log in again)", c.Path, err)
	}
	if f.Sessions == nil {
		f.Sessions = map[string]*Session{}
	}
	return f, nil
}

func (c *TokenCache) write(f *cacheFile) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("encode token cache: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(c.Path), 0o700); err != nil {
		return fmt.Errorf("create config directory: %w", err)
	}
	return atomicfile.Write(c.Path, b, 0o600)
}

// Load returns the session for server, or nil when there is none.
func (c *TokenCache) Load(server string) (*Session, error) {
	f, err := c.read()
	if err != nil {
		return nil, err
	}
	return f.Sessions[server], nil
}

// Save stores s under s.Server.
func (c *TokenCache) Save(s *Session) error {
	unlock, err := c.lock()
	if err != nil {
		return err
	}
	defer unlock()
	f, err := c.read()
	if err != nil {
		return err
	}
	f.Sessions[s.Server] = s
	return c.write(f)
}

// Delete removes the session for server and reports whether there was one.
func (c *TokenCache) Delete(server string) (bool, error) {
	unlock, err := c.lock()
	if err != nil {
		return false, err
	}
	defer unlock()
	f, err := c.read()
	if err != nil {
		return false, err
	}
	if _, ok := f.Sessions[server]; !ok {
		return false, nil
	}
	delete(f.Sessions, server)
	return true, c.write(f)
}

// Token returns a bearer token for server valid for at least a minute, refreshing
// (and saving) the session when needed. It returns *apiclient.LoginRequiredError when there is
// no session or the refresh token no longer works.
func (c *TokenCache) Token(ctx context.Context, server string) (string, error) {
	s, err := c.Load(server)
	if err != nil {
		return "", err
	}
	if s == nil {
		return "", &apiclient.LoginRequiredError{Server: server}
	}
	tok, exp := s.Bearer()
	if c.now().Add(refreshMargin).Before(exp) {
		return tok, nil
	}
	s, err = c.Refresh(ctx, server, tok)
	if err != nil {
		return "", err
	}
	tok, _ = s.Bearer()
	return tok, nil
}

// Refresh uses the refresh token of server's session and saves the new tokens, unless
// another process replaced the stale bearer token meanwhile.
func (c *TokenCache) Refresh(ctx context.Context, server, stale string) (*Session, error) {
	unlock, err := c.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	f, err := c.read()
	if err != nil {
		return nil, err
	}
	s := f.Sessions[server]
	if s == nil {
		return nil, &apiclient.LoginRequiredError{Server: server}
	}
	if tok, _ := s.Bearer(); tok != stale {
		return s, nil // refreshed meanwhile by another ftctl
	}
	if s.RefreshToken == "" {
		return nil, &apiclient.LoginRequiredError{Server: server, Reason: "your session has expired"}
	}
	conf := &oauth2.Config{ClientID: s.ClientID, Scopes: s.Scopes, Endpoint: oauth2.Endpoint{TokenURL: s.TokenURL, AuthStyle: oauth2.AuthStyleInParams}}
	if c.Client != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, c.Client)
	}
	t, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: s.RefreshToken}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode >= 400 && re.Response.StatusCode < 500 {
			return nil, &apiclient.LoginRequiredError{Server: server, Reason: "your session has expired"}
		}
		return nil, fmt.Errorf("refresh token at %s: %w", s.TokenURL, err)
	}
	s.SetToken(t)
	if err := c.write(f); err != nil {
		return nil, err
	}
	return s, nil
}

// lock takes an exclusive lock beside the cache file so concurrent ftctl processes do
// not spend the same (rotating) refresh token twice.
func (c *TokenCache) lock() (func(), error) {
	if err := os.MkdirAll(filepath.Dir(c.Path), 0o700); err != nil {
		return nil, fmt.Errorf("create config directory: %w", err)
	}
	lf, err := os.OpenFile(c.Path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock token cache: %w", err)
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		lf.Close()
		return nil, fmt.Errorf("lock token cache: %w", err)
	}
	return func() {
		_ = syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)
		lf.Close()
	}, nil
}

func (c *TokenCache) now() time.Time {
	if c.Now == nil {
		return time.Now()
	}
	return c.Now()
}
