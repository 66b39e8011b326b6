// Package sigearly catches SIGTERM and SIGINT from the first milliseconds of
// the process. Go runs the initialisation of every package the command
// links (the store SDKs take about 10 ms, far more on a loaded node) before
// main; a signal that arrives meanwhile would kill the process with no
// --result. This package has no dependency but the signal package, so it
// is initialised among the first; main takes the signal over from C.
package sigearly

import (
	"os"
	"os/signal"
	"syscall"
)

// C holds a SIGTERM or SIGINT received before main took over.
var C = make(chan os.Signal, 1)

func init() { signal.Notify(C, syscall.SIGTERM, syscall.SIGINT) }

// Take stops the early catch and reports the signal it caught, if any.
// Call it once the process's own handling is installed.
func Take() os.Signal {
	signal.Stop(C)
	select {
	case s := <-C:
		return s
	default:
		return nil
	}
}
