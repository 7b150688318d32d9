package vault

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestBinaryFromEnvMissing(t *testing.T) {
	t.Setenv(EnvBinary, filepath.Join(t.TempDir(), "no-such-vault"))
	_, err := Binary()
	if err == nil || !strings.Contains(err.Error(), MakeTarget) {
		t.Fatalf("Binary() with a missing %s: got %v, want an error naming %q", EnvBinary, err, MakeTarget)
	}
}

func TestBinaryFromEnvNotExecutable(t *testing.T) {
	p := filepath.Join(t.TempDir(), "vault")
	if err := os.WriteFile(p, []byte("not a program"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvBinary, p)
	if _, err := Binary(); err == nil || !strings.Contains(err.Error(), "not an executable") {
		t.Fatalf("Binary() with a non-executable file: got %v", err)
	}
}

func TestCachePathMatchesMakefile(t *testing.T) {
	// The Makefile keys the cache on `sha256sum localtest/vaultdev/go.sum | cut -c1-12`.
	data, err := os.ReadFile(filepath.Join("..", "vaultdev", "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(data)
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(home, ".cache", "keyferry", "vault-"+hex.EncodeToString(h[:])[:12])
	got, err := CachePath()
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("CachePath() = %s, want %s", got, want)
	}
}

func TestStartFailsCleanlyWhenTheServerExits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// /bin/false exits at once: Start must report it, not hang until the deadline.
	_, err := Start(ctx, Options{Binary: "/bin/false", ReadyTimeout: 20 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") {
		t.Fatalf("Start(/bin/false): got %v, want an early-exit error", err)
	}
}

// TestServer starts the real dev server, uses it, stops it and checks that the process is gone.
func TestServer(t *testing.T) {
	bin, err := Binary()
	if err != nil {
		t.Fatal(err) // never skip: the make target builds it
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })

	if !strings.HasPrefix(s.Addr, "http://127.0.0.1:") {
		t.Errorf("Addr = %q, want a 127.0.0.1 address", s.Addr)
	}
	c, err := s.Client()
	if err != nil {
		t.Fatal(err)
	}
	// KV v2 is mounted at secret/ in dev mode.
	kv := c.KVv2("secret")
	if _, err := kv.Put(ctx, "localtest/a", map[string]any{"value": "one"}); err != nil {
		t.Fatalf("put secret/localtest/a: %v", err)
	}
	w, err := kv.Put(ctx, "localtest/a", map[string]any{"value": "two"})
	if err != nil {
		t.Fatal(err)
	}
	if w.VersionMetadata == nil || w.VersionMetadata.Version != 2 {
		t.Fatalf("second put: version %+v, want 2", w.VersionMetadata)
	}
	got, err := kv.Get(ctx, "localtest/a")
	if err != nil || got.Data["value"] != "two" {
		t.Fatalf("get secret/localtest/a: %v %v", got, err)
	}

	if err := s.EnableKV(ctx, "kv-extra"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.KVv2("kv-extra").Put(ctx, "x", map[string]any{"value": "y"}); err != nil {
		t.Fatalf("put into the new mount: %v", err)
	}

	// A wrong token is refused.
	bad, _ := s.Client()
	bad.SetToken("not-the-root-token")
	if _, err := bad.KVv2("secret").Get(ctx, "localtest/a"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("get with a bogus token: got %v, want a 403", err)
	}

	if logs := s.Logs(); !strings.Contains(logs, "Vault server started") {
		t.Errorf("Logs() does not hold the server's start banner:\n%s", tail(logs, 1024))
	}

	pid := s.PID()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil { // idempotent
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("Stop returned before the process was reaped")
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("process %d still exists after Stop (kill 0: %v)", pid, err)
	}
	if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("process group %d still exists after Stop (kill 0: %v)", pid, err)
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	if resp, err := hc.Get(s.Addr + "/v1/sys/health"); err == nil {
		resp.Body.Close()
		t.Fatalf("the server still answers on %s after Stop", s.Addr)
	}
}
