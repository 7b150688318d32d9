package gcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/api/option"

	"github.com/keyferry/keyferry/localtest/logbuf"
	"github.com/keyferry/keyferry/localtest/proc"
)

// PubSubProvider names what provides the Pub/Sub emulator, for error messages.
const PubSubProvider = "the gcloud Pub/Sub emulator (Debian package google-cloud-cli-pubsub-emulator, " +
	"or `gcloud components install pubsub-emulator`) and a Java 17 runtime"

// PubSubOptions configure the Pub/Sub emulator process.
type PubSubOptions struct {
	// SDKRoot is the Google Cloud SDK root; "" asks `gcloud info`, then tries /usr/lib/google-cloud-sdk.
	SDKRoot string
	// ReadyTimeout bounds the wait for the emulator to answer GET / with "Ok" (default 90 s: it takes
	// ~2.5 s idle and much longer on a loaded machine).
	ReadyTimeout time.Duration
}

// PubSub is a running Pub/Sub emulator.
type PubSub struct {
	cmd     *exec.Cmd
	host    string
	logs    logbuf.Buffer
	exited  chan struct{}
	waitErr error

	stopOnce sync.Once
}

// StartPubSub starts the emulator on a free 127.0.0.1 port and waits until it is ready. The process it
// holds is the JVM itself (the launcher script execs java), in its own process group. Stop it with Stop.
func StartPubSub(ctx context.Context, opts PubSubOptions) (*PubSub, error) {
	launcher, err := pubsubLauncher(ctx, opts.SDKRoot)
	if err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("java"); err != nil && os.Getenv("JAVA_HOME") == "" {
		return nil, fmt.Errorf("pubsub emulator: no java on PATH and no JAVA_HOME: install %s", PubSubProvider)
	}
	timeout := opts.ReadyTimeout
	if timeout <= 0 {
		timeout = 90 * time.Second
	}
	// A port picked then released can be taken by someone else before the JVM binds it: try a few.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		ps, err := startPubSubOnce(ctx, launcher, timeout)
		if err == nil {
			return ps, nil
		}
		lastErr = err
		if ctx.Err() != nil || !errors.Is(err, errExitedEarly) {
			break
		}
	}
	return nil, lastErr
}

var errExitedEarly = errors.New("pubsub emulator exited before it was ready")

func startPubSubOnce(ctx context.Context, launcher string, timeout time.Duration) (*PubSub, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	ps := &PubSub{host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), exited: make(chan struct{})}
	ps.cmd = exec.Command(launcher, "--host=127.0.0.1", "--port="+strconv.Itoa(port))
	ps.cmd.Stdout = &ps.logs
	ps.cmd.Stderr = &ps.logs
	proc.Isolate(ps.cmd)
	if err := ps.cmd.Start(); err != nil {
		return nil, fmt.Errorf("pubsub emulator: start %s: %w", launcher, err)
	}
	go func() {
		ps.waitErr = ps.cmd.Wait()
		close(ps.exited)
	}()
	if err := ps.waitReady(ctx, timeout); err != nil {
		ps.Stop()
		return nil, err
	}
	return ps, nil
}

func (ps *PubSub) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		if ps.ready(ctx, client) {
			return nil
		}
		select {
		case <-ps.exited:
			return fmt.Errorf("%w (%v); its output:\n%s", errExitedEarly, ps.waitErr, tail(ps.Logs(), 2000))
		case <-deadline.C:
			return fmt.Errorf("pubsub emulator on %s not ready after %s; its output:\n%s", ps.host, timeout, tail(ps.Logs(), 2000))
		case <-ctx.Done():
			return fmt.Errorf("pubsub emulator: waiting for readiness: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

func (ps *PubSub) ready(ctx context.Context, client *http.Client) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ps.host+"/", nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
	return resp.StatusCode == http.StatusOK && strings.TrimSpace(string(b)) == "Ok"
}

// Host is the emulator's address, 127.0.0.1:PORT (the value for PUBSUB_EMULATOR_HOST).
func (ps *PubSub) Host() string { return ps.host }

// PID is the emulator's process id (the JVM's), which is also its process group id.
func (ps *PubSub) PID() int { return ps.cmd.Process.Pid }

// ClientOptions are the options for pubsub.NewClient to talk to the emulator (plaintext, no auth).
func (ps *PubSub) ClientOptions() []option.ClientOption { return EndpointOptions(ps.host) }

// Logs returns everything the emulator wrote to stdout and stderr so far.
func (ps *PubSub) Logs() string { return ps.logs.String() }

// Stop kills the emulator's process group (SIGTERM, then SIGKILL after 10 s) and waits for the JVM to
// exit. It is safe to call more than once.
func (ps *PubSub) Stop() {
	ps.stopOnce.Do(func() {
		pgid := ps.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-ps.exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-ps.exited
		}
		// Anything the JVM left in its group (there should be nothing) goes too, by PID.
		for _, pid := range GroupMembers(pgid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

// GroupMembers lists the processes whose process group is pgid (from /proc).
func GroupMembers(pgid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) >= 3 {
			if g, err := strconv.Atoi(f[2]); err == nil && g == pgid {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// pubsubLauncher finds the emulator's launcher script.
func pubsubLauncher(ctx context.Context, root string) (string, error) {
	var roots []string
	if root != "" {
		roots = append(roots, root)
	} else {
		if gcloud, err := exec.LookPath("gcloud"); err == nil {
			c, cancel := context.WithTimeout(ctx, 60*time.Second)
			out, err := exec.CommandContext(c, gcloud, "info", "--format=value(installation.sdk_root)").Output()
			cancel()
			if err == nil && strings.TrimSpace(string(out)) != "" {
				roots = append(roots, strings.TrimSpace(string(out)))
			}
		}
		roots = append(roots, "/usr/lib/google-cloud-sdk")
	}
	for _, r := range roots {
		p := filepath.Join(r, "platform", "pubsub-emulator", "bin", "cloud-pubsub-emulator")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("pubsub emulator: no platform/pubsub-emulator/bin/cloud-pubsub-emulator under %s: install %s",
		strings.Join(roots, ", "), PubSubProvider)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
