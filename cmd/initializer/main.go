// Command initializer prepares data for a job container from a connection
// catalog: it runs as the init container and the sidecar of job pods.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:]))
}
