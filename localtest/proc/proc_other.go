//go:build unix && !linux

package proc

import (
	"os/exec"
	"syscall"
	"time"
)

// Isolate puts cmd in its own process group, so its owner can kill the whole group. (Only Linux can have
// the kernel kill it when its parent dies.)
func Isolate(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 2 * time.Second
}
