//go:build unix && !linux

package moto

import (
	"os/exec"
	"syscall"
	"time"
)

// setProcessGroup puts the server in its own process group, so Stop can kill the group.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 2 * time.Second
}
