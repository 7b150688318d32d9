package certmgr

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/keyferry/keyferry/core/certs"
	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/inventory"
	"github.com/keyferry/keyferry/core/pki"
)

// UnmanagedExpiringWithin is how close to expiry a certificate keyferry does not manage gets a
// certificate.expiring alert from Inventory.
const UnmanagedExpiringWithin = 30 * 24 * time.Hour

// Inventory lists every certificate in the configured places: the secrets of the configured stores
// (`inventory.stores`, default all), the ACM regions, Key Vaults and Certificate Manager locations the
// targets write to, and the Vault PKI mounts of `inventory.vault_pki_mounts`. Entries are assessed (expiry,
// weak keys and signatures, and, with roots configured or a builtin issuer, untrusted chains) and sorted by
// expiry. A place that cannot be read is reported in the errors; the others are listed all the same.
//
// With a notifier, Inventory alerts certificate.expired for every expired certificate, and
// certificate.expiring for a keyferry certificate past the middle of its renewal window (its renewal is
// overdue) and for any other certificate within UnmanagedExpiringWithin of its expiry.
func (m *Manager) Inventory(ctx context.Context) ([]inventory.Entry, []error) {
	srcs, errs := m.sources(ctx)
	opts := inventory.Options{Now: m.opts.Now()}
	roots, inters, err := m.trust()
	if err != nil {
		errs = append(errs, err)
	}
	opts.Roots, opts.Intermediates = roots, inters
	entries, err := inventory.Collect(ctx, opts, srcs...)
	if err != nil {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = append(errs, j.Unwrap()...)
		} else {
			errs = append(errs, err)
		}
	}
	m.inventoryAlerts(ctx, entries)
	return entries, errs
}

// Sources returns the inventory's sources (see Inventory), and the places whose client could not be made.
func (m *Manager) sources(ctx context.Context) ([]inventory.Source, []error) {
	var srcs []inventory.Source
	var errs []error
	inv := m.cc.Inventory

	names := inv.Stores
	if names == nil {
		for _, sc := range m.cfg.Stores {
			names = append(names, sc.Name)
		}
	}
	for _, n := range names {
		st := m.stores[n]
		if st == nil {
			errs = append(errs, fmt.Errorf("inventory: the store %s is not open", n))
			continue
		}
		srcs = append(srcs, inventory.StoreSource{Store: st, Location: storeLocation(m.cfg.Store(n))})
	}

	seen := map[string]bool{}
	for _, s := range m.cc.Specs {
		for i := range s.Targets {
			t := &s.Targets[i]
			switch t.Kind() {
			case config.TargetACM:
				k := "acm\x00" + acmKey(t.ACM)
				if seen[k] {
					continue
				}
				seen[k] = true
				c, err := m.acmClient(ctx, t.ACM)
				if err != nil {
					errs = append(errs, fmt.Errorf("inventory: acm %s: %s", t.ACM.Region, redact(err)))
					continue
				}
				srcs = append(srcs, inventory.ACMSource{Client: c, Region: t.ACM.Region})
			case config.TargetKeyVault:
				k := "kv\x00" + strings.ToLower(t.KeyVault.Vault)
				if seen[k] {
					continue
				}
				seen[k] = true
				c, err := m.keyVaultClient(ctx, t.KeyVault)
				if err != nil {
					errs = append(errs, fmt.Errorf("inventory: key vault %s: %s", t.KeyVault.Vault, redact(err)))
					continue
				}
				srcs = append(srcs, inventory.KeyVaultSource{Client: c, Vault: hostOf(t.KeyVault.Vault)})
			case config.TargetCertificateManager:
				cm := t.CertificateManager
				k := "cm\x00" + cmKey(cm) + "\x00" + cm.Location
				if seen[k] {
					continue
				}
				seen[k] = true
				c, err := m.certManagerClient(ctx, cm)
				if err != nil {
					errs = append(errs, fmt.Errorf("inventory: certificate manager %s: %s", cm.Parent(), redact(err)))
					continue
				}
				srcs = append(srcs, inventory.CertificateManagerSource{Client: c, Parent: cm.Parent()})
			}
		}
	}
	for _, mount := range inv.VaultPKIMounts {
		c, err := m.vaultClient(ctx, inv.VaultStore)
		if err != nil {
			errs = append(errs, fmt.Errorf("inventory: vault pki %s: %s", mount, redact(err)))
			continue
		}
		srcs = append(srcs, inventory.VaultPKISource{Client: c, Mount: mount})
	}
	return srcs, errs
}

func hostOf(u string) string {
	if p, err := url.Parse(u); err == nil && p.Host != "" {
		return strings.ToLower(p.Host)
	}
	return u
}

// storeLocation is where a store is, for the inventory's location column.
func storeLocation(sc *config.StoreConfig) string {
	switch {
	case sc == nil:
		return ""
	case sc.AWSSecretsManager != nil:
		return sc.AWSSecretsManager.Region
	case sc.AWSSSM != nil:
		return sc.AWSSSM.Region
	case sc.AzureKeyVault != nil:
		return hostOf(sc.AzureKeyVault.Vault)
	case sc.GCPSecretManager != nil:
		return "projects/" + sc.GCPSecretManager.Project
	case sc.VaultKV != nil:
		return hostOf(sc.VaultKV.Address)
	}
	return ""
}

// trust returns the configured roots (or the builtin issuer's root) and the intermediates known to the
// builtin issuer. Both are nil when nothing is known: the chain is then not checked.
func (m *Manager) trust() (roots, inters *x509.CertPool, err error) {
	var found []*x509.Certificate
	var errs []error
	for _, f := range m.cc.Inventory.Roots {
		cs, err := readCertificates(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("inventory: roots: %w", err))
			continue
		}
		found = append(found, cs...)
	}
	if is := m.cc.Issuer; is != nil && is.Builtin != nil {
		inter, chain, err := issuerCertificates(is.Builtin)
		if err != nil {
			errs = append(errs, fmt.Errorf("inventory: builtin issuer: %w", err))
		} else {
			all := append([]*x509.Certificate{inter}, chain...)
			for _, c := range all {
				selfSigned := string(c.RawIssuer) == string(c.RawSubject) && c.CheckSignatureFrom(c) == nil
				switch {
				case !selfSigned:
					if inters == nil {
						inters = x509.NewCertPool()
					}
					inters.AddCert(c)
				case len(m.cc.Inventory.Roots) == 0:
					found = append(found, c)
				}
			}
		}
	}
	if len(found) > 0 {
		roots = x509.NewCertPool()
		for _, c := range found {
			roots.AddCert(c)
		}
	}
	return roots, inters, errors.Join(errs...)
}

// inventoryAlerts sends certificate.expired and certificate.expiring for the entries that warrant it.
func (m *Manager) inventoryAlerts(ctx context.Context, entries []inventory.Entry) {
	if m.opts.Notifier == nil {
		return
	}
	now := m.opts.Now()
	specs := m.specIndex()
	for _, e := range entries {
		where := strings.TrimSpace(strings.Join(nonEmpty(e.Cloud, e.Location, e.Store), " "))
		spec := ""
		if e.Managed {
			spec = specs[entryKey(e)]
			if spec == "" {
				spec = m.acmSpec(e)
			}
		}
		if !now.Before(e.NotAfter) {
			m.alert(ctx, KindExpired, spec, where, e.Name, fmt.Sprintf("%s expired at %s", certs.Redact(e.Subject), e.NotAfter.UTC().Format(time.RFC3339)))
			continue
		}
		if e.Managed {
			var renewBefore time.Duration
			if s := m.cc.Spec(spec); s != nil {
				renewBefore = s.RenewBefore
			}
			overdue := overdueAt(e, renewBefore)
			if !now.Before(overdue) {
				m.alert(ctx, KindExpiring, spec, where, e.Name, fmt.Sprintf("keyferry's certificate %s expires at %s and its renewal is overdue (due since %s)",
					certs.Redact(e.Subject), e.NotAfter.UTC().Format(time.RFC3339), renewAt(e, renewBefore).UTC().Format(time.RFC3339)))
			}
			continue
		}
		if e.NotAfter.Sub(now) <= UnmanagedExpiringWithin {
			m.alert(ctx, KindExpiring, "", where, e.Name, fmt.Sprintf("%s expires at %s (%d days left); keyferry does not manage it",
				certs.Redact(e.Subject), e.NotAfter.UTC().Format(time.RFC3339), e.DaysLeft))
		}
	}
}

func renewAt(e inventory.Entry, renewBefore time.Duration) time.Time {
	c := e.Certificate()
	if c == nil {
		c = &x509.Certificate{NotBefore: e.NotBefore, NotAfter: e.NotAfter}
	}
	return pki.RenewAt(c, renewBefore)
}

// overdueAt is the middle of the renewal window: a keyferry certificate still there is not being renewed.
func overdueAt(e inventory.Entry, renewBefore time.Duration) time.Time {
	at := renewAt(e, renewBefore)
	return at.Add(e.NotAfter.Sub(at) / 2)
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// specIndex maps where each spec's targets keep their certificate to the spec name.
func (m *Manager) specIndex() map[string]string {
	idx := map[string]string{}
	for _, s := range m.cc.Specs {
		for i := range s.Targets {
			t := &s.Targets[i]
			name := t.Name
			if name == "" {
				name = s.Name
			}
			switch t.Kind() {
			case config.TargetStore:
				idx["store\x00"+t.Store+"\x00"+name] = s.Name
			case config.TargetKeyVault:
				idx["azure\x00"+hostOf(t.KeyVault.Vault)+"\x00"+strings.ToLower(name)] = s.Name
			case config.TargetCertificateManager:
				idx["gcp\x00"+t.CertificateManager.Parent()+"\x00"+name] = s.Name
			}
		}
	}
	return idx
}

func entryKey(e inventory.Entry) string {
	switch {
	case e.Store != "": // a secret store (Vault PKI entries carry their mount here, but are never managed)
		name, _, _ := strings.Cut(e.Name, "#")
		return "store\x00" + e.Store + "\x00" + name
	case e.Cloud == "azure":
		return "azure\x00" + strings.ToLower(e.Location) + "\x00" + strings.ToLower(e.Name)
	case e.Cloud == "gcp":
		return "gcp\x00" + e.Location + "\x00" + e.Name
	}
	return ""
}

// acmSpec finds the spec of an ACM entry by the ARNs the ACM targets know.
func (m *Manager) acmSpec(e inventory.Entry) string {
	if e.Cloud != "aws" || !strings.HasPrefix(e.Name, "arn:") {
		return ""
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for spec, ts := range m.targets {
		for _, bt := range ts.list {
			if at, ok := bt.t.(*certs.ACMTarget); ok && at.ARN(spec) == e.Name {
				return spec
			}
		}
	}
	return ""
}
