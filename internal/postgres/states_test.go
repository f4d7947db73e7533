package postgres

import (
	"os"
	"strings"
	"testing"
)

// TestTerminalListMatchesIndexes: the queries that embed terminalList match the
// partial indexes only while the migrations name the same states.
func TestTerminalListMatchesIndexes(t *testing.T) {
	t.Parallel()
	for file, pred := range map[string]string{
		"migrations/0001_jobs.up.sql":      "CREATE INDEX jobs_live ON jobs (cluster, state) WHERE state NOT IN " + terminalList,
		"migrations/0002_artifacts.up.sql": "WHERE state IN " + terminalList + " AND artifacts_purged_at IS NULL AND NOT pinned",
	} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), pred) {
			t.Errorf("%s has no %q: a new migration must rebuild the index on the domain's terminal states", file, pred)
		}
	}
}
