package slurm

import (
	"context"
	"fmt"
	"strings"

	"github.com/ftgate/ftgate/internal/job"
)

// prepareAndSubmitScript creates the job directory, writes job.json and job.sbatch
// into it and execs sbatch with the remaining arguments and the script on stdin: the
// whole submission in one remote command instead of an SFTP mkdir, two SFTP writes and
// an sbatch. It forks only mkdir (printf is a shell builtin; sbatch replaces the
// shell), which matters: every process costs milliseconds on a busy login node. It is
// a constant; the directory, the script, job.json ("=" and the JSON, or "-" to read it
// from stdin when it is too large for a command line), the cluster's slurm.conf (empty:
// Slurm's default; set here rather than by an `env` in front, one process less) and the
// sbatch arguments arrive as quoted positional parameters. The files need no temporary name: the directory is
// new to this attempt and nothing reads them before the sbatch that follows. Exit 97
// means the directory or a file could not be written.
const prepareAndSubmitScript = `d=$1 s=$2 j=$3 c=$4
shift 4
if [ -n "$c" ]; then SLURM_CONF=$c; export SLURM_CONF; fi
fail() { echo "ftgate: $1" >&2; exit 97; }
umask 077
mkdir -p -- "$d" || fail "cannot create $d"
umask 022
if [ "$j" = - ]; then cat >"$d/job.json"; else printf '%s' "${j#=}" >"$d/job.json"; fi || fail "cannot write $d/job.json"
printf '%s' "$s" >"$d/job.sbatch" || fail "cannot write $d/job.sbatch"
exec sbatch "$@" <"$d/job.sbatch"`

// MaxInlineScript is the largest rendered script SubmitInDir passes as one command-line
// word (Linux caps a single argument at 128 KiB); larger scripts must go the SFTP way.
const MaxInlineScript = 64 << 10

// prepareExit is the exit status of prepareAndSubmitScript when the job directory or
// a file in it could not be written.
const prepareExit = 97

// SubmitInDir is Submit plus the job directory: in one remote command as user it
// creates jobDir, which must be <job_root>/<user>/<job-id>/ as the script names it
// (mode 0700), writes jobJSON as job.json and the
// rendered script as job.sbatch (0644) and runs `sbatch --parsable`
// on it. Errors are those of Submit; a directory or file that cannot be written is a
// plain (retryable) error. Scripts over MaxInlineScript are refused with EInvalid:
// use MkdirAll, WriteFile and Submit for those.
func (c *Client) SubmitInDir(ctx context.Context, user string, req Request, jobDir string, jobJSON []byte) (Submitted, error) {
	if req.User == "" {
		req.User = user
	}
	script, err := c.Render(req)
	if err != nil {
		return Submitted{}, err
	}
	if len(script) > MaxInlineScript {
		return Submitted{}, invalid("script", "rendered script is %d bytes, over the %d a command line carries", len(script), MaxInlineScript)
	}
	dir := JobDir(c.opts.JobRoot, req.User, req.JobID)
	if err := checkPath(dir); err != nil {
		return Submitted{}, err
	}
	if jobDir != dir {
		return Submitted{}, &job.Error{Code: job.EInternal, Message: fmt.Sprintf("job directory %q is not the script's %q", jobDir, dir)}
	}
	part := req.Partition
	if part == "" {
		part = c.opts.DefaultPartition
	}
	if err := c.fits(ctx, part, req); err != nil {
		return Submitted{}, err
	}
	jsonArg, stdin := "="+string(jobJSON), ""
	if len(jobJSON) > MaxInlineScript {
		jsonArg, stdin = "-", string(jobJSON)
	}
	out, stderr, status, err := c.runArgv(ctx, user, stdin, []string{"sh", "-c", prepareAndSubmitScript, "sh", dir, script, jsonArg, c.opts.SlurmConf, "--parsable"})
	if err != nil {
		return Submitted{}, fmt.Errorf("run sbatch: %w", err)
	}
	switch {
	case status == prepareExit && strings.Contains(stderr, "ftgate: "):
		return Submitted{}, fmt.Errorf("prepare job directory: %s", firstLine(stderr[strings.Index(stderr, "ftgate: "):]))
	case status != 0:
		return Submitted{}, submitError(stderr, status)
	}
	id, cluster, err := parseSubmit(out)
	if err != nil {
		return Submitted{}, err
	}
	return Submitted{ID: id, Cluster: cluster, Script: script}, nil
}
