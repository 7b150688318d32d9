package certmgr

import (
	"context"
	"fmt"
	"strings"

	certificatemanager "cloud.google.com/go/certificatemanager/apiv1"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	vault "github.com/hashicorp/vault/api"

	"github.com/keyferry/keyferry/core/certs"
	"github.com/keyferry/keyferry/core/config"
)

// targetsOf builds (once) the targets of a spec. A target whose client cannot be made carries the error,
// so the others still work.
func (m *Manager) targetsOf(ctx context.Context, s *config.CertSpec) *targetSet {
	m.mu.Lock()
	if ts, ok := m.targets[s.Name]; ok {
		m.mu.Unlock()
		return ts
	}
	m.mu.Unlock()
	ts := &targetSet{}
	complete := true
	for i := range s.Targets {
		t := &s.Targets[i]
		bt := builtTarget{id: t.ID()}
		bt.t, bt.err = m.buildTarget(ctx, t)
		if bt.err != nil {
			bt.err = &certs.Error{Kind: certs.ErrFailed, Target: bt.id, Op: "connect", Name: s.Name, Err: bt.err}
			complete = false
		}
		ts.list = append(ts.list, bt)
	}
	if complete {
		m.mu.Lock()
		if prev, ok := m.targets[s.Name]; ok {
			ts = prev // built concurrently: keep one set (ACM remembers ARNs per target)
		} else {
			m.targets[s.Name] = ts
		}
		m.mu.Unlock()
	}
	return ts
}

func (m *Manager) buildTarget(ctx context.Context, t *config.CertTarget) (certs.Target, error) {
	switch t.Kind() {
	case config.TargetStore:
		st := m.stores[t.Store]
		if st == nil {
			return nil, fmt.Errorf("the store %s is not open", t.Store)
		}
		st2 := certs.NewSecretTarget(st)
		if name := t.Name; name != "" {
			st2.SecretName = func(string) string { return name }
		}
		return st2, nil
	case config.TargetACM:
		c, err := m.acmClient(ctx, t.ACM)
		if err != nil {
			return nil, err
		}
		return certs.NewACMTarget(t.ID(), c), nil
	case config.TargetKeyVault:
		c, err := m.keyVaultClient(ctx, t.KeyVault)
		if err != nil {
			return nil, err
		}
		kt := certs.NewKeyVaultTarget(t.ID(), c)
		if t.KeyVault.Format == config.KeyVaultFormatPEM {
			kt.Format = certs.KeyVaultPEM
		}
		if name := t.Name; name != "" {
			kt.CertName = func(string) string { return name }
		}
		return kt, nil
	case config.TargetCertificateManager:
		c, err := m.certManagerClient(ctx, t.CertificateManager)
		if err != nil {
			return nil, err
		}
		ct, err := certs.NewCertManagerTarget(t.ID(), c, t.CertificateManager.Parent())
		if err != nil {
			return nil, err
		}
		if name := t.Name; name != "" {
			ct.CertID = func(string) string { return name }
		}
		return ct, nil
	}
	return nil, fmt.Errorf("unknown target kind %q", t.Kind())
}

func acmKey(t *config.ACMTarget) string { return t.Region + "\x00" + t.Endpoint }

func (m *Manager) acmClient(ctx context.Context, t *config.ACMTarget) (*acm.Client, error) {
	return cached(m, m.acms, acmKey(t), func() (*acm.Client, error) {
		build := m.opts.Clients.ACM
		if build == nil {
			build = defaultACM
		}
		return build(ctx, t)
	})
}

func (m *Manager) keyVaultClient(ctx context.Context, t *config.KeyVaultTarget) (*azcertificates.Client, error) {
	return cached(m, m.kvs, strings.ToLower(t.Vault), func() (*azcertificates.Client, error) {
		build := m.opts.Clients.KeyVault
		if build == nil {
			build = defaultKeyVault
		}
		return build(ctx, t)
	})
}

func cmKey(t *config.CertManagerTarget) string { return t.Endpoint + "\x00" + t.Project }

func (m *Manager) certManagerClient(ctx context.Context, t *config.CertManagerTarget) (*certificatemanager.Client, error) {
	return cached(m, m.cms, cmKey(t), func() (*certificatemanager.Client, error) {
		build := m.opts.Clients.CertificateManager
		if build == nil {
			build = defaultCertificateManager
		}
		return build(ctx, t)
	})
}

func (m *Manager) vaultClient(ctx context.Context, storeName string) (*vault.Client, error) {
	sc := m.cfg.Store(storeName)
	if sc == nil {
		return nil, fmt.Errorf("there is no store named %s", storeName)
	}
	return cached(m, m.vaults, storeName, func() (*vault.Client, error) {
		build := m.opts.Clients.Vault
		if build == nil {
			build = defaultVault
		}
		return build(ctx, sc)
	})
}

// cached returns the client kept under key, building it on first use (a failed build is not kept).
func cached[C any](m *Manager, cache map[string]*C, key string, build func() (*C, error)) (*C, error) {
	m.mu.Lock()
	if c, ok := cache[key]; ok {
		m.mu.Unlock()
		return c, nil
	}
	m.mu.Unlock()
	c, err := build()
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if prev, ok := cache[key]; ok {
		return prev, nil // built concurrently; the extra client is dropped
	}
	cache[key] = c
	return c, nil
}
