// Command print writes the rows benchmarks recorded in FILE (see package benchtable)
// as one Markdown table: `go run ./internal/benchtable/print FILE`.
package main

import (
	"fmt"
	"os"

	"github.com/ftgate/ftgate/internal/benchtable"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: print FILE")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench table:", err)
		os.Exit(1)
	}
	defer f.Close()
	rows, err := benchtable.Read(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println()
	fmt.Println("## Benchmark table (ratios against references measured in the same run)")
	fmt.Println()
	benchtable.Write(os.Stdout, rows)
}
