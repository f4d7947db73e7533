package job

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzDecodeSpec: decoding, normalising and validating any body never panics, and a
// spec that validates survives a JSON round trip unchanged (job.json holds it) with
// no NUL or newline in any string the batch script or trainer may see.
func FuzzDecodeSpec(f *testing.F) {
	f.Add(`{"method":"sft","model":"` + BuiltinTiny + `","dataset":{"path":"/data/x.jsonl"}}`)
	f.Add(`{"method":"dpo","model":"` + BuiltinTiny + `","dataset":{"path":"/d/p.jsonl"},"lora":{"enabled":true,"r":8,"target_modules":["q_proj"]}}`)
	f.Add(`{"method":"sft","model":"../../etc","dataset":{"path":"/x\n"},"resources":{"gpus":-1,"partition":"--all"}}`)
	f.Add(`{"name":"a;b","method":"sft","hyperparameters":{"learning_rate":1e309}}`)
	f.Fuzz(func(t *testing.T, body string) {
		s, err := DecodeSpec(strings.NewReader(body))
		if err != nil {
			return
		}
		s.Normalize()
		if s.Validate() != nil {
			return
		}
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("marshal a valid spec: %v", err)
		}
		if bytes.ContainsAny(b, "\x00") || strings.Contains(string(b), `\u0000`) || strings.Contains(string(b), `\n`) {
			t.Fatalf("valid spec carries NUL or newline: %s", b)
		}
		s2, err := DecodeSpec(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("a valid spec does not decode again: %v\n%s", err, b)
		}
		s2.Normalize()
		if err := s2.Validate(); err != nil {
			t.Fatalf("a valid spec is invalid after a round trip: %v\n%s", err, b)
		}
	})
}
