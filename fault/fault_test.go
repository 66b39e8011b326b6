package fault

import "testing"

func TestClassString(t *testing.T) {
	for c, want := range map[Class]string{
		Usage: "usage", Interrupted: "interrupted", LocalDisk: "local-disk",
		// A handler's exit code above 128 names the signal it stands for.
		143: "signal SIGTERM (terminated)", 139: "signal SIGSEGV (segmentation fault)", 137: "signal SIGKILL (killed)",
		// Other codes have no name.
		42: "class-42", 255: "class-255",
	} {
		if got := c.String(); got != want {
			t.Errorf("Class(%d).String() = %q, want %q", int(c), got, want)
		}
	}
}
