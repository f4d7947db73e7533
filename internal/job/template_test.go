package job

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseTemplateRef(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		name    string
		version int
		wantErr string
	}{
		{in: "base", name: "base"},
		{in: "base@3", name: "base", version: 3},
		{in: "tiny.sft-v2@12", name: "tiny.sft-v2", version: 12},
		{in: "", wantErr: "want NAME or NAME@VERSION"},
		{in: "@2", wantErr: "want NAME or NAME@VERSION"},
		{in: "base@", wantErr: "the version after @ must be a positive integer"},
		{in: "base@0", wantErr: "positive integer"},
		{in: "base@-1", wantErr: "positive integer"},
		{in: "base@1.5", wantErr: "positive integer"},
		{in: "base@99999999999", wantErr: "positive integer"},
		{in: "base@2@3", wantErr: "positive integer"},
		{in: "../etc", wantErr: "want NAME"},
		{in: "a b", wantErr: "want NAME"},
		{in: strings.Repeat("a", 65), wantErr: "want NAME"},
	} {
		name, v, err := ParseTemplateRef("template", tc.in)
		if tc.wantErr != "" {
			if err == nil || ErrorCode(err) != EInvalid || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "template: ") {
				t.Errorf("ParseTemplateRef(%q) = %q, %d, %v; want EInvalid %q", tc.in, name, v, err, tc.wantErr)
			}
			continue
		}
		if err != nil || name != tc.name || v != tc.version {
			t.Errorf("ParseTemplateRef(%q) = %q, %d, %v; want %q, %d", tc.in, name, v, err, tc.name, tc.version)
		}
	}
}

func TestMergeSpec(t *testing.T) {
	t.Parallel()
	const base = `{"method":"sft","model":"builtin:tiny","hyperparameters":{"learning_rate":0.0003,"max_steps":100},"lora":{"enabled":true,"target_modules":["q_proj","v_proj"]},"resources":{"partition":"gpu","gpus":1}}`
	for _, tc := range []struct {
		name, overrides, want, wantErr string
	}{
		{name: "no overrides", overrides: ``, want: base},
		{name: "null overrides", overrides: `null`, want: base},
		{name: "empty object", overrides: `{}`, want: base},
		{name: "nested field merges, siblings stay",
			overrides: `{"hyperparameters":{"max_steps":50}}`,
			want:      `{"method":"sft","model":"builtin:tiny","hyperparameters":{"learning_rate":0.0003,"max_steps":50},"lora":{"enabled":true,"target_modules":["q_proj","v_proj"]},"resources":{"partition":"gpu","gpus":1}}`},
		{name: "top-level value replaces", overrides: `{"model":"/models/llama"}`,
			want: `{"method":"sft","model":"/models/llama","hyperparameters":{"learning_rate":0.0003,"max_steps":100},"lora":{"enabled":true,"target_modules":["q_proj","v_proj"]},"resources":{"partition":"gpu","gpus":1}}`},
		{name: "list replaces whole", overrides: `{"lora":{"target_modules":["k_proj"]}}`,
			want: `{"method":"sft","model":"builtin:tiny","hyperparameters":{"learning_rate":0.0003,"max_steps":100},"lora":{"enabled":true,"target_modules":["k_proj"]},"resources":{"partition":"gpu","gpus":1}}`},
		{name: "null removes the template's value", overrides: `{"resources":{"partition":null},"lora":null}`,
			want: `{"method":"sft","model":"builtin:tiny","hyperparameters":{"learning_rate":0.0003,"max_steps":100},"resources":{"gpus":1}}`},
		{name: "new section added", overrides: `{"dataset":{"path":"/d/train.jsonl"}}`,
			want: `{"method":"sft","model":"builtin:tiny","dataset":{"path":"/d/train.jsonl"},"hyperparameters":{"learning_rate":0.0003,"max_steps":100},"lora":{"enabled":true,"target_modules":["q_proj","v_proj"]},"resources":{"partition":"gpu","gpus":1}}`},
		{name: "a value replaces a section", overrides: `{"resources":3}`,
			want: `{"method":"sft","model":"builtin:tiny","hyperparameters":{"learning_rate":0.0003,"max_steps":100},"lora":{"enabled":true,"target_modules":["q_proj","v_proj"]},"resources":3}`},
		{name: "big integers stay exact", overrides: `{"hyperparameters":{"seed":2147483647}}`,
			want: `{"method":"sft","model":"builtin:tiny","hyperparameters":{"learning_rate":0.0003,"max_steps":100,"seed":2147483647},"lora":{"enabled":true,"target_modules":["q_proj","v_proj"]},"resources":{"partition":"gpu","gpus":1}}`},
		{name: "overrides must be an object", overrides: `[1]`, wantErr: "overrides: want a JSON object of spec fields"},
		{name: "overrides malformed", overrides: `{"a":`, wantErr: "overrides: malformed JSON"},
		{name: "trailing data", overrides: `{} {}`, wantErr: "overrides: unexpected data after the JSON object"},
	} {
		got, err := MergeSpec([]byte(base), []byte(tc.overrides))
		if tc.wantErr != "" {
			if err == nil || ErrorCode(err) != EInvalid || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: %s, %v; want EInvalid %q", tc.name, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !jsonEqual(t, got, tc.want) {
			t.Errorf("%s: %s, %v\nwant %s", tc.name, got, err, tc.want)
		}
	}
	// The inputs are not changed: the template's base stays as it was.
	var doc any = map[string]any{"a": map[string]any{"b": 1.0}}
	MergePatch(doc, map[string]any{"a": map[string]any{"b": nil, "c": 2.0}})
	if b, _ := json.Marshal(doc); string(b) != `{"a":{"b":1}}` {
		t.Errorf("MergePatch changed its doc: %s", b)
	}
}

func jsonEqual(t *testing.T, got []byte, want string) bool {
	t.Helper()
	var a, b any
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatalf("got %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &b); err != nil {
		t.Fatalf("want %s: %v", want, err)
	}
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func TestCheckPartialSpec(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in, want, wantErr string
		code                    string
	}{
		{name: "any subset of fields", in: `{"model":"builtin:tiny","hyperparameters":{"max_steps":50}}`, want: `{"hyperparameters":{"max_steps":50},"model":"builtin:tiny"}`},
		{name: "empty", in: `{}`, want: `{}`},
		{name: "nulls dropped", in: `{"model":"builtin:tiny","lora":null,"dataset":{"path":null}}`, want: `{"dataset":{},"model":"builtin:tiny"}`},
		{name: "a whole job spec", in: `{"method":"dpo","model":"builtin:tiny","dataset":{"path":"/d/p.jsonl"},"resources":{"cluster":"dev","partition":"gpu","gpus":2}}`,
			want: `{"dataset":{"path":"/d/p.jsonl"},"method":"dpo","model":"builtin:tiny","resources":{"cluster":"dev","gpus":2,"partition":"gpu"}}`},
		{name: "unknown field", in: `{"hyperparameters":{"max_stepz":5}}`, code: EInvalid, wantErr: `unknown field "max_stepz"`},
		{name: "wrong type names the field", in: `{"hyperparameters":{"max_steps":"many"}}`, code: EInvalid, wantErr: `field "hyperparameters.max_steps": want int, got string`},
		{name: "not an object", in: `"sft"`, code: EInvalid, wantErr: "spec: want a JSON object"},
		{name: "missing", in: ``, want: `{}`},
		{name: "set field out of range", in: `{"hyperparameters":{"max_steps":-5}}`, code: EUnprocessable,
			wantErr: "invalid spec: hyperparameters.max_steps: must be between 0 and 10000000, got -5"},
		{name: "bad list item names its index", in: `{"lora":{"target_modules":["q_proj","x y"]}}`, code: EUnprocessable,
			wantErr: `invalid spec: lora.target_modules[1]: must match`},
		{name: "bad method and model named together", in: `{"method":"ppo","model":"relative/dir"}`, code: EUnprocessable,
			wantErr: `invalid spec: method: must be sft or dpo, got "ppo"; model: must be "builtin:tiny" or an absolute path`},
		{name: "bad partition name", in: `{"resources":{"partition":"a;b"}}`, code: EUnprocessable, wantErr: "invalid spec: resources.partition: must match"},
		{name: "fields left out are not required", in: `{"lora":{"enabled":true}}`, want: `{"lora":{"enabled":true}}`},
		{name: "too large", in: `{"name":"` + strings.Repeat("a", MaxTemplateBytes) + `"}`, code: EInvalid, wantErr: "a template holds at most 65536"},
	} {
		got, _, err := CheckPartialSpec([]byte(tc.in))
		if tc.wantErr != "" {
			if err == nil || ErrorCode(err) != tc.code || !strings.Contains(ErrorMessage(err), tc.wantErr) {
				t.Errorf("%s: %s, %v; want %s %q", tc.name, got, err, tc.code, tc.wantErr)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: %s, %v; want %s", tc.name, got, err, tc.want)
		}
	}
	_, sp, err := CheckPartialSpec([]byte(`{"resources":{"cluster":"dev","partition":"urgent"}}`))
	if err != nil || sp.Resources.Cluster != "dev" || sp.Resources.Partition != "urgent" || sp.Hyperparameters.BatchSize != 0 {
		t.Errorf("decoded partial %+v, %v: want the fields it sets, the rest zero", sp.Resources, err)
	}
}

func TestPartialOf(t *testing.T) {
	t.Parallel()
	spec := func(mod func(s *Spec)) Spec {
		s := Spec{Name: "tiny", Method: MethodSFT, Model: BuiltinTiny, Dataset: Dataset{Path: "/d/train.jsonl"},
			Resources: Resources{Cluster: "dev", Partition: "gpu", GPUs: 2}}
		if mod != nil {
			mod(&s)
		}
		s.Normalize()
		return s
	}
	for _, tc := range []struct {
		name string
		in   Spec
		want string
	}{
		{name: "defaults and derived values dropped, placement kept", in: spec(nil),
			want: `{"dataset":{"path":"/d/train.jsonl"},"method":"sft","model":"builtin:tiny","name":"tiny","resources":{"cluster":"dev","gpus":2,"partition":"gpu"}}`},
		{name: "values set beside defaults stay", in: spec(func(s *Spec) {
			s.Hyperparameters.MaxSteps, s.Hyperparameters.LearningRate, s.LoRA.Enabled, s.LoRA.R = 300, 0.003, true, 16
			s.LoRA.TargetModules = []string{"q_proj"}
		}), want: `{"dataset":{"path":"/d/train.jsonl"},"hyperparameters":{"learning_rate":0.003,"max_steps":300},"lora":{"enabled":true,"r":16,"target_modules":["q_proj"]},"method":"sft","model":"builtin:tiny","name":"tiny","resources":{"cluster":"dev","gpus":2,"partition":"gpu"}}`},
		{name: "a value that differs from the derived one stays", in: spec(func(s *Spec) { s.LoRA.Enabled, s.LoRA.R, s.LoRA.Alpha = true, 8, 8 }),
			want: `{"dataset":{"path":"/d/train.jsonl"},"lora":{"alpha":8,"enabled":true},"method":"sft","model":"builtin:tiny","name":"tiny","resources":{"cluster":"dev","gpus":2,"partition":"gpu"}}`},
	} {
		got, err := PartialOf(tc.in)
		if err != nil || string(got) != tc.want {
			t.Errorf("%s:\n got %s, %v\nwant %s", tc.name, got, err, tc.want)
			continue
		}
		// The partial spec normalises back to the job's spec.
		back, err := DecodeSpec(strings.NewReader(string(got)))
		back.Normalize()
		if err != nil || back.Hash() != tc.in.Hash() {
			t.Errorf("%s: %s does not normalise back to the job's spec: %v", tc.name, got, err)
		}
	}
	// An override of resources.gpus re-derives processes_per_node.
	partial, _ := PartialOf(spec(nil))
	merged, err := MergeSpec(partial, []byte(`{"resources":{"gpus":4}}`))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := DecodeSpec(strings.NewReader(string(merged)))
	s.Normalize()
	if err := s.Validate(); err != nil || s.Distributed.ProcessesPerNode != 4 {
		t.Errorf("gpus override: processes_per_node %d, %v", s.Distributed.ProcessesPerNode, err)
	}
}

func TestTemplateRefAndVisibility(t *testing.T) {
	t.Parallel()
	if got := (TemplateRef{Name: "tiny", Version: 12, Owner: "alice"}).String(); got != "tiny@12" {
		t.Errorf("String() = %q", got)
	}
	for v, want := range map[string]bool{"private": true, "shared": true, "": false, "public": false, "Shared": false} {
		if ValidVisibility(v) != want {
			t.Errorf("ValidVisibility(%q) = %v", v, !want)
		}
	}
	// A long reference is cut in the message.
	_, _, err := ParseTemplateRef("template", strings.Repeat("x", 200)+"@1")
	if msg := ErrorMessage(err); !strings.Contains(msg, `"`+strings.Repeat("x", 80)+`..."`) || len(msg) > 200 {
		t.Errorf("long reference: %q", msg)
	}
}
