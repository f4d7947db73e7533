package api

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/job"
)

// The API contract: openapi.json is checked against the types in package client that
// the handlers write (the route table names them), field by field in both directions,
// so a field added to a type, a handler or the document alone fails here.

type oaDoc struct {
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas map[string]map[string]any `json:"schemas"`
	} `json:"components"`
}

type oaOperation struct {
	RequestBody *struct {
		Content map[string]struct {
			Schema map[string]any `json:"schema"`
		} `json:"content"`
	} `json:"requestBody"`
	Responses map[string]struct {
		Content map[string]struct {
			Schema map[string]any `json:"schema"`
		} `json:"content"`
	} `json:"responses"`
}

func loadOpenAPI(t *testing.T) oaDoc {
	t.Helper()
	var doc oaDoc
	if err := json.Unmarshal(openapiDoc, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return doc
}

// streamComponents are the messages of the streams and the webhook body (not JSON
// answers), checked by name against their types.
var streamComponents = map[string]any{
	"Event":       client.Event{},
	"LogLines":    client.LogLines{},
	"WSMessage":   client.WSMessage{},
	"ErrorDetail": client.ErrorDetail{},
	"WebhookBody": client.WebhookBody{},
}

// TestOpenAPIMatchesTypes: every JSON body of every documented route matches the
// type the route table names; every error answer is client.ErrorBody; every
// component is checked.
func TestOpenAPIMatchesTypes(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	c := &schemaChecker{doc: doc, seen: map[string]bool{}}
	for _, rt := range (&Server{}).routes() {
		if rt.undocumented {
			continue
		}
		raw, ok := doc.Paths[rt.pattern][strings.ToLower(rt.method)]
		if !ok {
			t.Errorf("%s %s: not in openapi.json", rt.method, rt.pattern)
			continue
		}
		var op oaOperation
		if err := json.Unmarshal(raw, &op); err != nil {
			t.Fatalf("%s %s: %v", rt.method, rt.pattern, err)
		}
		where := rt.method + " " + rt.pattern
		if rt.request != nil {
			if op.RequestBody == nil || op.RequestBody.Content["application/json"].Schema == nil {
				t.Errorf("%s: request body %T is not documented", where, rt.request)
			} else {
				c.checkRequest(t, where+" request", op.RequestBody.Content["application/json"].Schema, rt.request)
			}
		} else if op.RequestBody != nil {
			t.Errorf("%s: openapi.json documents a request body the route table does not name", where)
		}
		for status, typ := range rt.responses {
			resp, ok := op.Responses[strconv.Itoa(status)]
			if !ok || resp.Content["application/json"].Schema == nil {
				t.Errorf("%s: %d %T is not documented", where, status, typ)
				continue
			}
			c.check(t, fmt.Sprintf("%s %d", where, status), resp.Content["application/json"].Schema, reflect.TypeOf(typ))
		}
		for code, resp := range op.Responses {
			schema := resp.Content["application/json"].Schema
			status, _ := strconv.Atoi(code)
			if schema == nil {
				continue
			}
			if _, typed := rt.responses[status]; typed {
				continue
			}
			if status < 400 {
				t.Errorf("%s: %s has a JSON body that the route table does not name", where, code)
				continue
			}
			c.check(t, where+" "+code, schema, reflect.TypeOf(client.ErrorBody{}))
		}
	}
	for name, v := range streamComponents {
		c.check(t, "component "+name, map[string]any{"$ref": "#/components/schemas/" + name}, reflect.TypeOf(v))
	}
	for name := range doc.Components.Schemas {
		if !c.seen[name] {
			t.Errorf("component %s is checked against no type (unused or missing from the route table)", name)
		}
	}
}

// checkRequest checks a request body's schema against its type, or a oneOf's schema
// (its alternatives in order) against the oneOf's types.
func (c *schemaChecker) checkRequest(t *testing.T, where string, s map[string]any, req any) {
	t.Helper()
	alts, ok := req.(oneOf)
	if !ok {
		c.check(t, where, s, reflect.TypeOf(req))
		return
	}
	items, _ := s["oneOf"].([]any)
	if len(items) != len(alts) {
		t.Errorf("%s: oneOf with %d alternatives, the route table names %d", where, len(items), len(alts))
		return
	}
	for i, alt := range alts {
		item, _ := items[i].(map[string]any)
		c.check(t, fmt.Sprintf("%s oneOf[%d]", where, i), item, reflect.TypeOf(alt))
	}
}

type schemaChecker struct {
	doc  oaDoc
	seen map[string]bool
}

var (
	timeType = reflect.TypeOf(time.Time{})
	rawType  = reflect.TypeOf(json.RawMessage{})
)

func (c *schemaChecker) resolve(t *testing.T, where string, s map[string]any) map[string]any {
	ref, ok := s["$ref"].(string)
	if !ok {
		return s
	}
	name, ok := strings.CutPrefix(ref, "#/components/schemas/")
	target := c.doc.Components.Schemas[name]
	if !ok || target == nil {
		t.Errorf("%s: unresolved $ref %q", where, ref)
		return map[string]any{}
	}
	c.seen[name] = true
	return target
}

// check compares schema s with Go type typ as encoding/json writes it.
func (c *schemaChecker) check(t *testing.T, where string, s map[string]any, typ reflect.Type) {
	t.Helper()
	s = c.resolve(t, where, s)
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	want := ""
	switch {
	case typ == rawType || typ.Kind() == reflect.Interface:
		return // any JSON
	case typ == timeType:
		want = "string"
		if s["format"] != "date-time" {
			t.Errorf("%s: a time wants format date-time, has %v", where, s["format"])
		}
	case typ == reflect.TypeOf(job.State("")):
		want = "string"
		var enum []string
		for _, e := range s["enum"].([]any) {
			enum = append(enum, e.(string))
		}
		var states []string
		for _, st := range job.States {
			states = append(states, string(st))
		}
		if !slices.Equal(enum, states) {
			t.Errorf("%s: state enum %v, want %v", where, enum, states)
		}
	}
	if want == "" {
		switch typ.Kind() {
		case reflect.String:
			want = "string"
		case reflect.Bool:
			want = "boolean"
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint32, reflect.Uint64:
			want = "integer"
		case reflect.Float32, reflect.Float64:
			want = "number"
		case reflect.Slice, reflect.Array:
			want = "array"
		case reflect.Map, reflect.Struct:
			want = "object"
		default:
			t.Errorf("%s: no schema rule for Go type %s", where, typ)
			return
		}
	}
	if got, _ := s["type"].(string); got != want {
		t.Errorf("%s: type %q, Go type %s wants %q", where, got, typ, want)
		return
	}
	switch typ.Kind() {
	case reflect.Slice, reflect.Array:
		items, ok := s["items"].(map[string]any)
		if !ok {
			t.Errorf("%s: array without items", where)
			return
		}
		c.check(t, where+"[]", items, typ.Elem())
	case reflect.Map:
		ap, ok := s["additionalProperties"].(map[string]any)
		if !ok {
			t.Errorf("%s: map %s wants additionalProperties with a schema", where, typ)
			return
		}
		c.check(t, where+"{}", ap, typ.Elem())
	case reflect.Struct:
		if typ == timeType {
			return
		}
		props, _ := s["properties"].(map[string]any)
		fields := jsonFields(typ)
		var names []string
		for name := range fields {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			f := fields[name]
			ps, ok := props[name].(map[string]any)
			if !ok {
				t.Errorf("%s: field %q (%s.%s) is not documented", where, name, typ, f.Name)
				continue
			}
			c.check(t, where+"."+name, ps, f.Type)
		}
		for name := range props {
			if _, ok := fields[name]; !ok {
				t.Errorf("%s: documented property %q is not in %s", where, name, typ)
			}
		}
		req, _ := s["required"].([]any)
		for _, r := range req {
			if f, ok := fields[r.(string)]; !ok || f.omitempty {
				t.Errorf("%s: required property %q is omitempty or missing in %s", where, r, typ)
			}
		}
	}
}

type jsonField struct {
	reflect.StructField
	omitempty bool
}

// jsonFields lists the JSON members of struct type typ (embedded structs flattened).
func jsonFields(typ reflect.Type) map[string]jsonField {
	out := map[string]jsonField{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			for k, v := range jsonFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = jsonField{StructField: f, omitempty: strings.Contains(opts, "omitempty")}
	}
	return out
}

// TestOpenAPIPartialSpecIsSpec: the partial spec of templates and overrides is the
// Spec schema with nothing required (the document cannot say so by reference), so the
// two cannot drift apart.
func TestOpenAPIPartialSpecIsSpec(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	var strip func(v any) any
	strip = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			out := map[string]any{}
			for k, e := range x {
				if k != "required" && k != "description" {
					out[k] = strip(e)
				}
			}
			return out
		case []any:
			out := make([]any, len(x))
			for i, e := range x {
				out[i] = strip(e)
			}
			return out
		}
		return v
	}
	spec, _ := json.Marshal(strip(doc.Components.Schemas["Spec"]))
	partial, _ := json.Marshal(strip(doc.Components.Schemas["PartialSpec"]))
	if string(spec) != string(partial) {
		t.Errorf("PartialSpec is not Spec without required fields:\nSpec        %s\nPartialSpec %s", spec, partial)
	}
	if raw, _ := json.Marshal(doc.Components.Schemas["PartialSpec"]); strings.Contains(string(raw), `"required"`) {
		t.Error("PartialSpec requires a field")
	}
}
