package system_test

import (
	"testing"

	"github.com/ftgate/ftgate/internal/ftctl/cmd/system"
	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
)

// TestNewCmdSystem parses flags through the runF seam: what reaches the run
// function, and the usage errors (exit 2) caught before any request.
func TestNewCmdSystem(t *testing.T) {
	t.Parallel()
	ftctltest.FlagTable[system.SystemOptions]{
		NewCmd: system.NewCmdSystem,
		Set:    []string{"IO", "Client"},
	}.Run(t, []ftctltest.FlagCase[system.SystemOptions]{
		{Args: "", Want: system.SystemOptions{}},
		{Args: "--json", Want: system.SystemOptions{JSON: true}},
		{Args: "now", WantErr: `system takes no arguments, got "now"`},
	})
}
