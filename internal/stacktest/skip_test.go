package stacktest

import (
	"fmt"
	"testing"
)

// recTB records how a test ended instead of ending it.
type recTB struct {
	testing.TB
	fatal, skip string
}

func (r *recTB) Helper()                   {}
func (r *recTB) Fatalf(f string, a ...any) { r.fatal = fmt.Sprintf(f, a...) }
func (r *recTB) Skipf(f string, a ...any)  { r.skip = fmt.Sprintf(f, a...) }
func (r *recTB) Setenv(k, v string)        { r.TB.Setenv(k, v) }

// TestSkipFailsWhenRequired: the one skip helper skips locally and fails under
// FTGATE_REQUIRE_STACK=1, and Require goes through it.
func TestSkipFailsWhenRequired(t *testing.T) {
	t.Setenv("FTGATE_STACK_ENV", "/nonexistent/stack.env")
	for _, req := range []string{"", "1"} {
		t.Setenv("FTGATE_REQUIRE_STACK", req)
		r := &recTB{TB: t}
		Skip(r, "no %s", "bash")
		if req == "1" && (r.fatal != "FTGATE_REQUIRE_STACK=1 forbids skipping: no bash" || r.skip != "") {
			t.Errorf("required: fatal %q skip %q, want a failure", r.fatal, r.skip)
		}
		if req == "" && (r.skip != "no bash" || r.fatal != "") {
			t.Errorf("not required: fatal %q skip %q, want a skip", r.fatal, r.skip)
		}
		r = &recTB{TB: t}
		Require(r)
		if (req == "1") != (r.fatal != "") || (req == "") != (r.skip != "") {
			t.Errorf("Require with FTGATE_REQUIRE_STACK=%q: fatal %q skip %q", req, r.fatal, r.skip)
		}
	}
}
