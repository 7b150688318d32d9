package inventory

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
)

// KeyVaultSource scans the certificates of one Azure Key Vault (the current version of each). Only the
// public certificate (cer) is read, never the backing secret.
type KeyVaultSource struct {
	Client *azcertificates.Client
	// Vault is the entry's location; "" takes the host of the certificates' ids (NAME.vault.azure.net).
	Vault string
}

// Name is "azure-keyvault VAULT".
func (s KeyVaultSource) Name() string {
	if s.Vault == "" {
		return "azure-keyvault"
	}
	return "azure-keyvault " + s.Vault
}

// Scan lists the certificates (ListCertificateProperties) and reads each one's cer (GetCertificate).
func (s KeyVaultSource) Scan(ctx context.Context) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		if s.Client == nil {
			yield(Entry{}, errors.New("no Key Vault certificates client"))
			return
		}
		pager := s.Client.NewListCertificatePropertiesPager(nil)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				yield(Entry{}, fmt.Errorf("ListCertificateProperties: %w", err))
				return
			}
			for _, p := range page.Value {
				if p == nil || p.ID == nil {
					continue
				}
				name := p.ID.Name()
				e, err := s.one(ctx, name, string(*p.ID))
				if err != nil {
					if !yield(Entry{}, err) {
						return
					}
					continue
				}
				if !yield(e, nil) {
					return
				}
			}
		}
	}
}

func (s KeyVaultSource) one(ctx context.Context, name, id string) (Entry, error) {
	g, err := s.Client.GetCertificate(ctx, name, "", nil)
	if err != nil {
		return Entry{}, fmt.Errorf("GetCertificate %s: %w", name, err)
	}
	if len(g.CER) == 0 {
		return Entry{}, fmt.Errorf("GetCertificate %s: no cer in the answer", name)
	}
	var f found
	f.add(g.CER)
	if len(f.certs) == 0 {
		return Entry{}, fmt.Errorf("GetCertificate %s: the cer does not parse as a certificate", name)
	}
	e := FromCertificate(f.certs[0], nil)
	e.Cloud, e.Name = "azure", name
	e.Location = s.Vault
	if e.Location == "" {
		if u, err := url.Parse(id); err == nil {
			e.Location = strings.ToLower(u.Host)
		}
	}
	_, e.Managed = g.Tags[ManagedTag]
	return e, nil
}
