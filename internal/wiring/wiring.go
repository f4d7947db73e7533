// Package wiring is the one translation from the gateway's configuration to the option
// structs of the packages that serve a cluster: sshconn.Config and slurm.Options. Those
// packages never import config; the gateway (cmd/gateway), `gateway doctor` and the
// integration tests build them here, so a new cluster key is mapped in one place.
package wiring

import (
	"fmt"

	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/slurm"
	"github.com/ftgate/ftgate/internal/sshconn"
)

// SSHConfig builds a cluster's sshconn.Config, loading its user CA or service key.
// Logger, OnDialFailure and the other process-level settings stay for the caller.
func SSHConfig(cl *config.Cluster) (sshconn.Config, error) {
	c := sshconn.Config{
		Addr:           fmt.Sprintf("%s:%d", cl.Host, cl.Port),
		KnownHostsFile: cl.KnownHosts,
		CertTTL:        cl.CertTTL,
		ServiceUser:    cl.ServiceUser,
		MaxSessions:    cl.MaxSessions,
		CommandTimeout: cl.CommandTimeout,
	}
	if cl.UserCAKey != "" {
		s, err := sshconn.LoadSigner(cl.UserCAKey)
		if err != nil {
			return c, fmt.Errorf("cluster %s user_ca_key: %w", cl.Name, err)
		}
		c.UserCA = s
	}
	if cl.ServiceKey != "" {
		s, err := sshconn.LoadSigner(cl.ServiceKey)
		if err != nil {
			return c, fmt.Errorf("cluster %s service_key: %w", cl.Name, err)
		}
		c.ServiceKey = s
	}
	return c, nil
}

// SlurmOptions maps a cluster's configuration to slurm.Options.
func SlurmOptions(cl *config.Cluster) slurm.Options {
	return slurm.Options{
		Cluster:          cl.Name,
		SlurmConf:        cl.SlurmConf,
		JobRoot:          cl.JobRoot,
		Partitions:       cl.Partitions,
		DefaultPartition: cl.DefaultPartition,
		Account:          cl.Account,
		GPUType:          cl.GPUType,
		Python:           cl.Python,
		TrainerDir:       cl.TrainerDir,
		GPUStat:          cl.GPUStat,
		TemplateDir:      cl.TemplateDir,
		CheckpointSignal: cl.CheckpointSignal,
		SignalLead:       cl.SignalLead,
		RestartBudget:    cl.RestartBudget,
		ProbeUser:        cl.ProbeUser,
	}
}
