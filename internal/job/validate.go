package job

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// The one home of the patterns that names, accounts and ids must match.
var (
	// NameRE is the pattern of job, cluster, partition, account, QOS and GPU type
	// names.
	NameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	// UserRE is the pattern of a Unix account name the gateway acts as.
	UserRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	// IDRE is an ftgate (gateway) job id wherever one travels: the ftctl JOB argument,
	// the job directory name <job_root>/<user>/<id> and the Slurm tag ftgate-<id>.
	// The gateway mints UUIDs (postgres.NewID), which match; the store checks that
	// narrower shape itself before a lookup. Not to be confused with SlurmIDRE.
	IDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
	// SlurmIDRE is a Slurm job id (32-bit: at most 10 digits), optionally with an
	// array task (123_4).
	SlurmIDRE = regexp.MustCompile(`^[0-9]{1,10}(_[0-9]{1,10})?$`)
	// checkpointRE is a checkpoint directory's name: step-<N>.
	checkpointRE = regexp.MustCompile(`^step-([0-9]{1,12})$`)
)

// ValidUser reports whether name is an acceptable Unix account name.
func ValidUser(name string) bool { return UserRE.MatchString(name) }

// ValidName reports whether s is an acceptable job, cluster, partition or GPU type name.
func ValidName(s string) bool { return NameRE.MatchString(s) }

// ValidID reports whether id is an acceptable ftgate job id (IDRE).
func ValidID(id string) bool { return IDRE.MatchString(id) }

// ValidSlurmID reports whether id is a Slurm job id (array tasks included).
func ValidSlurmID(id string) bool { return SlurmIDRE.MatchString(id) }

// CheckpointStep returns N of a checkpoint directory name step-<N>.
func CheckpointStep(name string) (int64, bool) {
	m := checkpointRE.FindStringSubmatch(name)
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	return n, err == nil
}

// CheckpointName validates a client-supplied checkpoint name (step-<N>) and returns
// its step; a bad name is EInvalid.
func CheckpointName(name string) (int64, error) {
	n, ok := CheckpointStep(name)
	if !ok {
		if len(name) > 80 {
			name = name[:80] + "..."
		}
		return 0, Errorf(EInvalid, "checkpoint name: must look like step-<N>, got %q", name)
	}
	return n, nil
}

// CheckPath accepts clean absolute paths of at most 4096 bytes without control
// characters; the error says what is wrong (callers prefix the field).
func CheckPath(p string) error {
	switch {
	case p == "":
		return errors.New("is required")
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("must be an absolute path, got %q", p)
	case len(p) > 4096:
		return errors.New("is longer than 4096 bytes")
	case strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return errors.New("must not contain control characters")
	case path.Clean(p) != p:
		return fmt.Errorf("must be a clean path (no '..', '.', '//' or trailing '/'), got %q", p)
	}
	return nil
}

// CheckRemotePath is the guard of every path sent to a cluster: absolute, no NUL
// byte, no ".." element (it may be unclean otherwise: realpath resolves "." and
// "//"). The error says what is wrong.
func CheckRemotePath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("must be absolute, got %q", p)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return errors.New("contains a NUL byte")
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return fmt.Errorf("must not contain '..', got %q", p)
		}
	}
	return nil
}
