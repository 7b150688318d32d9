package inventory

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"

	"github.com/keyferry/keyferry/core/store"
)

// StoreSource scans the secrets of a keyferry store for PEM certificates: it lists the secrets' metadata,
// then reads each value and looks for CERTIFICATE blocks in it (in the text, inside JSON string fields, in
// base64-encoded PEM, or a value that is one DER certificate). A certificate that issued another one of
// the same secret is counted as that one's chain, not as an entry. A secret tagged keyferry_cert
// (StoreManagedTag) is Managed. The value is never kept, printed or
// put into an error, and private key blocks are never decoded.
type StoreSource struct {
	Store store.Store
	// Cloud overrides the cloud derived from the store type (aws-* aws, azure-* azure, gcp-* gcp, vault-*
	// vault, file local).
	Cloud string
	// Location is the entries' location (e.g. the store's region), if known.
	Location string
	// List narrows the secrets scanned (prefix, tags).
	List store.ListOptions
}

// Name is "store NAME".
func (s StoreSource) Name() string {
	if s.Store == nil {
		return "store"
	}
	return "store " + s.Store.Name()
}

// CloudOf maps a store type to its cloud.
func CloudOf(storeType string) string {
	prefix, _, _ := strings.Cut(storeType, "-")
	switch prefix {
	case "aws", "azure", "gcp", "vault":
		return prefix
	case "file":
		return "local"
	}
	return storeType
}

// Scan lists the secrets and reads each one.
func (s StoreSource) Scan(ctx context.Context) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		if s.Store == nil {
			yield(Entry{}, errors.New("no store"))
			return
		}
		cloud := s.Cloud
		if cloud == "" {
			cloud = CloudOf(s.Store.Type())
		}
		for md, err := range s.Store.List(ctx, s.List) {
			if err != nil {
				yield(Entry{}, fmt.Errorf("list: %w", err))
				return
			}
			entries, err := s.secret(ctx, md)
			for _, e := range entries {
				e.Cloud, e.Location, e.Store = cloud, s.Location, s.Store.Name()
				if !yield(e, nil) {
					return
				}
			}
			if err != nil && !yield(Entry{}, err) {
				return
			}
		}
	}
}

func (s StoreSource) secret(ctx context.Context, md store.Metadata) ([]Entry, error) {
	sec, err := s.Store.Get(ctx, md.Name)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil // deleted since the listing
		}
		return nil, fmt.Errorf("read secret %q: %w", md.Name, err)
	}
	tags := sec.Metadata.Tags
	certs, bad := certificatesIn(sec.Value.Bytes())
	var out []Entry
	leaves := group(certs)
	for i, c := range leaves {
		e := FromCertificate(c, certs)
		e.Name = md.Name
		if len(leaves) > 1 {
			e.Name = fmt.Sprintf("%s#%d", md.Name, i+1)
		}
		e.Managed = managedSecret(md.Tags) || managedSecret(tags)
		out = append(out, e)
	}
	if bad > 0 {
		return out, fmt.Errorf("secret %q: %d CERTIFICATE block(s) do not parse", md.Name, bad)
	}
	return out, nil
}

// managedSecret reports whether a secret's tags carry keyferry's certificate mark.
func managedSecret(tags map[string]string) bool {
	_, a := tags[StoreManagedTag]
	_, b := tags[ManagedTag] // never seen through the store layer today, but harmless
	return a || b
}
