package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ftgate/ftgate/internal/doctor"
)

// newDoctor is `gateway doctor`: it checks the deployment described by the config
// and exits non-zero when a check fails.
func newDoctor(cfgPath *string) *cobra.Command {
	var trainerTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check the config, Postgres, the identity provider and each cluster; one line per check with what to fix",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rs := doctor.Run(cmd.Context(), doctor.Options{ConfigPath: *cfgPath, Environ: os.Environ(),
				Out: cmd.OutOrStdout(), TrainerTimeout: trainerTimeout})
			if n := doctor.Failed(rs); n > 0 {
				return fmt.Errorf("doctor: %d of %d checks failed", n, len(rs))
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&trainerTimeout, "trainer-timeout", 3*time.Minute, "how long the trainer check's job may wait for a node and run")
	return cmd
}
