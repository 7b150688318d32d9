// Package proc sets up the processes the local cloud starts (emulators, function binaries) so that they
// never outlive the test or demo that started them.
package proc

import (
	"os/exec"
	"syscall"
	"time"
)

// Isolate puts cmd in its own process group (so its owner can kill the whole group) and has the kernel
// kill it if the process that started it dies first — as a test binary does when `go test -timeout`
// fires, without running any cleanup. The death signal survives exec, so a launcher script that execs
// the real server (the Pub/Sub emulator's) passes it on.
func Isolate(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 2 * time.Second
}
