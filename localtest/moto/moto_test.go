package moto

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

func TestStartUseResetStop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	if !strings.HasPrefix(s.URL, "http://127.0.0.1:") {
		t.Fatalf("URL %q does not bind 127.0.0.1", s.URL)
	}
	pid := s.PID()
	if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid {
		t.Fatalf("moto (pid %d) is not the leader of its own process group: pgid %d, %v", pid, pgid, err)
	}

	cfg := Config(s.URL)
	id, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("sts:GetCallerIdentity: %v", err)
	}
	if aws.ToString(id.Account) != "123456789012" {
		t.Errorf("account %q, want moto's default 123456789012", aws.ToString(id.Account))
	}

	sm := secretsmanager.NewFromConfig(cfg)
	if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("moto-test"), SecretString: aws.String("x")}); err != nil {
		t.Fatalf("CreateSecret: %v", err)
	}
	if _, err := sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("moto-test")}); err != nil {
		t.Fatalf("DescribeSecret: %v", err)
	}
	if err := s.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("moto-test")})
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Fatalf("DescribeSecret after Reset: got %v, want ResourceNotFoundException", err)
	}

	if logs := s.Logs(); !strings.Contains(logs, "POST / HTTP") || !strings.Contains(logs, "/moto-api/reset") {
		t.Errorf("Logs do not show the requests made:\n%s", tail(logs, 2048))
	}

	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("Stop returned before the process was reaped")
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("moto (pid %d) still exists after Stop: kill(pid, 0) = %v", pid, err)
	}
	if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("moto's process group %d still has members after Stop: kill(-pgid, 0) = %v", pid, err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestConfigIgnoresEnvironment(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAREALLOOKINGKEY00")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "real-looking-secret")
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_ENDPOINT_URL", "https://example.invalid")
	cfg := Config("http://127.0.0.1:1")
	creds, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if creds.AccessKeyID != AccessKeyID || creds.SecretAccessKey != SecretAccessKey {
		t.Errorf("credentials %q/%q, want the fixed fake ones", creds.AccessKeyID, creds.SecretAccessKey)
	}
	if cfg.Region != Region || aws.ToString(cfg.BaseEndpoint) != "http://127.0.0.1:1" {
		t.Errorf("region %q endpoint %q", cfg.Region, aws.ToString(cfg.BaseEndpoint))
	}
	r := cfg.Retryer()
	if r.MaxAttempts() != TestMaxAttempts {
		t.Errorf("retryer MaxAttempts %d, want %d", r.MaxAttempts(), TestMaxAttempts)
	}
	if d, err := r.RetryDelay(5, errors.New("x")); err != nil || d > TestMaxBackoff {
		t.Errorf("retry delay %s (%v), want at most %s", d, err, TestMaxBackoff)
	}
}

func TestMissingPythonNamesMakeTarget(t *testing.T) {
	_, err := Start(context.Background(), Options{Python: filepath.Join(t.TempDir(), "no-such-python")})
	if err == nil || !strings.Contains(err.Error(), MakeTarget) {
		t.Fatalf("Start with a missing interpreter: got %v, want an error naming %q", err, MakeTarget)
	}
}

func TestPythonWithoutMotoNamesMakeTarget(t *testing.T) {
	// An interpreter that exists but cannot import moto: python3 without site-packages (-S).
	py := filepath.Join(t.TempDir(), "python-without-moto")
	if err := os.WriteFile(py, []byte("#!/bin/sh\nexec python3 -S \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{Python: py, ReadyTimeout: 30 * time.Second})
	if err == nil {
		_ = s.Stop()
		t.Fatal("Start succeeded with an interpreter that cannot import moto")
	}
	if !strings.Contains(err.Error(), MakeTarget) || !strings.Contains(err.Error(), "not installed") {
		t.Fatalf("got %v, want an error saying moto is not installed and naming %q", err, MakeTarget)
	}
}
