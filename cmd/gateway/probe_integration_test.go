package main

import (
	"context"
	"strings"
	"testing"

	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/sshconn"
	"github.com/ftgate/ftgate/internal/stacktest"
	"github.com/ftgate/ftgate/internal/wiring"
)

// TestIntegrationReadyChecksProbeOperator: /ready's cluster check passes for the
// stack's probe account (AdminLevel Operator) and fails, naming the fix, for an
// account without operator rights.
func TestIntegrationReadyChecksProbeOperator(t *testing.T) {
	st := stacktest.Require(t)
	cfg, err := config.Load(st.GatewayConfig, nil)
	if err != nil {
		t.Fatal(err)
	}
	cl := cfg.Clusters[0]
	scfg, err := wiring.SSHConfig(&cl)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := sshconn.New(scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	ctx := context.Background()
	if cl.ProbeUser == "alice" || cl.ProbeUser == "bob" {
		t.Fatalf("the stack's probe_user is %s, a job owner; dev/stack up makes it ftgate-probe", cl.ProbeUser)
	}
	if err := probePing(sp, &cl)(ctx); err != nil {
		t.Errorf("probe %s: %v", cl.ProbeUser, err)
	}
	bob := cl
	bob.ProbeUser = "bob"
	err = probePing(sp, &bob)(ctx)
	if err == nil || !strings.Contains(err.Error(), "AdminLevel=Operator") {
		t.Errorf("probe bob (no operator level): %v", err)
	}
	off := false
	bob.ProbeOperatorCheck = &off
	if err := probePing(sp, &bob)(ctx); err != nil {
		t.Errorf("probe bob with probe_operator_check false: %v", err)
	}
}
