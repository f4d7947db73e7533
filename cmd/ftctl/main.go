// Command ftctl is the ftgate command-line client.
package main

import (
	"os"

	"github.com/ftgate/ftgate/internal/ftctl/cmd/root"
)

func main() {
	os.Exit(root.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
