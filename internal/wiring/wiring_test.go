package wiring

import (
	"crypto/ed25519"
	"encoding/pem"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/ftgate/ftgate/internal/config"
)

// TestClusterPackagesDoNotImportConfig: slurm and sshconn take their own option
// structs; config reaches them only through this package.
func TestClusterPackagesDoNotImportConfig(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "../slurm", "../sshconn").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasSuffix(p, "/internal/config") {
			t.Errorf("slurm or sshconn depends on %s", p)
		}
	}
}

func testCluster(t *testing.T) *config.Cluster {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(nil)
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	key := string(pem.EncodeToMemory(block)) // inline PEM, as LoadSigner accepts
	return &config.Cluster{
		Name: "dev", Host: "127.0.0.1", Port: 2222, KnownHosts: "/etc/known_hosts", UserCAKey: key,
		CertTTL: 7 * time.Minute, ServiceUser: "svc", ProbeUser: "probe", MaxSessions: 5,
		SlurmConf: "/etc/slurm/slurm.conf", JobRoot: "/scratch/ftgate", Partitions: []string{"gpu", "cpu"},
		DefaultPartition: "gpu", Account: "acct", GPUType: "a100", Python: "/opt/py/bin/python",
		TrainerDir: "/opt/trainer", GPUStat: "/opt/bin/ftgate-gpustat", TemplateDir: "/etc/ftgate/templates",
		CheckpointSignal: "USR1", SignalLead: 2 * time.Minute, RestartBudget: 4, CommandTimeout: 11 * time.Second,
	}
}

// TestSlurmOptionsMapsEveryField: every slurm.Options field but the test clock comes
// from the cluster's configuration, so a new option cannot be forgotten here.
func TestSlurmOptionsMapsEveryField(t *testing.T) {
	cl := testCluster(t)
	o := SlurmOptions(cl)
	v := reflect.ValueOf(o)
	for i := 0; i < v.NumField(); i++ {
		if f := v.Type().Field(i); f.Name != "Now" && v.Field(i).IsZero() {
			t.Errorf("slurm.Options.%s is not set from config.Cluster", f.Name)
		}
	}
	if o.Cluster != "dev" || o.ProbeUser != "probe" || o.SignalLead != 2*time.Minute || o.RestartBudget != 4 ||
		!reflect.DeepEqual(o.Partitions, []string{"gpu", "cpu"}) || o.TemplateDir != "/etc/ftgate/templates" {
		t.Errorf("SlurmOptions = %+v", o)
	}
}

func TestSSHConfig(t *testing.T) {
	cl := testCluster(t)
	c, err := SSHConfig(cl)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:2222" || c.KnownHostsFile != "/etc/known_hosts" || c.CertTTL != 7*time.Minute ||
		c.ServiceUser != "svc" || c.MaxSessions != 5 || c.CommandTimeout != 11*time.Second ||
		c.UserCA == nil || c.ServiceKey != nil {
		t.Errorf("SSHConfig = %+v", c)
	}

	svc := *cl
	svc.UserCAKey, svc.ServiceKey = "", cl.UserCAKey
	if c, err := SSHConfig(&svc); err != nil || c.ServiceKey == nil || c.UserCA != nil {
		t.Errorf("service key mode: %+v, %v", c, err)
	}

	bad := *cl
	bad.UserCAKey = filepath.Join(t.TempDir(), "missing")
	if _, err := SSHConfig(&bad); err == nil || !strings.Contains(err.Error(), "cluster dev user_ca_key") {
		t.Errorf("missing CA key: err = %v", err)
	}
}
