package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// CheckFileModes refuses to run with secrets other users can read: each cluster's
// user_ca_key and service_key, and the config file at path when it holds a secret
// (a database URL with a password). Each must not be readable, writable or
// executable by group or other (chmod 600).
func CheckFileModes(path string, c *Config) error {
	var errs []error
	check := func(key, file string) {
		fi, err := os.Stat(file)
		if err != nil {
			errs = append(errs, fmt.Errorf("config %s: %w", key, err))
			return
		}
		if m := fi.Mode().Perm(); m&0o077 != 0 {
			errs = append(errs, fmt.Errorf("config %s: %s is mode %04o, readable by group or other; chmod 600 it", key, file, m))
		}
	}
	if path != "" && fileHoldsSecret(path) {
		check("file", path)
	}
	for i, cl := range c.Clusters {
		if cl.UserCAKey != "" {
			check(fmt.Sprintf("clusters[%d].user_ca_key", i), cl.UserCAKey)
		}
		if cl.ServiceKey != "" {
			check(fmt.Sprintf("clusters[%d].service_key", i), cl.ServiceKey)
		}
	}
	return errors.Join(errs...)
}

// fileHoldsSecret reports whether the config file itself names a secret: a database
// URL with a password.
func fileHoldsSecret(path string) bool {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		return false
	}
	return urlHasPassword(c.Database.URL)
}

func urlHasPassword(s string) bool {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return true
		}
		if u.Query().Get("password") != "" {
			return true
		}
	}
	return strings.Contains(s, "password=")
}
