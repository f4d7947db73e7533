package cmdutil

import (
	"errors"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestCheckLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		limit   int
		wantErr string
	}{
		{1, ""},
		{MaxPage, ""},
		{0, "--limit must be between 1 and 200, got 0"},
		{-3, "--limit must be between 1 and 200, got -3"},
		{MaxPage + 1, "--limit must be between 1 and 200, got 201"},
	} {
		err := CheckLimit(tc.limit)
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("CheckLimit(%d) = %v, want nil", tc.limit, err)
			}
			continue
		}
		var u *UsageError
		if !errors.As(err, &u) || err.Error() != tc.wantErr {
			t.Errorf("CheckLimit(%d) = %v, want usage error %q", tc.limit, err, tc.wantErr)
		}
	}
}

func TestPageFlags(t *testing.T) {
	t.Parallel()
	var limit int
	var cursor string
	cmd := &cobra.Command{Use: "x"}
	AddPageFlags(cmd, &limit, &cursor, 20, "jobs")
	if limit != 20 || cursor != "" {
		t.Fatalf("defaults: limit %d cursor %q", limit, cursor)
	}
	if u := cmd.Flags().Lookup("limit").Usage; u != "jobs per page (1-200)" {
		t.Errorf("--limit usage %q", u)
	}
	if err := cmd.ParseFlags([]string{"-L", "7", "--cursor", "c1"}); err != nil || limit != 7 || cursor != "c1" {
		t.Errorf("parse: err %v limit %d cursor %q", err, limit, cursor)
	}

	var b strings.Builder
	PrintNextPage(&b, "jobs", "")
	if b.Len() != 0 {
		t.Errorf("no next page printed %q", b.String())
	}
	PrintNextPage(&b, "jobs", "c2")
	if b.String() != "More jobs: add --cursor c2\n" {
		t.Errorf("next page printed %q", b.String())
	}
}
