// Package moto runs the moto AWS emulator (https://github.com/getmoto/moto, preinstalled as a Python
// package) for the local cloud: Secrets Manager, SSM Parameter Store, KMS, ACM, STS, EventBridge.
//
// Start runs moto's server (`python3 -c <kms_digest.py> -H 127.0.0.1 -p PORT`: moto.server's main, with
// KMS Sign and Verify patched to honour MessageType=DIGEST as AWS KMS does, see kms_digest.py) on a free
// 127.0.0.1 port in its own process group, captures its output (Logs), and waits until
// sts:GetCallerIdentity answers. Stop kills the process group and reaps the process; Reset empties every
// backend between tests.
//
// One server serves every region and account; signatures are not checked (unless auth is switched on with
// INITIAL_NO_AUTH_ACTION_COUNT, see Options.Env). Config builds an aws.Config for the server with static
// "testing" credentials: it is for the local cloud only.
package moto

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/keyferry/keyferry/localtest/logbuf"
	"github.com/keyferry/keyferry/localtest/proc"
)

// EnvPython names the environment variable holding the Python interpreter that has moto installed
// ("python3" from PATH when unset).
const EnvPython = "KEYFERRY_PYTHON"

// MakeTarget is the make target that installs moto (moto[server] 5.2.1) for the tests.
const MakeTarget = "make moto"

// kmsDigestPatch is the Python program Start runs instead of `python3 -m moto.server`: moto's server
// with its KMS Sign and Verify fixed for MessageType=DIGEST. moto 5.2.1 ignores MessageType (it hashes
// the digest again, signing H(digest)) and gives RSA-PSS the maximum salt length; the patch signs and
// verifies a DIGEST as prehashed, with a PSS salt as long as the digest, and refuses a digest of the wrong
// length, as AWS KMS does, so the SDK (and crypto/x509 checking the signatures) cannot tell moto from KMS.
// RAW messages and everything else keep moto's behaviour. It patches when moto first loads its KMS
// backend, so start-up costs nothing more.
//
//go:embed kms_digest.py
var kmsDigestPatch string

// Region, AccessKeyID and SecretAccessKey are what Config uses. Moto accepts any key; these are
// deliberately fake and must never be replaced by real credentials.
const (
	Region          = "us-east-1"
	AccessKeyID     = "testing"
	SecretAccessKey = "testing"
)

// Retry settings for tests: enough attempts to ride out heavy injected throttling (20% per call fails
// all 12 attempts with probability 0.2^12 ≈ 4e-9), a short constant backoff so tests take seconds, and
// no client-side retry quota (the SDK's token bucket would otherwise turn sustained throttling into
// failures after a few thousand attempts).
const (
	TestMaxAttempts = 12
	TestMaxBackoff  = 20 * time.Millisecond
)

// TestRetryer is the SDK's standard retryer with the test retry settings.
func TestRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = TestMaxAttempts
		o.MaxBackoff = TestMaxBackoff
		o.RateLimiter = ratelimit.None
	})
}

// Config returns an aws.Config for a local emulator at endpoint (e.g. Server.URL, or a fault proxy in
// front of it): region us-east-1, static fake credentials "testing"/"testing", the endpoint set SDK-wide,
// and TestRetryer. It reads nothing from the environment or ~/.aws, so a developer's real AWS settings
// never leak into a test — and it must only ever be used for the local cloud.
func Config(endpoint string) aws.Config {
	return aws.Config{
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, ""),
		BaseEndpoint: aws.String(endpoint),
		Retryer:      TestRetryer,
	}
}

// Options configure Start. The zero value is ready to use.
type Options struct {
	// Python is the interpreter with moto installed; "" means $KEYFERRY_PYTHON, else "python3".
	Python string
	// ReadyTimeout bounds the wait for the server to answer; 0 means 60 seconds.
	ReadyTimeout time.Duration
	// Env adds environment variables for the server, e.g. "INITIAL_NO_AUTH_ACTION_COUNT=0" (moto then
	// checks credentials and refuses the fake ones), "MOTO_ACCOUNT_ID=222222222222".
	Env []string
}

// Server is a running moto server.
type Server struct {
	// URL is the server's base URL, http://127.0.0.1:PORT.
	URL string

	cmd  *exec.Cmd
	logs *logbuf.Buffer
	done chan struct{} // closed when the process has been reaped
	werr error         // Wait's result, valid once done is closed

	stopOnce sync.Once
	stopErr  error
}

// Start runs a moto server on a free 127.0.0.1 port and waits until sts:GetCallerIdentity answers (or,
// with auth switched on, refuses the fake key). The server is stopped
// again if ctx ends before it is ready or if readiness fails; otherwise the caller must Stop it.
func Start(ctx context.Context, opts Options) (*Server, error) {
	py := opts.Python
	if py == "" {
		py = os.Getenv(EnvPython)
	}
	if py == "" {
		py = "python3"
	}
	path, err := exec.LookPath(py)
	if err != nil {
		return nil, fmt.Errorf("moto: Python interpreter %q not found: %w: run `%s` (or set %s)", py, err, MakeTarget, EnvPython)
	}
	timeout := opts.ReadyTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	// The port is picked, released and handed to moto, so another process may grab it in between: try a
	// few ports before giving up.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := start(ctx, path, opts.Env, timeout)
		if err == nil {
			return s, nil
		}
		lastErr = err
		if !errors.Is(err, errPortTaken) || ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

var errPortTaken = errors.New("port already in use")

func start(ctx context.Context, python string, extraEnv []string, timeout time.Duration) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("moto: pick a port: %w", err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	logs := &logbuf.Buffer{}
	cmd := exec.Command(python, "-c", kmsDigestPatch, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	cmd.Env = append(serverEnv(), extraEnv...)
	cmd.Dir = os.TempDir()
	cmd.Stdout = logs
	cmd.Stderr = logs
	proc.Isolate(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("moto: start %s: %w: run `%s`", python, err, MakeTarget)
	}
	s := &Server{URL: "http://" + addr, cmd: cmd, logs: logs, done: make(chan struct{})}
	go func() {
		s.werr = cmd.Wait()
		close(s.done)
	}()
	if err := s.waitReady(ctx, timeout); err != nil {
		_ = s.Stop()
		out := s.Logs()
		switch {
		case strings.Contains(out, "Address already in use") || strings.Contains(out, "address already in use"):
			return nil, fmt.Errorf("moto on %s: %w", addr, errPortTaken)
		case strings.Contains(out, "No module named"):
			return nil, fmt.Errorf("moto is not installed for %s: run `%s` (or set %s to a Python with moto[server])\n--- output ---\n%s",
				python, MakeTarget, EnvPython, tail(out, 2048))
		}
		return nil, fmt.Errorf("moto on %s: %w\n--- server output (last 2 KiB) ---\n%s", addr, err, tail(out, 2048))
	}
	return s, nil
}

// serverEnv is the environment without AWS_* and MOTO_* settings (so none leaks in from the caller),
// with unbuffered Python output so Logs is current.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "MOTO_") ||
			strings.HasPrefix(kv, "INITIAL_NO_AUTH_ACTION_COUNT=") || strings.HasPrefix(kv, "PYTHONUNBUFFERED=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "PYTHONUNBUFFERED=1")
}

// stsProbe is an unsigned-but-well-formed sts:GetCallerIdentity request; moto routes on the service named
// in the Authorization header's credential scope and does not check the signature.
const stsProbe = "Action=GetCallerIdentity&Version=2011-06-15"

func (s *Server) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		last = s.probe(ctx, hc)
		if last == nil {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("the server exited before it was ready: %v", s.werr)
		case <-ctx.Done():
			return fmt.Errorf("not ready within %s: %w (last: %v)", timeout, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

func (s *Server) probe(ctx context.Context, hc *http.Client) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/", strings.NewReader(stsProbe))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+AccessKeyID+"/20260101/"+Region+
		"/sts/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte("GetCallerIdentityResult")):
		return nil
	case resp.StatusCode == http.StatusForbidden && bytes.Contains(body, []byte("InvalidClientTokenId")):
		return nil // auth switched on (INITIAL_NO_AUTH_ACTION_COUNT): STS answers, refusing the fake key
	}
	return fmt.Errorf("sts:GetCallerIdentity answered %s", resp.Status)
}

// PID is the server's process id (also its process group id).
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Logs returns everything the server printed so far (stdout and stderr: werkzeug's request lines and
// any Python tracebacks).
func (s *Server) Logs() string { return s.logs.String() }

// Done is closed once the server process has exited and been reaped.
func (s *Server) Done() <-chan struct{} { return s.done }

// Reset empties every moto backend (all services, regions and accounts) via POST /moto-api/reset.
func (s *Server) Reset(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/moto-api/reset", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("moto reset: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("moto reset: %s", resp.Status)
	}
	return nil
}

// Stop kills the server's process group (SIGTERM, then SIGKILL after 5 seconds) and waits until the
// process has been reaped. It is safe to call more than once.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		pid := s.cmd.Process.Pid
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			select {
			case <-s.done:
			case <-time.After(10 * time.Second):
				s.stopErr = fmt.Errorf("moto (pid %d) did not exit after SIGKILL", pid)
				return
			}
		}
		// Anything else left in the group (there should be nothing) goes too.
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	})
	return s.stopErr
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
