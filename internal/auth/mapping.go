package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ftgate/ftgate/internal/job"
)

// LoadMapping reads a YAML mapping file of OIDC subject -> Unix account, e.g.
//
//	"CiQwOGE4Njg0Yi1kYjg4LTRiNzMtOTBhOS0zY2QxNjYxZjU0NjYSBWxvY2Fs": alice
//
// Every account must match job.UserRE and not be in deny. Entries win over the
// username claim.
func LoadMapping(path string, deny map[string]bool) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read oidc.mapping_file: %w", err)
	}
	m := map[string]string{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse oidc.mapping_file %s: must be a map of subject: account: %w", path, err)
	}
	subs := make([]string, 0, len(m))
	for s := range m {
		subs = append(subs, s)
	}
	sort.Strings(subs)
	for _, s := range subs {
		if s == "" {
			return nil, fmt.Errorf("oidc.mapping_file %s: empty subject", path)
		}
		if err := checkUsername(m[s], deny); err != nil {
			return nil, fmt.Errorf("oidc.mapping_file %s: subject %q: %s", path, s, job.ErrorMessage(err))
		}
	}
	return m, nil
}

// mappingReload is the state of the mapping file's reloads: the file as last read
// (size and modification time) and the callback told of each result.
type mappingReload struct {
	mu      sync.Mutex // one load at a time
	size    int64
	modTime time.Time
	onLoad  func(err error)
}

// loadMapping reads the mapping file and checks every account as New does (the
// accounts every token is checked against); on success the new mapping is in force
// for the next request, on failure the one in force stays.
func (v *Verifier) loadMapping() error {
	r := &v.reload
	r.mu.Lock()
	defer r.mu.Unlock()
	path := v.cfg.MappingFile
	if fi, err := os.Stat(path); err == nil {
		r.size, r.modTime = fi.Size(), fi.ModTime()
	}
	m, err := LoadMapping(path, v.deny)
	if err == nil {
		subs := make([]string, 0, len(m))
		for s := range m {
			subs = append(subs, s)
		}
		sort.Strings(subs)
		for _, sub := range subs {
			if cerr := v.CheckUsername(m[sub]); cerr != nil {
				err = fmt.Errorf("oidc.mapping_file %s: subject %q: %s", path, sub, job.ErrorMessage(cerr))
				break
			}
		}
	}
	if err == nil {
		v.mapping.Store(&m)
	}
	return err
}

// ReloadMapping reads the mapping file again (SIGHUP, or a change WatchMapping saw).
// A file that cannot be read or has a bad entry leaves the mapping in force; the
// error is logged and returned.
func (v *Verifier) ReloadMapping() error {
	if v.cfg.MappingFile == "" {
		return nil
	}
	err := v.loadMapping()
	if err != nil {
		v.log.Error("mapping file reload failed; keeping the mapping in force", "file", v.cfg.MappingFile, "err", err)
	} else {
		n := 0
		if m := v.mapping.Load(); m != nil {
			n = len(*m)
		}
		v.log.Info("mapping file reloaded", "file", v.cfg.MappingFile, "subjects", n)
	}
	if v.reload.onLoad != nil {
		v.reload.onLoad(err)
	}
	return err
}

// mappingChanged reports whether the file's size or modification time differ from
// those of the last load (a file that cannot be stat'ed has changed: reloading it
// reports the error).
func (v *Verifier) mappingChanged() bool {
	fi, err := os.Stat(v.cfg.MappingFile)
	r := &v.reload
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		changed := r.size != -1
		r.size = -1 // report a missing file once, until it is back
		return changed
	}
	return fi.Size() != r.size || !fi.ModTime().Equal(r.modTime)
}

// WatchMapping reloads the mapping file when its size or modification time changes
// (checked every interval) and whenever hup delivers (SIGHUP), until ctx ends. It
// returns at once without a mapping file.
func (v *Verifier) WatchMapping(ctx context.Context, interval time.Duration, hup <-chan os.Signal) {
	if v.cfg.MappingFile == "" {
		return
	}
	if interval <= 0 {
		interval = 5 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			_ = v.ReloadMapping()
		case <-t.C:
			if v.mappingChanged() {
				_ = v.ReloadMapping()
			}
		}
	}
}
