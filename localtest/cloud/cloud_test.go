package cloud

import (
	"context"
	"errors"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyferry/keyferry/core/config"
)

// TestStartStop starts every part, checks that each listens on 127.0.0.1 only and that the generated
// configuration loads, then stops everything and checks that every process is gone.
func TestStartStop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			c.Stop()
		}
	})

	for name, raw := range map[string]string{
		"moto": c.Moto.URL, "aws-proxy": c.AWSProxy.URL, "keyvault": c.KeyVault.URL(), "issuer": c.Issuer.URL(),
		"vault": c.Vault.Addr, "vault-proxy": c.VaultProxy.URL, "secretmanager": "grpc://" + c.SecretManager.Addr(),
		"pubsub": "http://" + c.PubSub.Host(),
	} {
		u, err := url.Parse(raw)
		if err != nil || u.Hostname() != "127.0.0.1" {
			t.Errorf("%s listens on %q, want 127.0.0.1", name, raw)
		}
	}

	cfg, err := config.Parse("local.yaml", []byte(c.Config()))
	if err != nil {
		t.Fatalf("generated configuration: %v\n%s", err, c.Config())
	}
	if len(cfg.Stores) != 6 {
		t.Fatalf("stores %d, want 6", len(cfg.Stores))
	}
	for _, sc := range cfg.Stores {
		if sc.Type != config.TypeFile && !sc.Local {
			t.Errorf("store %s is not marked local", sc.Name)
		}
	}
	env := c.Env()
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "VAULT_TOKEN", "PUBSUB_EMULATOR_HOST"} {
		if env[k] == "" {
			t.Errorf("Env has no %s", k)
		}
	}

	pids := map[string]int{"moto": c.Moto.PID(), "vault": c.Vault.PID(), "pubsub (java)": c.PubSub.PID()}
	dir := c.Dir
	c.Stop()
	stopped = true
	c.Stop() // idempotent
	for name, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s (pid %d) still exists after Stop: %v", name, pid, err)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("temporary directory %s left behind", dir)
	}
}

// TestStartFailureStopsEverything: a part that cannot start makes Start stop what it already started.
func TestStartFailureStopsEverything(t *testing.T) {
	t.Setenv("KEYFERRY_VAULT_BIN", "/nonexistent/vault")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	_, err := Start(ctx, Options{Parts: []string{AWS, Vault}, Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "starting vault") || !strings.Contains(err.Error(), "make vault") {
		t.Fatalf("got %v, want a vault start error naming `make vault`", err)
	}
	// moto was started before or while vault failed: nothing of it may remain.
	if n := countProcesses("moto.server"); n != 0 {
		t.Errorf("%d moto processes left running", n)
	}
}

// countProcesses counts processes whose command line contains s and that are children of this test.
func countProcesses(s string) int {
	entries, _ := os.ReadDir("/proc")
	me := os.Getpid()
	n := 0
	for _, e := range entries {
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !strings.Contains(string(cmd), s) {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Field 4 of /proc/PID/stat is the parent pid; field 2 may hold spaces, so split after ')'.
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+2:])
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == strconv.Itoa(me) {
			n++
		}
	}
	return n
}
