// Package sbatchtemplates embeds the default batch script templates. Admins may copy
// them into a directory named by a cluster's template_dir and edit them there; they
// receive only validated, typed values (see internal/slurm.ScriptData).
package sbatchtemplates

import "embed"

// FS holds the default templates (*.sbatch.tmpl).
//
//go:embed *.sbatch.tmpl
var FS embed.FS

// Train is the name of the training job template.
const Train = "train.sbatch.tmpl"
