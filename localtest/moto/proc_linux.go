package moto

import (
	"os/exec"
	"syscall"
	"time"
)

// setProcessGroup puts the server in its own process group (so Stop can kill the group) and has the
// kernel kill it if the test process dies first.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 2 * time.Second
}
