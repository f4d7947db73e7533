package ftctltest

import (
	"context"
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
)

// FlagServer is the gateway URL of FlagFactory: nothing listens there, flag tests
// stop at the runF seam before any request.
const FlagServer = "http://127.0.0.1:1"

// FlagFactory is a Factory for flag tests: FTCTL_SERVER is FlagServer, the config
// directory a fresh temporary one.
func FlagFactory(t *testing.T) *cmdutil.Factory {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ftctl")
	f := cmdutil.NewFactory(nil, io.Discard, io.Discard)
	f.Getenv = func(k string) string {
		return map[string]string{"FTCTL_SERVER": FlagServer, "FTCTL_CONFIG_DIR": dir}[k]
	}
	f.Now = func() time.Time { return T0 }
	return f
}

// Exec runs cmd (a command built with a runF that records its options) with args.
func Exec(cmd *cobra.Command, args ...string) error {
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	return cmd.Execute()
}

// FlagCase is one row of a command's flag table.
type FlagCase[O any] struct {
	Args    string // the command line, split on spaces
	Want    O      // the options runF receives, once the Set fields are cleared
	WantErr string // else: a usage error (exit 2) containing this, and runF not called
}

// FlagTable checks a command's flag parsing through its runF seam: what reaches the
// run function, and the usage errors caught before any request.
type FlagTable[O any] struct {
	// NewCmd builds the command with f and runF (which records the options).
	NewCmd func(f *cmdutil.Factory, runF func(context.Context, *O) error) *cobra.Command
	// Set names the fields checked as set, not compared (e.g. IO, Client, Now).
	Set []string
	// Check, when set, checks and clears the other fields that cannot be compared
	// (e.g. a random key) before the comparison.
	Check func(t *testing.T, got *O, want O)
}

// Run runs every case.
func (ft FlagTable[O]) Run(t *testing.T, cases []FlagCase[O]) {
	t.Helper()
	for _, tc := range cases {
		var got *O
		cmd := ft.NewCmd(FlagFactory(t), func(_ context.Context, o *O) error { got = o; return nil })
		cmd.SetContext(context.Background())
		err := Exec(cmd, strings.Fields(tc.Args)...)
		if tc.WantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.WantErr) || cmdutil.ExitCode(err) != cmdutil.ExitUsage {
				t.Errorf("%q: error %v (exit %d), want usage error %q", tc.Args, err, cmdutil.ExitCode(err), tc.WantErr)
			}
			if got != nil {
				t.Errorf("%q: runF was called despite the error", tc.Args)
			}
			continue
		}
		if err != nil || got == nil {
			t.Fatalf("%q: %v", tc.Args, err)
		}
		v := reflect.ValueOf(got).Elem()
		for _, name := range ft.Set {
			f := v.FieldByName(name)
			if !f.IsValid() {
				t.Fatalf("%T has no field %s", *got, name)
			}
			if f.IsZero() {
				t.Errorf("%q: %s not set", tc.Args, name)
			}
			f.SetZero()
		}
		if ft.Check != nil {
			ft.Check(t, got, tc.Want)
		}
		if !reflect.DeepEqual(*got, tc.Want) {
			t.Errorf("%q: options %+v, want %+v", tc.Args, *got, tc.Want)
		}
	}
}
