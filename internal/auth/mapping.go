package auth

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

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
