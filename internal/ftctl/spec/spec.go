// Package spec loads a job spec file for `ftctl submit`: YAML or JSON, --set
// overrides, every key and type checked against job.Spec with file, line and field
// named, relative dataset paths resolved.
package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/job"
)

// Error is a mistake in a spec file or a --set override; its message names the
// file, line and field.
type Error struct{ msg string }

func (e *Error) Error() string { return e.msg }

// Hint points at the spec's documentation (cmdutil.FormatError shows it).
func (e *Error) Hint() string { return "fix that field; see `ftctl submit --help` or docs/spec.md" }

func specErrorf(format string, a ...any) error {
	return &Error{msg: fmt.Sprintf(format, a...)}
}

// Source is where a spec comes from: a file (or "-" for stdin) and --set overrides.
type Source struct {
	File  string
	Sets  []string
	Stdin io.Reader
	// Dir resolves relative paths given by --set or read from stdin (the working directory).
	Dir string
}

// Load reads a spec file (YAML or JSON), applies --set overrides, checks every key
// and type against job.Spec, and resolves relative dataset paths: paths from the file
// against the file's directory, paths from --set or stdin against Dir.
func Load(src Source) (job.Spec, error) {
	var data []byte
	var err error
	name := src.File
	baseDir := src.Dir
	switch src.File {
	case "":
		return job.Spec{}, cmdutil.UsageErrorf("a spec file is required: -f FILE (or -f - for stdin)")
	case "-":
		name = "<stdin>"
		if src.Stdin == nil {
			return job.Spec{}, cmdutil.UsageErrorf("-f -: no standard input")
		}
		data, err = io.ReadAll(io.LimitReader(src.Stdin, maxSpecBytes+1))
	default:
		data, err = readSpecFile(src.File)
		abs, aerr := filepath.Abs(src.File)
		if aerr != nil {
			return job.Spec{}, fmt.Errorf("resolve %s: %w", src.File, aerr)
		}
		baseDir = filepath.Dir(abs)
	}
	if err != nil {
		return job.Spec{}, err
	}
	if len(data) > maxSpecBytes {
		return job.Spec{}, specErrorf("%s: larger than %d bytes; is this a spec file?", name, maxSpecBytes)
	}
	tree, err := parseSpecTree(name, data)
	if err != nil {
		return job.Spec{}, err
	}
	fromSet := map[string]bool{}
	for _, kv := range src.Sets {
		key, err := applySet(tree, kv)
		if err != nil {
			return job.Spec{}, err
		}
		fromSet[key] = true
	}
	b, err := json.Marshal(tree)
	if err != nil {
		return job.Spec{}, fmt.Errorf("encode spec: %w", err)
	}
	spec, err := job.DecodeSpec(bytes.NewReader(b))
	if err != nil {
		return job.Spec{}, specErrorf("%s: %s", name, job.ErrorMessage(err))
	}
	resolve := func(p *string, key string) {
		if *p == "" || filepath.IsAbs(*p) {
			return
		}
		dir := baseDir
		if fromSet[key] {
			dir = src.Dir
		}
		*p = filepath.Join(dir, *p)
	}
	resolve(&spec.Dataset.Path, "dataset.path")
	resolve(&spec.Dataset.EvalPath, "dataset.eval_path")
	return spec, nil
}

// Overrides turns --set key=value flags into the overrides of a submission from a
// template: a JSON object of the spec fields they name, each value checked against
// the field's type, and relative dataset paths resolved against dir. A value of null
// (or ~) removes the template's value, so the gateway's default applies.
func Overrides(sets []string, dir string) (map[string]any, error) {
	tree := map[string]any{}
	for _, kv := range sets {
		if _, err := applySet(tree, kv); err != nil {
			return nil, err
		}
	}
	if ds, ok := tree["dataset"].(map[string]any); ok {
		for _, k := range []string{"path", "eval_path"} {
			if p, ok := ds[k].(string); ok && p != "" && !filepath.IsAbs(p) {
				ds[k] = filepath.Join(dir, p)
			}
		}
	}
	return tree, nil
}

// Check validates a normalized copy of spec with the gateway's own rules, so most
// mistakes are caught before anything is sent.
func Check(spec job.Spec) error {
	s := spec
	s.LoRA.TargetModules = append([]string(nil), spec.LoRA.TargetModules...)
	s.Normalize()
	if err := s.Validate(); err != nil {
		return specErrorf("%s", job.ErrorMessage(err))
	}
	return nil
}

const maxSpecBytes = 1 << 20

func readSpecFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, specErrorf("spec file %s does not exist", path)
		}
		return nil, fmt.Errorf("open spec file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat spec file: %w", err)
	}
	if st.IsDir() {
		return nil, specErrorf("spec file %s is a directory", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSpecBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read spec file: %w", err)
	}
	return b, nil
}

var specType = reflect.TypeFor[job.Spec]()

// parseSpecTree parses YAML (JSON is YAML) into a map, checking every key against the
// Spec's JSON field names and every scalar against the field's type, with line numbers.
func parseSpecTree(name string, data []byte) (map[string]any, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, specErrorf("%s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, specErrorf("%s: empty spec, want a mapping with at least method, model and dataset", name)
	}
	v, err := convertNode(name, doc.Content[0], specType, "")
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, specErrorf("%s:%d: the spec must be a mapping (key: value lines)", name, doc.Content[0].Line)
	}
	return m, nil
}

func joinKey(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// jsonFields maps a struct's JSON names to their field types (pointers to their
// element types).
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("json"), ",")[0]
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer { // an optional section (notify) reads as its struct
			ft = ft.Elem()
		}
		out[tag] = ft
	}
	return out
}

func convertNode(name string, n *yaml.Node, t reflect.Type, key string) (any, error) {
	at := func(format string, a ...any) error {
		field := key
		if field == "" {
			field = "spec"
		}
		return specErrorf("%s:%d: %s: %s", name, n.Line, field, fmt.Sprintf(format, a...))
	}
	if n.Kind == yaml.AliasNode {
		return convertNode(name, n.Alias, t, key)
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return nil, at("want a mapping, got %s", describeNode(n))
		}
		fields := jsonFields(t)
		out := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			full := joinKey(key, k.Value)
			if !ok {
				msg := fmt.Sprintf("%s:%d: %s: unknown field", name, k.Line, full)
				if s := suggest(k.Value, fields); s != "" {
					msg += fmt.Sprintf(" (did you mean %s?)", joinKey(key, s))
				} else {
					msg += fmt.Sprintf(" (known: %s)", strings.Join(slices.Sorted(maps.Keys(fields)), ", "))
				}
				return nil, &Error{msg: msg}
			}
			if _, dup := out[k.Value]; dup {
				return nil, specErrorf("%s:%d: %s: set twice", name, k.Line, full)
			}
			cv, err := convertNode(name, v, ft, full)
			if err != nil {
				return nil, err
			}
			out[k.Value] = cv
		}
		return out, nil
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return nil, at("want a list, got %s", describeNode(n))
		}
		out := make([]any, 0, len(n.Content))
		for i, c := range n.Content {
			cv, err := convertNode(name, c, t.Elem(), fmt.Sprintf("%s[%d]", key, i))
			if err != nil {
				return nil, err
			}
			out = append(out, cv)
		}
		return out, nil
	}
	if n.Kind != yaml.ScalarNode {
		return nil, at("want %s, got %s", kindName(t), describeNode(n))
	}
	v, err := parseScalar(n.Value, n.Tag, t)
	if err != nil {
		return nil, at("%v", err)
	}
	return v, nil
}

// parseScalar converts a YAML scalar (or a --set value, tag "") to the Go kind of t.
func parseScalar(s, tag string, t reflect.Type) (any, error) {
	switch t.Kind() {
	case reflect.String:
		if tag != "" && tag != "!!str" {
			return nil, fmt.Errorf("want a string, got %s; quote it", s)
		}
		return s, nil
	case reflect.Bool:
		switch strings.ToLower(s) {
		case "true", "yes", "on":
			return true, nil
		case "false", "no", "off":
			return false, nil
		}
		return nil, fmt.Errorf("want true or false, got %q", s)
	case reflect.Int, reflect.Int64, reflect.Int32:
		i, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
		if err != nil {
			f, ferr := strconv.ParseFloat(s, 64)
			if ferr == nil && f == math.Trunc(f) && math.Abs(f) < 1e15 {
				return int64(f), nil
			}
			return nil, fmt.Errorf("want an integer, got %q", s)
		}
		return i, nil
	case reflect.Float64, reflect.Float32:
		f, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("want a number, got %q", s)
		}
		return f, nil
	}
	return nil, fmt.Errorf("unsupported field type %s", t)
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.Float64, reflect.Float32:
		return "a number"
	}
	return t.Kind().String()
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%q", n.Value)
}

// suggest returns the known key closest to k when it is a plausible typo.
func suggest[V any](k string, known map[string]V) string {
	best, bestD := "", 3
	for _, c := range slices.Sorted(maps.Keys(known)) {
		if d := editDistance(strings.ToLower(k), c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// applySet applies one --set key=value to tree and returns the key. Lists take
// comma-separated values: --set lora.target_modules=q_proj,v_proj; null (or ~) sets
// the field to null (its default).
func applySet(tree map[string]any, kv string) (string, error) {
	key, val, ok := strings.Cut(kv, "=")
	if !ok || key == "" {
		return "", cmdutil.UsageErrorf("--set %q: want key=value, e.g. --set hyperparameters.max_steps=50", kv)
	}
	parts := strings.Split(key, ".")
	t := specType
	m := tree
	for i, p := range parts {
		fields := jsonFields(t)
		ft, ok := fields[p]
		if !ok {
			prefix := strings.Join(parts[:i], ".")
			hint := ""
			if s := suggest(p, fields); s != "" {
				hint = fmt.Sprintf(" (did you mean %s?)", joinKey(prefix, s))
			} else {
				hint = fmt.Sprintf(" (known: %s)", strings.Join(slices.Sorted(maps.Keys(fields)), ", "))
			}
			return "", cmdutil.UsageErrorf("--set %s: unknown field %s%s", key, joinKey(prefix, p), hint)
		}
		if i == len(parts)-1 {
			var v any
			var err error
			switch {
			case val == "null" || val == "~":
				// JSON null: the field's default (from a template: the template's value removed).
			case ft.Kind() == reflect.Struct:
				return "", cmdutil.UsageErrorf("--set %s: is a section; set one of its fields, e.g. %s.%s", key, key, slices.Sorted(maps.Keys(jsonFields(ft)))[0])
			case ft.Kind() == reflect.Slice:
				items := []any{}
				for _, s := range strings.Split(val, ",") {
					if s = strings.TrimSpace(s); s != "" {
						items = append(items, s)
					}
				}
				v = items
			default:
				v, err = parseScalar(val, "", ft)
				if err != nil {
					return "", cmdutil.UsageErrorf("--set %s: %v", key, err)
				}
			}
			m[p] = v
			return key, nil
		}
		if ft.Kind() != reflect.Struct {
			return "", cmdutil.UsageErrorf("--set %s: %s is not a section", key, strings.Join(parts[:i+1], "."))
		}
		sub, ok := m[p].(map[string]any)
		if !ok {
			sub = map[string]any{}
			m[p] = sub
		}
		m, t = sub, ft
	}
	return key, nil
}
