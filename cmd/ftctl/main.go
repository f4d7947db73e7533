// Command ftctl is the ftgate command-line client.
package main

import (
	"os"

	"github.com/ftgate/ftgate/internal/ftctl"
)

func main() {
	os.Exit(ftctl.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
