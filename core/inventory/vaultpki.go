package inventory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strings"

	"github.com/hashicorp/vault/api"
)

// VaultPKISource scans the certificates a Vault PKI mount has issued (and its CA certificates): LIST
// MOUNT/certs, then read MOUNT/cert/SERIAL for each. Revoked certificates are skipped unless
// IncludeRevoked is set. Vault PKI has no tags, so no entry is Managed.
type VaultPKISource struct {
	Client *api.Client
	// Mount is the PKI mount path, e.g. "pki".
	Mount string
	// Location is the entry's location; "" takes the host of the client's address.
	Location       string
	IncludeRevoked bool
}

func (s VaultPKISource) mount() string { return strings.Trim(s.Mount, "/") }

func (s VaultPKISource) location() string {
	if s.Location != "" {
		return s.Location
	}
	if s.Client != nil {
		if u, err := url.Parse(s.Client.Address()); err == nil && u.Host != "" {
			return u.Host
		}
	}
	return ""
}

// Name is "vault-pki LOCATION/MOUNT".
func (s VaultPKISource) Name() string { return "vault-pki " + s.location() + "/" + s.mount() }

// Scan lists the mount's certificates and reads each. Every CA certificate of the mount is a candidate
// intermediate for the others.
func (s VaultPKISource) Scan(ctx context.Context) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		if s.Client == nil {
			yield(Entry{}, errors.New("no Vault client"))
			return
		}
		mount := s.mount()
		if mount == "" {
			yield(Entry{}, errors.New("no PKI mount configured"))
			return
		}
		keys, err := s.list(ctx, mount)
		if err != nil {
			yield(Entry{}, err)
			return
		}
		type item struct {
			serial string
			entry  Entry
		}
		var items []item
		var cas found
		for _, k := range keys {
			serial, ok := k.(string)
			if !ok || serial == "" {
				continue
			}
			path := mount + "/cert/" + serial
			sec, err := s.Client.Logical().ReadWithContext(ctx, path)
			if err != nil {
				if !yield(Entry{}, fmt.Errorf("read %s: %w", path, err)) {
					return
				}
				continue
			}
			if sec == nil || sec.Data == nil {
				continue // gone since the listing
			}
			if !s.IncludeRevoked && revoked(sec.Data["revocation_time"]) {
				continue
			}
			pemText, _ := sec.Data["certificate"].(string)
			var f found
			f.scanPEM([]byte(pemText))
			if len(f.certs) == 0 {
				if !yield(Entry{}, fmt.Errorf("read %s: no certificate that parses", path)) {
					return
				}
				continue
			}
			c := f.certs[0]
			if c.IsCA {
				cas.add(c.Raw)
			}
			e := FromCertificate(c, nil)
			e.Cloud, e.Location, e.Store, e.Name = "vault", s.location(), mount, serial
			items = append(items, item{serial, e})
		}
		for _, it := range items {
			e := it.entry
			for _, ca := range cas.certs {
				if !ca.Equal(e.cert) {
					e.chain = append(e.chain, ca)
				}
			}
			if !yield(e, nil) {
				return
			}
		}
	}
}

// revoked reads revocation_time (seconds since the epoch, 0 when not revoked).
func revoked(v any) bool {
	switch t := v.(type) {
	case json.Number:
		n, err := t.Int64()
		return err == nil && n > 0
	case float64:
		return t > 0
	case int64:
		return t > 0
	case int:
		return t > 0
	}
	return false
}

// list lists MOUNT/certs. Vault answers 404 both for an empty list (no error message) and for a path no
// mount serves (with one): the first is no certificates, the second an error.
func (s VaultPKISource) list(ctx context.Context, mount string) ([]any, error) {
	resp, err := s.Client.Logical().ReadRawWithDataWithContext(ctx, mount+"/certs", map[string][]string{"list": {"true"}})
	if resp != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusNotFound && len(re.Errors) == 0 {
			return nil, nil
		}
		return nil, fmt.Errorf("LIST %s/certs: %w", mount, err)
	}
	sec, err := api.ParseSecret(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("LIST %s/certs: %w", mount, err)
	}
	if sec == nil || sec.Data == nil {
		return nil, nil
	}
	keys, _ := sec.Data["keys"].([]any)
	return keys, nil
}
