package certs

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	"github.com/aws/aws-sdk-go-v2/service/acm/types"
	"github.com/aws/smithy-go"

	"github.com/keyferry/keyferry/core/pki"
)

// ACMClient is the part of the ACM API the target uses (*acm.Client implements it).
type ACMClient interface {
	ImportCertificate(ctx context.Context, in *acm.ImportCertificateInput, optFns ...func(*acm.Options)) (*acm.ImportCertificateOutput, error)
	ListCertificates(ctx context.Context, in *acm.ListCertificatesInput, optFns ...func(*acm.Options)) (*acm.ListCertificatesOutput, error)
	ListTagsForCertificate(ctx context.Context, in *acm.ListTagsForCertificateInput, optFns ...func(*acm.Options)) (*acm.ListTagsForCertificateOutput, error)
	AddTagsToCertificate(ctx context.Context, in *acm.AddTagsToCertificateInput, optFns ...func(*acm.Options)) (*acm.AddTagsToCertificateOutput, error)
	GetCertificate(ctx context.Context, in *acm.GetCertificateInput, optFns ...func(*acm.Options)) (*acm.GetCertificateOutput, error)
}

var _ ACMClient = (*acm.Client)(nil)

// ACMTarget imports certificates into AWS Certificate Manager (one region: the client's).
//
// The first Put for a spec name imports the leaf (Certificate), its key (PrivateKey) and its chain
// (CertificateChain) with the tags and keyferry-cert=<name>, in one ImportCertificate call. Renewals
// re-import onto the same CertificateArn, so load balancers and CloudFront distributions using it pick up
// the new certificate without being touched. ACM refuses tags on a re-import, so re-imports carry none;
// ACM keeps the certificate's tags across it. Put reads the tags before a re-import and checks them
// after (ListTagsForCertificate twice); tags that are missing or differ — new user tags given to this
// Put, or tags an emulator dropped (moto replaces the certificate on re-import, tags included) — are
// then set with AddTagsToCertificate.
//
// The ARN of a spec name is remembered in memory once known (Remember seeds it, e.g. from Meta.ID kept in
// keyferry's state); otherwise it is found by the tag: ListCertificates (all key types, since ACM lists
// only RSA-1024/2048 certificates by default) and one ListTagsForCertificate per imported certificate.
// That search costs a call per imported certificate in the region, once per spec name and process. Two
// certificates carrying the same mark are refused rather than guessed between.
//
// Current calls GetCertificate (the public certificate and chain, never the key) and, for an ARN not
// found by its tag, ListTagsForCertificate.
type ACMTarget struct {
	name   string
	client ACMClient

	mu   sync.Mutex
	arns map[string]string
}

var _ Target = (*ACMTarget)(nil)

// NewACMTarget returns a target named name importing through client.
func NewACMTarget(name string, client ACMClient) *ACMTarget {
	return &ACMTarget{name: name, client: client, arns: map[string]string{}}
}

// Name is the target's configured name.
func (t *ACMTarget) Name() string { return t.name }

// Remember records the ARN of the spec name's certificate (for instance Meta.ID from an earlier Put kept
// in keyferry's state), sparing the tag search. It adopts that certificate: renewals re-import onto it.
func (t *ACMTarget) Remember(name, arn string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.arns[name] = arn
}

// ARN returns the remembered ARN of the spec name ("" if none).
func (t *ACMTarget) ARN(name string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.arns[name]
}

func (t *ACMTarget) forget(name, arn string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.arns[name] == arn {
		delete(t.arns, name)
	}
}

func (t *ACMTarget) err(kind error, op, name, detail string, cause error) error {
	return &Error{Kind: kind, Target: t.name, Op: op, Name: name, Detail: detail, Err: cause}
}

// acmKind classifies an ACM error.
func acmKind(err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ResourceNotFoundException":
			return ErrNotFound
		case "ValidationException", "InvalidParameterException", "InvalidArnException", "InvalidTagException",
			"TooManyTagsException", "TagPolicyException", "InvalidArgsException":
			return ErrRefused
		}
	}
	return ErrFailed
}

// allKeyTypes makes ListCertificates return every key type.
var allKeyTypes = types.KeyAlgorithm("").Values()

// find returns the ARN of the spec name's certificate: the remembered one, else the one tagged with the
// mark ("" if none). byTag reports whether the tag search found it.
func (t *ACMTarget) find(ctx context.Context, name string) (arn string, byTag bool, err error) {
	if arn := t.ARN(name); arn != "" {
		return arn, false, nil
	}
	var found []string
	pager := acm.NewListCertificatesPaginator(t.client, &acm.ListCertificatesInput{Includes: &types.Filters{KeyTypes: allKeyTypes}})
	for pager.HasMorePages() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return "", false, fmt.Errorf("ListCertificates: %w", err)
		}
		for _, s := range page.CertificateSummaryList {
			if s.Type != "" && s.Type != types.CertificateTypeImported {
				continue // keyferry only ever imports
			}
			a := aws.ToString(s.CertificateArn)
			tags, err := t.client.ListTagsForCertificate(ctx, &acm.ListTagsForCertificateInput{CertificateArn: aws.String(a)})
			if err != nil {
				if acmKind(err) == ErrNotFound {
					continue // deleted meanwhile
				}
				return "", false, fmt.Errorf("ListTagsForCertificate %s: %w", a, err)
			}
			if tagValue(tags.Tags, TagKey) == name {
				found = append(found, a)
			}
		}
	}
	switch len(found) {
	case 0:
		return "", false, nil
	case 1:
		t.Remember(name, found[0])
		return found[0], true, nil
	}
	sort.Strings(found)
	return "", false, &Error{Kind: ErrRefused, Target: t.name, Name: name, Detail: fmt.Sprintf(
		"%d ACM certificates carry %s=%s (%s): remove the tag from all but one, or Remember the right ARN",
		len(found), TagKey, name, strings.Join(found, ", "))}
}

func tagValue(tags []types.Tag, key string) string {
	for _, tg := range tags {
		if aws.ToString(tg.Key) == key {
			return aws.ToString(tg.Value)
		}
	}
	return ""
}

// checkACMTags applies ACM's tag rules: at most 50, keys 1-128 characters not starting with "aws:",
// values at most 256.
func checkACMTags(tags map[string]string) error {
	if len(tags) > 50 {
		return fmt.Errorf("%d tags, ACM allows at most 50", len(tags))
	}
	for k, v := range tags {
		switch n := utf8.RuneCountInString(k); {
		case n == 0 || n > 128:
			return fmt.Errorf("tag key %q: ACM tag keys are 1 to 128 characters", k)
		case strings.HasPrefix(strings.ToLower(k), "aws:"):
			return fmt.Errorf("tag key %q: the aws: prefix is reserved", k)
		case utf8.RuneCountInString(v) > 256:
			return fmt.Errorf("tag %q: ACM tag values are at most 256 characters", k)
		}
	}
	return nil
}

func acmTags(tags map[string]string) []types.Tag {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]types.Tag, 0, len(keys))
	for _, k := range keys {
		out = append(out, types.Tag{Key: aws.String(k), Value: aws.String(tags[k])})
	}
	return out
}

// Put imports the bundle: a first import with the tags, or a re-import onto the spec name's ARN.
func (t *ACMTarget) Put(ctx context.Context, name string, b *pki.Bundle, tags map[string]string) (Meta, error) {
	p, err := Check(b, time.Now())
	if err != nil {
		return Meta{}, t.err(ErrRefused, "put", name, "invalid bundle", err)
	}
	tags, err = withMark(name, tags)
	if err == nil {
		err = checkACMTags(tags)
	}
	if err != nil {
		return Meta{}, t.err(ErrRefused, "put", name, "", err)
	}
	arn, _, err := t.find(ctx, name)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Op = "put"
			return Meta{}, e
		}
		return Meta{}, t.err(acmKind(err), "put", name, "find the certificate", err)
	}
	in := &acm.ImportCertificateInput{Certificate: p.LeafPEM, PrivateKey: p.KeyPEM}
	if len(p.ChainPEM) > 0 {
		in.CertificateChain = p.ChainPEM
	}
	var prev []types.Tag
	if arn != "" {
		cur, err := t.client.ListTagsForCertificate(ctx, &acm.ListTagsForCertificateInput{CertificateArn: aws.String(arn)})
		switch k := acmKind(err); {
		case err == nil:
			prev = cur.Tags
		case k != ErrNotFound:
			return Meta{}, t.err(ErrFailed, "put", name, "read the tags of "+arn, err)
		}
	}
	if arn != "" {
		in.CertificateArn = aws.String(arn)
		_, err := t.client.ImportCertificate(ctx, in)
		if acmKind(err) == ErrNotFound {
			// Deleted out of band: forget it and import afresh below.
			t.forget(name, arn)
			arn, in.CertificateArn = "", nil
		} else if err != nil {
			return Meta{}, t.err(acmKind(err), "put", name, "re-import onto "+arn, err)
		} else {
			want := map[string]string{}
			for _, tg := range prev {
				want[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
			}
			maps.Copy(want, tags)
			if err := t.ensureTags(ctx, arn, want); err != nil {
				return Meta{ID: arn, Managed: false, NotAfter: p.Leaf.NotAfter},
					t.err(acmKind(err), "put", name, "re-imported onto "+arn+", but could not check or restore its tags", err)
			}
			return Meta{ID: arn, Managed: true, NotAfter: p.Leaf.NotAfter}, nil
		}
	}
	in.Tags = acmTags(tags)
	out, err := t.client.ImportCertificate(ctx, in)
	if err != nil {
		return Meta{}, t.err(acmKind(err), "put", name, "import", err)
	}
	arn = aws.ToString(out.CertificateArn)
	t.Remember(name, arn)
	return Meta{ID: arn, Managed: true, NotAfter: p.Leaf.NotAfter}, nil
}

// ensureTags adds what is missing or different of want on arn after a re-import.
func (t *ACMTarget) ensureTags(ctx context.Context, arn string, want map[string]string) error {
	cur, err := t.client.ListTagsForCertificate(ctx, &acm.ListTagsForCertificateInput{CertificateArn: aws.String(arn)})
	if err != nil {
		return err
	}
	have := map[string]string{}
	for _, tg := range cur.Tags {
		have[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	missing := map[string]string{}
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			missing[k] = v
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = t.client.AddTagsToCertificate(ctx, &acm.AddTagsToCertificateInput{CertificateArn: aws.String(arn), Tags: acmTags(missing)})
	return err
}

// Current reads the spec name's certificate from ACM (GetCertificate: certificate and chain only).
func (t *ACMTarget) Current(ctx context.Context, name string) (*x509.Certificate, Meta, error) {
	arn, byTag, err := t.find(ctx, name)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Op = "current"
			return nil, Meta{}, e
		}
		return nil, Meta{}, t.err(acmKind(err), "current", name, "find the certificate", err)
	}
	if arn == "" {
		return nil, Meta{}, t.err(ErrNotFound, "current", name, "no ACM certificate tagged "+TagKey+"="+name, nil)
	}
	out, err := t.client.GetCertificate(ctx, &acm.GetCertificateInput{CertificateArn: aws.String(arn)})
	if err != nil {
		if k := acmKind(err); k == ErrNotFound {
			t.forget(name, arn)
			return nil, Meta{}, t.err(ErrNotFound, "current", name, arn+" no longer exists", err)
		}
		return nil, Meta{}, t.err(ErrFailed, "current", name, "GetCertificate "+arn, err)
	}
	cert, err := pki.ParseCertificatePEM([]byte(aws.ToString(out.Certificate)))
	if err != nil {
		return nil, Meta{}, t.err(ErrFailed, "current", name, "the certificate ACM returned for "+arn, err)
	}
	meta := Meta{ID: arn, Managed: true, NotAfter: cert.NotAfter}
	if !byTag {
		tags, err := t.client.ListTagsForCertificate(ctx, &acm.ListTagsForCertificateInput{CertificateArn: aws.String(arn)})
		if err != nil {
			return nil, Meta{}, t.err(acmKind(err), "current", name, "ListTagsForCertificate "+arn, err)
		}
		meta.Managed = tagValue(tags.Tags, TagKey) == name
	}
	return cert, meta, nil
}
