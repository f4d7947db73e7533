package ftctl

import (
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
)

func TestLoadSpec(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, body string
		sets       []string
		check      func(s job.Spec) string
		err        string // substring of the error; "" for success
	}{
		{name: "yaml", body: sftYAML, check: func(s job.Spec) string {
			if s.Name != "tiny-sft" || s.Hyperparameters.LearningRate != 0.003 || !s.LoRA.Enabled || s.Resources.GPUs != 1 {
				return "fields not read"
			}
			if s.Dataset.Path != filepath.Join(dir, "data", "train.jsonl") {
				return "relative dataset path not resolved against the spec's directory: " + s.Dataset.Path
			}
			return ""
		}},
		{name: "json", body: `{"method": "sft", "model": "builtin:tiny", "dataset": {"path": "t.jsonl"}, "hyperparameters": {"epochs": 2}}`,
			check: func(s job.Spec) string {
				if s.Hyperparameters.Epochs != 2 || s.Dataset.Path != filepath.Join(dir, "t.jsonl") {
					return "json not read"
				}
				return ""
			}},
		{name: "sets", body: sftYAML, sets: []string{"hyperparameters.learning_rate=1e-4", "lora.enabled=false", "name=other", "resources.gpu_type=a100", "lora.target_modules="},
			check: func(s job.Spec) string {
				if s.Hyperparameters.LearningRate != 1e-4 || s.LoRA.Enabled || s.Name != "other" || s.Resources.GPUType != "a100" || len(s.LoRA.TargetModules) != 0 {
					return "sets not applied"
				}
				return ""
			}},
		{name: "integer written as float", body: "method: sft\nmodel: builtin:tiny\ndataset: {path: /a}\nhyperparameters: {max_steps: 1e3}\n",
			check: func(s job.Spec) string {
				if s.Hyperparameters.MaxSteps != 1000 {
					return "1e3 not read as 1000"
				}
				return ""
			}},
		{name: "empty", body: "", err: "empty spec"},
		{name: "syntax", body: "method: [sft\n", err: "syntax.yaml: line 1: did not find expected ',' or ']'"},
		{name: "unknown top-level", body: "methd: sft\n", err: ":1: methd: unknown field (did you mean method?)"},
		{name: "section as scalar", body: "lora: yes\n", err: ":1: lora: want a mapping, got \"yes\""},
		{name: "list as scalar", body: "lora: {target_modules: q_proj}\n", err: ":1: lora.target_modules: want a list, got \"q_proj\""},
		{name: "string as number", body: "name: 42\n", err: ":1: name: want a string, got 42; quote it"},
		{name: "fractional int", body: "hyperparameters: {epochs: 1.5}\n", err: "hyperparameters.epochs: want an integer, got \"1.5\""},
		{name: "bool", body: "lora: {enabled: maybe}\n", err: "lora.enabled: want true or false, got \"maybe\""},
		{name: "duplicate", body: "method: sft\nmethod: dpo\n", err: ":2: method: set twice"},
		{name: "nested unknown", body: "resources: {gpu: 1}\n", err: ":1: resources.gpu: unknown field (did you mean resources.gpus?)"},
		{name: "set section", body: sftYAML, sets: []string{"lora=1"}, err: "--set lora: is a section; set one of its fields, e.g. lora.alpha"},
		{name: "set through scalar", body: sftYAML, sets: []string{"name.x=1"}, err: "--set name.x: name is not a section"},
		{name: "set without value", body: sftYAML, sets: []string{"name"}, err: "--set \"name\": want key=value"},
		{name: "set number", body: sftYAML, sets: []string{"resources.gpus=two"}, err: "--set resources.gpus: want an integer, got \"two\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			if err := os.WriteFile(path, []byte(tc.body), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := LoadSpec(SpecSource{File: path, Sets: tc.sets, Dir: "/work"})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error spans lines: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if msg := tc.check(s); msg != "" {
				t.Error(msg)
			}
		})
	}
}

// TestExamplesLoad checks that every example spec in examples/ loads, resolves its
// datasets to existing files and passes the gateway's validation.
func TestExamplesLoad(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "examples", "*.yaml"))
	if len(files) == 0 {
		t.Skip("no examples/*.yaml yet")
	}
	for _, f := range files {
		s, err := LoadSpec(SpecSource{File: f})
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if err := CheckSpec(s); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		if _, err := os.Stat(s.Dataset.Path); err != nil {
			t.Errorf("%s: dataset.path: %v", f, err)
		}
	}
}

func TestRender(t *testing.T) {
	tb := NewTable("NAME", "N")
	tb.AlignRight(1)
	tb.Row("a", "1")
	tb.Row("longer", "100")
	tb.Row("ü", "")
	var b strings.Builder
	if err := tb.Render(&b); err != nil {
		t.Fatal(err)
	}
	if want := "NAME      N\na         1\nlonger  100\nü\n"; b.String() != want {
		t.Errorf("table\n%q\nwant\n%q", b.String(), want)
	}
	for _, tc := range []struct{ got, want string }{
		{Sparkline([]float64{1, 2, 3, 4, 5, 6, 7, 8}, 0), "▁▂▃▄▅▆▇█"},
		{Sparkline([]float64{5, 5}, 0), "▅▅"},
		{Sparkline([]float64{9, 1, 2, 3}, 3), "▁▅█"},
		{Sparkline(nil, 10), ""},
		{ProgressBar(5, 10, 10), "[#####.....]"},
		{ProgressBar(20, 10, 4), "[####]"},
		{ProgressBar(3, 0, 4), "[....]"},
		{Percent(1, 3), "33%"},
		{Percent(1, 0), "-"},
		{FormatDuration(45 * time.Second), "45s"},
		{FormatDuration(192 * time.Second), "3m12s"},
		{FormatDuration(2*time.Hour + 5*time.Minute), "2h05m"},
		{FormatDuration(76 * time.Hour), "3d4h"},
		{FormatAge(t0.Add(-90*time.Minute), t0), "1h"},
		{FormatAge(time.Time{}, t0), "-"},
		{FormatBytes(512), "512 B"},
		{FormatBytes(1536), "1.5 KiB"},
		{FormatBytes(3 << 30), "3.0 GiB"},
		{FormatLoss(nil), "-"},
		{FormatLoss(ptr(0.123456)), "0.1235"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
	}{
		{nil, 0},
		{usageErrorf("x"), 2},
		{&LoginRequiredError{}, 4},
		{&jobFailedError{id: "j", state: "failed"}, 8},
		{&APIError{Status: 500}, 1},
		{specErrorf("x"), 1},
	} {
		if got := ExitCode(tc.err); got != tc.code {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.code)
		}
	}
	if got := FormatError(withHint(specErrorf("a\nb"), "do c")); got != "a; b (hint: do c)" {
		t.Errorf("FormatError = %q", got)
	}
}

func TestReadSSE(t *testing.T) {
	in := "retry: 3000\n\n: ping\n\nid: 4\nevent: progress\ndata: {\"a\":1}\n\ndata: x\ndata: y\n\nevent: error\ndata:{}\n"
	var got []string
	err := readSSE(strings.NewReader(in), func(e SSEEvent) error {
		got = append(got, e.ID+"|"+e.Event+"|"+e.Data)
		return nil
	})
	if want := `4|progress|{"a":1},4||x` + "\n" + "y"; strings.Join(got, ",") != want || err == nil {
		t.Errorf("events %q (err %v), want %q", strings.Join(got, ","), err, want)
	}
}

func TestFromGateway(t *testing.T) {
	opErr := func(addr string) error {
		a, _ := net.ResolveTCPAddr("tcp", addr)
		return &url.Error{Op: "Get", URL: "x", Err: &net.OpError{Op: "dial", Net: "tcp", Addr: a, Err: syscall.ECONNREFUSED}}
	}
	for _, tc := range []struct {
		err    error
		server string
		want   bool
	}{
		{opErr("127.0.0.1:8080"), "http://127.0.0.1:8080", true},
		{opErr("127.0.0.1:5556"), "http://127.0.0.1:8080", false},
		{opErr("127.0.0.1:80"), "http://127.0.0.1", true},
		{opErr("127.0.0.2:8080"), "http://127.0.0.1:8080", false},
		{opErr("127.0.0.1:8080"), "http://localhost:8080", true},
		{&net.DNSError{Name: "gw.example", Err: "no such host"}, "https://gw.example", true},
		{&net.DNSError{Name: "idp.example", Err: "no such host"}, "https://gw.example", false},
	} {
		if got := fromGateway(tc.err, tc.server); got != tc.want {
			t.Errorf("fromGateway(%v, %s) = %v, want %v", tc.err, tc.server, got, tc.want)
		}
	}
}
