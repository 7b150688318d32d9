package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyferry/keyferry/localtest/cloud"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	code = run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestVersionAndUsage(t *testing.T) {
	if code, out, _ := runCLI(t, "version"); code != 0 || !strings.HasPrefix(out, "keyferry ") {
		t.Fatalf("version: %d %q", code, out)
	}
	if code, _, errs := runCLI(t, "frobnicate"); code != 2 || !strings.Contains(errs, `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: %d %q", code, errs)
	}
	if code, _, errs := runCLI(t); code != 2 || !strings.Contains(errs, "validate") {
		t.Fatalf("no command: %d %q", code, errs)
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("stores:\n  local:\n    type: file\n    path: ./secrets\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCLI(t, "validate", "-f", good); code != 0 || !strings.Contains(out, "ok (1 stores, 0 replication rules") {
		t.Fatalf("valid config: %d %q %q", code, out, errs)
	}

	bad := filepath.Join(dir, "bad.yaml")
	const secret = "AKIAZZZZZZZZZZZZZZZZ"
	body := "stores:\n  aws:\n    type: aws-secretsmanager\n    regoin: eu-west-1\n    access_key_id: " + secret + "\n"
	if err := os.WriteFile(bad, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runCLI(t, "validate", "-f", bad)
	if code != 1 {
		t.Fatalf("invalid config: exit %d, want 1", code)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`bad\.yaml:4:5: .*regoin.*did you mean "region"`),
		regexp.MustCompile(`bad\.yaml:5:5: .*access_key_id`),
	} {
		if !want.MatchString(errs) {
			t.Errorf("errors do not match %s:\n%s", want, errs)
		}
	}
	if strings.Contains(errs, secret) {
		t.Fatalf("the credential's value is echoed in the errors:\n%s", errs)
	}
}

// TestStoresTest runs `keyferry stores test` against the local cloud: every store reachable, readable,
// listable and writable; then a refused credential and an unreachable store are each reported on their
// own line with a failing exit code.
func TestStoresTest(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := cloud.Start(ctx, cloud.Options{Parts: []string{cloud.AWS, cloud.Azure, cloud.GCP, cloud.Vault}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	t.Cleanup(c.SetEnv())
	path, err := c.WriteConfig()
	if err != nil {
		t.Fatal(err)
	}

	code, out, errs := runCLI(t, "stores", "test", "-f", path, "--write")
	if code != 0 {
		t.Fatalf("stores test: exit %d\n%s\n%s", code, out, errs)
	}
	for _, st := range []string{"aws", "aws-ssm", "azure", "gcp", "vault", "file"} {
		line := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(st) + `\s+\S+\s+ok\s+ok\s+ok\s+ok\s`)
		if !line.MatchString(out) {
			t.Errorf("no all-ok line for %s:\n%s", st, out)
		}
	}
	if n := strings.Count(strings.TrimSpace(out), "\n"); n != 6 {
		t.Errorf("want a header and one line per store (6), got %d lines:\n%s", n+1, out)
	}

	// A refused credential (Vault token) and an unreachable service (moto stopped).
	t.Setenv("VAULT_TOKEN", "not-a-valid-token")
	if err := c.Moto.Stop(); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runCLI(t, "stores", "test", "-f", path, "--timeout", "15s")
	if code != 1 || !strings.Contains(errs, "3 of 6 stores failed") { // aws and aws-ssm share moto
		t.Fatalf("want 3 failed stores, exit 1; got %d\n%s\n%s", code, out, errs)
	}
	if n := strings.Count(strings.TrimSpace(out), "\n"); n != 6 {
		t.Errorf("want one line per store even with multi-line errors, got %d lines:\n%s", n+1, out)
	}
	if !regexp.MustCompile(`(?m)^vault\s+vault-kv\s+\S+\s+denied`).MatchString(out) &&
		!regexp.MustCompile(`(?m)^vault\s+vault-kv\s+denied`).MatchString(out) {
		t.Errorf("vault with a refused token is not reported denied:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^aws\s+aws-secretsmanager\s+unreachable`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^aws-ssm\s+aws-ssm\s+unreachable`).MatchString(out) {
		t.Errorf("aws with moto stopped is not reported unreachable:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^gcp\s+gcp-secretmanager\s+ok\s+ok\s+ok`).MatchString(out) {
		t.Errorf("the healthy stores are not reported ok:\n%s", out)
	}
}
