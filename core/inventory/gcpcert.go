package inventory

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"

	certificatemanager "cloud.google.com/go/certificatemanager/apiv1"
	"cloud.google.com/go/certificatemanager/apiv1/certificatemanagerpb"
	"google.golang.org/api/iterator"
)

// CertificateManagerSource scans the certificates of Google Cloud Certificate Manager under Parent
// (projects/P/locations/L; L may be "-" for every location). Certificates without a PEM yet (a managed
// certificate still provisioning) are skipped.
type CertificateManagerSource struct {
	Client *certificatemanager.Client
	Parent string
}

// Name is "gcp-certificatemanager PARENT".
func (s CertificateManagerSource) Name() string { return "gcp-certificatemanager " + s.Parent }

// Scan lists the certificates (ListCertificates) and reads each one's pem_certificate: the leaf first,
// then its chain.
func (s CertificateManagerSource) Scan(ctx context.Context) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		if s.Client == nil {
			yield(Entry{}, errors.New("no Certificate Manager client"))
			return
		}
		it := s.Client.ListCertificates(ctx, &certificatemanagerpb.ListCertificatesRequest{Parent: s.Parent})
		for {
			c, err := it.Next()
			if errors.Is(err, iterator.Done) {
				return
			}
			if err != nil {
				yield(Entry{}, fmt.Errorf("ListCertificates: %w", err))
				return
			}
			if c.GetPemCertificate() == "" {
				continue
			}
			var f found
			f.scanPEM([]byte(c.GetPemCertificate()))
			if len(f.certs) == 0 {
				if !yield(Entry{}, fmt.Errorf("certificate %s: pem_certificate holds no certificate that parses", c.GetName())) {
					return
				}
				continue
			}
			e := FromCertificate(f.certs[0], f.certs[1:])
			e.Cloud = "gcp"
			e.Location, e.Name = splitGCPName(c.GetName())
			_, e.Managed = c.GetLabels()[ManagedTag]
			for _, u := range c.GetUsedBy() {
				e.InUse = append(e.InUse, u.GetName())
			}
			if !yield(e, nil) {
				return
			}
		}
	}
}

// splitGCPName splits projects/P/locations/L/certificates/ID into projects/P/locations/L and ID.
func splitGCPName(name string) (location, id string) {
	if i := strings.LastIndex(name, "/certificates/"); i >= 0 {
		return name[:i], name[i+len("/certificates/"):]
	}
	return "", name
}
