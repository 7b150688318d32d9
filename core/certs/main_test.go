package certs

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/keyferry/keyferry/localtest/moto"
	"github.com/keyferry/keyferry/localtest/vault"
)

// The external servers (moto, the Vault dev server) are started once, on first use, and stopped by
// TestMain. A missing server binary fails the tests that need it (the error names the make target);
// they never skip.
var (
	vaultOnce sync.Once
	vaultSrv  *vault.Server
	vaultErr  error

	motoOnce sync.Once
	motoSrv  *moto.Server
	motoErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if vaultSrv != nil {
		if err := vaultSrv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	if motoSrv != nil {
		if err := motoSrv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	os.Exit(code)
}

func devVault(t *testing.T) *vault.Server {
	t.Helper()
	vaultOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		vaultSrv, vaultErr = vault.Start(ctx, vault.Options{})
	})
	if vaultErr != nil {
		t.Fatal(vaultErr)
	}
	return vaultSrv
}

func devMoto(t *testing.T) *moto.Server {
	t.Helper()
	motoOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		motoSrv, motoErr = moto.Start(ctx, moto.Options{})
	})
	if motoErr != nil {
		t.Fatal(motoErr)
	}
	return motoSrv
}
