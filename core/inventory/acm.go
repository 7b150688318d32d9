package inventory

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	"github.com/aws/aws-sdk-go-v2/service/acm/types"
)

// ACMAPI is the part of the ACM client the ACM source uses (*acm.Client has it).
type ACMAPI interface {
	acm.ListCertificatesAPIClient
	DescribeCertificate(ctx context.Context, in *acm.DescribeCertificateInput, optFns ...func(*acm.Options)) (*acm.DescribeCertificateOutput, error)
	ListTagsForCertificate(ctx context.Context, in *acm.ListTagsForCertificateInput, optFns ...func(*acm.Options)) (*acm.ListTagsForCertificateOutput, error)
	GetCertificate(ctx context.Context, in *acm.GetCertificateInput, optFns ...func(*acm.Options)) (*acm.GetCertificateOutput, error)
}

// ACMSource scans the certificates of one AWS Certificate Manager region: every key type (ACM lists only
// RSA-2048 and RSA-1024 certificates unless asked), imported and Amazon-issued alike. Certificates
// without a certificate yet (pending validation, failed) are skipped.
type ACMSource struct {
	Client ACMAPI
	// Region is the entry's location; "" takes the region of an *acm.Client.
	Region string
}

func (s ACMSource) region() string {
	if s.Region != "" {
		return s.Region
	}
	if c, ok := s.Client.(*acm.Client); ok {
		return c.Options().Region
	}
	return ""
}

// Name is "acm REGION".
func (s ACMSource) Name() string { return "acm " + s.region() }

// Scan lists the certificates (ListCertificates with every key type included), then for each reads its
// details (DescribeCertificate: InUseBy), its tags (ListTagsForCertificate) and its PEM (GetCertificate).
func (s ACMSource) Scan(ctx context.Context) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		if s.Client == nil {
			yield(Entry{}, errors.New("no ACM client"))
			return
		}
		region := s.region()
		p := acm.NewListCertificatesPaginator(s.Client, &acm.ListCertificatesInput{
			Includes: &types.Filters{KeyTypes: types.KeyAlgorithm("").Values()},
		})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				yield(Entry{}, fmt.Errorf("ListCertificates: %w", err))
				return
			}
			for _, sum := range page.CertificateSummaryList {
				arn := aws.ToString(sum.CertificateArn)
				e, ok, err := s.one(ctx, arn)
				if err != nil {
					if !yield(Entry{}, err) {
						return
					}
					continue
				}
				if ok {
					e.Location = region
					if !yield(e, nil) {
						return
					}
				}
			}
		}
	}
}

func (s ACMSource) one(ctx context.Context, arn string) (Entry, bool, error) {
	d, err := s.Client.DescribeCertificate(ctx, &acm.DescribeCertificateInput{CertificateArn: aws.String(arn)})
	if err != nil {
		return Entry{}, false, fmt.Errorf("DescribeCertificate %s: %w", arn, err)
	}
	det := d.Certificate
	if det == nil || det.NotAfter == nil {
		return Entry{}, false, nil // no certificate issued (yet)
	}
	tags, err := s.Client.ListTagsForCertificate(ctx, &acm.ListTagsForCertificateInput{CertificateArn: aws.String(arn)})
	if err != nil {
		return Entry{}, false, fmt.Errorf("ListTagsForCertificate %s: %w", arn, err)
	}
	g, err := s.Client.GetCertificate(ctx, &acm.GetCertificateInput{CertificateArn: aws.String(arn)})
	if err != nil {
		return Entry{}, false, fmt.Errorf("GetCertificate %s: %w", arn, err)
	}
	var f found
	f.scanPEM([]byte(aws.ToString(g.Certificate)))
	if len(f.certs) == 0 {
		return Entry{}, false, fmt.Errorf("GetCertificate %s: no certificate in the answer", arn)
	}
	leaf := f.certs[0]
	var chain found
	chain.scanPEM([]byte(aws.ToString(g.CertificateChain)))
	e := FromCertificate(leaf, chain.certs)
	e.Cloud, e.Name = "aws", arn
	e.InUse = append([]string(nil), det.InUseBy...)
	for _, t := range tags.Tags {
		if aws.ToString(t.Key) == ManagedTag {
			e.Managed = true
		}
	}
	return e, true, nil
}
