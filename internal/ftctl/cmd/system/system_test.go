package system_test

import (
	"encoding/json"
	"testing"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
)

func TestSystem(t *testing.T) {
	t.Parallel()
	e := ftctltest.NewEnv(t)
	ftctltest.SeedList(e)
	code, out, errOut := e.Run("system")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d stderr %q", code, errOut)
	}
	ftctltest.Golden(t, "system.txt", out)
	code, out, _ = e.Run("system", "--json")
	var st client.SystemStatus
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st.Clusters) != 1 {
		t.Errorf("--json: exit %d, %q", code, out)
	}
}
