package job

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Template visibilities: a private template is seen by its owner only, a shared one
// (created and changed by admins only) by every user.
const (
	VisibilityPrivate = "private"
	VisibilityShared  = "shared"
)

// MaxTemplateBytes caps a template's partial spec (its compact JSON).
const MaxTemplateBytes = 64 << 10

// Template is one version of a named, versioned partial spec. A job started from it
// gets the template's spec deep-merged with the request's overrides (MergeSpec), then
// validated like any spec.
type Template struct {
	// ID is the store's key of the template (all its versions).
	ID           int64  `json:"-"`
	OwnerSubject string `json:"-"`
	Name         string `json:"name"`
	// Owner is the Unix account of the template's owner.
	Owner      string `json:"owner"`
	Visibility string `json:"visibility"`
	Version    int    `json:"version"`
	// LatestVersion is the template's newest version (Version when this is it).
	LatestVersion int `json:"latest_version"`
	// Spec is the partial spec of this version: any subset of the Spec's fields. Lists
	// leave it out.
	Spec json.RawMessage `json:"spec,omitempty"`
	// FromJob is the job this version was saved from, if any.
	FromJob   string    `json:"from_job,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// UpdatedAt is when this version was saved.
	UpdatedAt time.Time `json:"updated_at"`
}

// TemplateRef names the template version a job came from.
type TemplateRef struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	// Owner is the template owner's Unix account (a user's own template and a shared
	// one may have the same name).
	Owner string `json:"owner"`
}

func (r TemplateRef) String() string { return r.Name + "@" + strconv.Itoa(r.Version) }

// ValidVisibility reports whether v is private or shared.
func ValidVisibility(v string) bool { return v == VisibilityPrivate || v == VisibilityShared }

// ParseTemplateRef parses NAME or NAME@VERSION; version 0 means the latest. field
// names the input in the EInvalid error.
func ParseTemplateRef(field, s string) (name string, version int, err error) {
	name, v, hasVersion := strings.Cut(s, "@")
	if !ValidName(name) {
		return "", 0, Errorf(EInvalid, "%s: want NAME or NAME@VERSION with NAME matching %s, got %q", field, NameRE, truncated(s))
	}
	if hasVersion {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > math.MaxInt32 {
			return "", 0, Errorf(EInvalid, "%s: the version after @ must be a positive integer, got %q", field, truncated(s))
		}
		version = n
	}
	return name, version, nil
}

func truncated(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// MergePatch returns doc with patch applied as a JSON Merge Patch (RFC 7396): an
// object merges key by key, recursively; a null member deletes the key; any other
// value (numbers, strings, lists) replaces. Neither argument is modified.
func MergePatch(doc, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	dm, _ := doc.(map[string]any)
	out := make(map[string]any, len(dm)+len(pm))
	for k, v := range dm {
		out[k] = v
	}
	for k, v := range pm {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = MergePatch(out[k], v)
	}
	return out
}

// decodeObject reads raw as one JSON object, numbers kept exact (json.Number); an
// empty raw or null is nil. field names the input in the EInvalid error.
func decodeObject(field string, raw []byte) (map[string]any, error) {
	if t := bytes.TrimSpace(raw); len(t) == 0 || string(t) == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, Errorf(EInvalid, "%s: malformed JSON: %v", field, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, Errorf(EInvalid, "%s: unexpected data after the JSON object", field)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, Errorf(EInvalid, `%s: want a JSON object of spec fields, e.g. {"hyperparameters":{"max_steps":50}}`, field)
	}
	return m, nil
}

// CheckPartialSpec checks a template's partial spec: a JSON object of Spec fields
// (unknown fields and wrong types are EInvalid, as for a spec), each field it sets
// valid by Validate's rules (EUnprocessable naming the field); fields it leaves out
// are not required. It returns the spec's compact JSON without null members, and the
// fields it sets decoded (the rest zero).
func CheckPartialSpec(raw []byte) (json.RawMessage, Spec, error) {
	m, err := decodeObject("spec", raw)
	if err != nil {
		return nil, Spec{}, err
	}
	m, _ = MergePatch(map[string]any{}, m).(map[string]any)
	b, err := json.Marshal(m)
	if err != nil {
		return nil, Spec{}, fmt.Errorf("encode partial spec: %w", err)
	}
	if len(b) > MaxTemplateBytes {
		return nil, Spec{}, Errorf(EInvalid, "spec: %d bytes, a template holds at most %d", len(b), MaxTemplateBytes)
	}
	sp, err := DecodeSpec(bytes.NewReader(b))
	if err != nil {
		return nil, Spec{}, err
	}
	set := map[string]bool{}
	fieldPaths(m, "", set)
	full := sp
	full.LoRA.TargetModules = append([]string(nil), sp.LoRA.TargetModules...)
	full.Normalize()
	var ps []problem
	for _, p := range full.problems() {
		field, _, _ := strings.Cut(p.field, "[") // lora.target_modules[2] is set with lora.target_modules
		if set[field] {
			ps = append(ps, p)
		}
	}
	return b, sp, invalidSpec(ps)
}

// PartialOf returns spec (a job's normalised spec) as a template's partial spec:
// without the fields Normalize fills with the same value anyway, its defaults and the
// values it derives from other fields (distributed.processes_per_node from
// resources.gpus, lora.alpha from lora.r), so an override of one field re-derives the
// others as it would in a spec file. The cluster and partition stay: the job ran
// there.
func PartialOf(spec Spec) (json.RawMessage, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("encode spec: %w", err)
	}
	m, err := decodeObject("spec", b)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	fieldPaths(m, "", set)
	paths := make([]string, 0, len(set))
	for p := range set {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		v, ok := lookup(m, p)
		if _, section := v.(map[string]any); !ok || section || p == "resources.cluster" || p == "resources.partition" {
			continue
		}
		trial := without(m, strings.Split(p, "."))
		if derived, err := normalizedValue(trial, p); err == nil && jsonText(derived) == jsonText(v) {
			m = trial
		}
	}
	return json.Marshal(m)
}

// lookup returns the member of m at dotted path p.
func lookup(m map[string]any, p string) (any, bool) {
	var v any = m
	for _, k := range strings.Split(p, ".") {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = mm[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

// without returns a copy of m without the member at path (and without sections that
// become empty).
func without(m map[string]any, path []string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	if len(path) == 1 {
		delete(out, path[0])
		return out
	}
	if sub, ok := out[path[0]].(map[string]any); ok {
		if rest := without(sub, path[1:]); len(rest) > 0 {
			out[path[0]] = rest
		} else {
			delete(out, path[0])
		}
	}
	return out
}

// normalizedValue is the value at path p of partial spec m once decoded and
// normalised.
func normalizedValue(m map[string]any, p string) (any, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	sp, err := DecodeSpec(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	sp.Normalize()
	full, err := decodeObject("spec", sp.JSON())
	if err != nil {
		return nil, err
	}
	v, _ := lookup(full, p)
	return v, nil
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// fieldPaths adds the dotted path of every member of m (objects recursively) to set.
func fieldPaths(m map[string]any, prefix string, set map[string]bool) {
	for k, v := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		set[p] = true
		if sub, ok := v.(map[string]any); ok {
			fieldPaths(sub, p, set)
		}
	}
}

// MergeSpec returns the spec JSON of a template's partial spec deep-merged with
// overrides (a JSON object of spec fields, or empty): MergePatch, so objects merge
// field by field, lists and values replace, and null removes the template's value
// (the default applies). The result is checked as any spec is.
func MergeSpec(template, overrides []byte) ([]byte, error) {
	base, err := decodeObject("template spec", template)
	if err != nil {
		return nil, err
	}
	patch, err := decodeObject("overrides", overrides)
	if err != nil {
		return nil, err
	}
	merged := MergePatch(base, patch)
	if merged == nil {
		merged = map[string]any{}
	}
	b, err := json.Marshal(merged)
	if err != nil {
		return nil, fmt.Errorf("encode merged spec: %w", err)
	}
	return b, nil
}
