// Package vault runs a HashiCorp Vault dev server for the local cloud.
//
// The server is Vault built from its Go module (localtest/vaultdev, its own go.mod) by `make vault`, which
// caches the binary at $HOME/.cache/keyferry/vault-<first 12 hex digits of sha256(localtest/vaultdev/go.sum)>
// and passes its path in KEYFERRY_VAULT_BIN. Start runs `vault server -dev` on a free 127.0.0.1 port in its
// own process group with a random root token, captures its output (Logs), waits until sys/health answers,
// and Stop kills the process group and reaps the process.
//
// A dev server keeps everything in memory, is unsealed, and has KV version 2 mounted at secret/.
package vault

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/keyferry/keyferry/localtest/logbuf"
	"github.com/keyferry/keyferry/localtest/proc"
)

// EnvBinary names the environment variable holding the path of the Vault dev server binary.
const EnvBinary = "KEYFERRY_VAULT_BIN"

// MakeTarget is the make target that builds and caches the binary.
const MakeTarget = "make vault"

// Binary returns the path of the Vault dev server binary: $KEYFERRY_VAULT_BIN if set, else the cache path
// `make vault` writes. It fails, naming the make target, when the binary is missing.
func Binary() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		if err := executable(p); err != nil {
			return "", fmt.Errorf("vault dev server: %s=%s: %w: run `%s` to build it", EnvBinary, p, err, MakeTarget)
		}
		return p, nil
	}
	p, err := CachePath()
	if err != nil {
		return "", fmt.Errorf("vault dev server: %w: run `%s` (or set %s)", err, MakeTarget, EnvBinary)
	}
	if err := executable(p); err != nil {
		return "", fmt.Errorf("vault dev server binary %s: %w: run `%s` to build it (or set %s)", p, err, MakeTarget, EnvBinary)
	}
	return p, nil
}

// CachePath is where `make vault` caches the binary built from the current localtest/vaultdev/go.sum.
func CachePath() (string, error) {
	sum, err := findGoSum()
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(sum)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", sum, err)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no home directory for the build cache: %w", err)
	}
	h := sha256.Sum256(data)
	return filepath.Join(home, ".cache", "keyferry", "vault-"+hex.EncodeToString(h[:])[:12]), nil
}

// findGoSum locates localtest/vaultdev/go.sum from the working directory upwards (tests run in their
// package directory), falling back to this source file's location.
func findGoSum() (string, error) {
	const rel = "localtest/vaultdev/go.sum"
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	for _, dir := range starts {
		for {
			p := filepath.Join(dir, filepath.FromSlash(rel))
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", fmt.Errorf("cannot find %s above the working directory", rel)
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return errors.New("binary not found")
		}
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return errors.New("not an executable file")
	}
	return nil
}

// Options configure Start. The zero value is ready to use.
type Options struct {
	// Binary is the Vault binary; "" means Binary().
	Binary string
	// RootToken is the dev root token id; "" means a random one.
	RootToken string
	// ReadyTimeout bounds the wait for sys/health; 0 means 60 seconds.
	ReadyTimeout time.Duration
	// Args are extra arguments for `vault server`.
	Args []string
}

// Server is a running Vault dev server.
type Server struct {
	// Addr is the server's base URL, http://127.0.0.1:PORT.
	Addr string
	// RootToken is the dev root token.
	RootToken string

	cmd  *exec.Cmd
	logs *logbuf.Buffer
	done chan struct{} // closed when the process has been reaped
	werr error         // Wait's result, valid once done is closed

	stopOnce sync.Once
	stopErr  error
}

// Start runs a Vault dev server on a free 127.0.0.1 port and waits until it is ready. The server is
// stopped again if ctx ends before it is ready or if readiness fails; otherwise the caller must Stop it.
func Start(ctx context.Context, opts Options) (*Server, error) {
	bin := opts.Binary
	if bin == "" {
		var err error
		if bin, err = Binary(); err != nil {
			return nil, err
		}
	} else if err := executable(bin); err != nil {
		return nil, fmt.Errorf("vault dev server binary %s: %w: run `%s` to build it", bin, err, MakeTarget)
	}
	token := opts.RootToken
	if token == "" {
		token = "kf-root-" + randomHex(16)
	}
	timeout := opts.ReadyTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	// The port is picked, released and handed to Vault, so another process may grab it in between:
	// try a few ports before giving up.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := start(ctx, bin, token, opts.Args, timeout)
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

func start(ctx context.Context, bin, token string, extra []string, timeout time.Duration) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("vault dev server: pick a port: %w", err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	args := append([]string{"server", "-dev",
		"-dev-listen-address=" + listen,
		"-dev-root-token-id=" + token,
		"-dev-no-store-token", // never touch the user's ~/.vault-token
	}, extra...)
	home, err := os.MkdirTemp("", "keyferry-vault-home-")
	if err != nil {
		return nil, fmt.Errorf("vault dev server: %w", err)
	}
	logs := &logbuf.Buffer{}
	cmd := exec.Command(bin, args...)
	cmd.Env = serverEnv(home)
	cmd.Dir = home
	cmd.Stdout = logs
	cmd.Stderr = logs
	proc.Isolate(cmd)
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(home)
		return nil, fmt.Errorf("vault dev server: start %s: %w", bin, err)
	}
	s := &Server{Addr: "http://" + listen, RootToken: token, cmd: cmd, logs: logs, done: make(chan struct{})}
	go func() {
		s.werr = cmd.Wait()
		_ = os.RemoveAll(home)
		close(s.done)
	}()
	if err := s.waitReady(ctx, timeout); err != nil {
		_ = s.Stop()
		out := s.Logs()
		if strings.Contains(out, "address already in use") {
			return nil, fmt.Errorf("vault dev server on %s: %w", listen, errPortTaken)
		}
		return nil, fmt.Errorf("vault dev server on %s: %w\n--- server output (last 2 KiB) ---\n%s", listen, err, tail(out, 2048))
	}
	return s, nil
}

// serverEnv is the environment without VAULT_* settings (so none leaks in from the caller) and with
// a private HOME.
func serverEnv(home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "VAULT_") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+home)
}

func (s *Server) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.Addr+"/v1/sys/health", nil)
		resp, err := hc.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("sys/health answered %s", resp.Status)
		} else {
			last = err
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

// PID is the server's process id (also its process group id).
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Logs returns everything the server printed so far (stdout and stderr).
func (s *Server) Logs() string { return s.logs.String() }

// Done is closed once the server process has exited and been reaped.
func (s *Server) Done() <-chan struct{} { return s.done }

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
				s.stopErr = fmt.Errorf("vault dev server (pid %d) did not exit after SIGKILL", pid)
				return
			}
		}
		// Anything else left in the group (there should be nothing) goes too.
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	})
	return s.stopErr
}

// Client returns a Vault API client for the server, authenticated with the root token, with no
// retries (tests see every failure).
func (s *Server) Client() (*api.Client, error) {
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, cfg.Error
	}
	cfg.Address = s.Addr
	cfg.MaxRetries = 0
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	c.SetToken(s.RootToken)
	c.SetNamespace("")
	return c, nil
}

// EnableKV mounts a KV version 2 secrets engine at mount (e.g. "kv2"); "secret" is mounted already.
func (s *Server) EnableKV(ctx context.Context, mount string) error {
	c, err := s.Client()
	if err != nil {
		return err
	}
	err = c.Sys().MountWithContext(ctx, mount, &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}})
	if err != nil {
		return fmt.Errorf("enable kv-v2 at %s: %w", mount, err)
	}
	return nil
}

// JWTAuth configures a jwt auth mount: tokens signed by the keys at JWKSURL whose iss is BoundIssuer
// log in to one of Roles.
type JWTAuth struct {
	// JWKSURL is where the issuer publishes its keys; JWKSCAPEM, if set, is the CA of its HTTPS
	// certificate.
	JWKSURL, JWKSCAPEM string
	// BoundIssuer is the iss every token must carry.
	BoundIssuer string
	// Roles by name.
	Roles map[string]JWTRole
}

// JWTRole is a role of a jwt auth mount (role_type jwt).
type JWTRole struct {
	// BoundAudiences: the token's aud must be one of them (Vault requires them when tokens carry aud).
	BoundAudiences []string
	// BoundSubject, if set, is the sub the token must carry.
	BoundSubject string
	// BoundClaims are further claims the token must carry (names starting with / are JSON pointers).
	BoundClaims map[string]any
	// UserClaim names the entity alias; default "sub".
	UserClaim string
	// Policies are the token's policies.
	Policies []string
	// TTL is the token's TTL; 0 is the mount's default.
	TTL time.Duration
}

// EnableJWT mounts the jwt auth method at mount (e.g. "jwt-aws") and writes its configuration and roles.
func (s *Server) EnableJWT(ctx context.Context, mount string, a JWTAuth) error {
	if a.JWKSURL == "" || a.BoundIssuer == "" || len(a.Roles) == 0 {
		return fmt.Errorf("jwt auth at %s: JWKSURL, BoundIssuer and at least one role are required", mount)
	}
	c, err := s.Client()
	if err != nil {
		return err
	}
	if err := c.Sys().EnableAuthWithOptionsWithContext(ctx, mount, &api.EnableAuthOptions{Type: "jwt"}); err != nil {
		return fmt.Errorf("enable jwt auth at %s: %w", mount, err)
	}
	conf := map[string]any{"jwks_url": a.JWKSURL, "bound_issuer": a.BoundIssuer}
	if a.JWKSCAPEM != "" {
		conf["jwks_ca_pem"] = a.JWKSCAPEM
	}
	if _, err := c.Logical().WriteWithContext(ctx, "auth/"+mount+"/config", conf); err != nil {
		return fmt.Errorf("configure jwt auth at %s: %w", mount, err)
	}
	for name, r := range a.Roles {
		role := map[string]any{"role_type": "jwt", "user_claim": r.UserClaim, "bound_audiences": r.BoundAudiences,
			"token_policies": r.Policies}
		if r.UserClaim == "" {
			role["user_claim"] = "sub"
		}
		if r.BoundSubject != "" {
			role["bound_subject"] = r.BoundSubject
		}
		if len(r.BoundClaims) > 0 {
			role["bound_claims"] = r.BoundClaims
		}
		if r.TTL > 0 {
			role["token_ttl"] = int(r.TTL / time.Second)
		}
		if _, err := c.Logical().WriteWithContext(ctx, "auth/"+mount+"/role/"+name, role); err != nil {
			return fmt.Errorf("jwt auth role %s/%s: %w", mount, name, err)
		}
	}
	return nil
}

// WritePolicy writes an ACL policy (HCL).
func (s *Server) WritePolicy(ctx context.Context, name, hcl string) error {
	c, err := s.Client()
	if err != nil {
		return err
	}
	if err := c.Sys().PutPolicyWithContext(ctx, name, hcl); err != nil {
		return fmt.Errorf("policy %s: %w", name, err)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
