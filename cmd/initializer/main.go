// Command initializer prepares data for a job container from a connection
// catalog: it runs as the init container and the sidecar of job pods.
package main

import (
	"os"

	// First of the command's own imports: it catches SIGTERM while the
	// other packages initialise.
	_ "github.com/initializer/initializer/cmd/initializer/internal/sigearly"
)

func main() {
	os.Exit(run(os.Args[1:]))
}
