package cmdutil

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// MaxPage is the largest page the gateway serves, the upper bound of --limit.
const MaxPage = 200

// AddPageFlags adds a list command's paging flags: --limit/-L (def by default, 1 to
// MaxPage; check it with CheckLimit) and --cursor. noun names what a page holds.
func AddPageFlags(cmd *cobra.Command, limit *int, cursor *string, def int, noun string) {
	cmd.Flags().IntVarP(limit, "limit", "L", def, fmt.Sprintf("%s per page (1-%d)", noun, MaxPage))
	cmd.Flags().StringVar(cursor, "cursor", "", "continue after a previous page")
}

// CheckLimit refuses a --limit outside 1 to MaxPage with a usage error.
func CheckLimit(limit int) error {
	if limit < 1 || limit > MaxPage {
		return UsageErrorf("--limit must be between 1 and %d, got %d", MaxPage, limit)
	}
	return nil
}

// PrintNextPage tells on w how to ask for the next page of noun, when there is one.
func PrintNextPage(w io.Writer, noun, next string) {
	if next != "" {
		fmt.Fprintf(w, "More %s: add --cursor %s\n", noun, next)
	}
}
