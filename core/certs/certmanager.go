package certs

import (
	"context"
	"crypto/x509"
	"fmt"
	"maps"
	"time"

	certificatemanager "cloud.google.com/go/certificatemanager/apiv1"
	"cloud.google.com/go/certificatemanager/apiv1/certificatemanagerpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/keyferry/keyferry/core/pki"
)

// CertManagerTarget keeps certificates in Google Cloud Certificate Manager as self-managed certificates
// (projects/P/locations/L/certificates/ID), for load balancers through certificate maps.
//
// The first Put creates the certificate (CreateCertificate with self_managed {pem_certificate: the leaf
// then the chain, pem_private_key}) with the labels and keyferry-cert=<spec name>; renewals replace chain
// and key in place (UpdateCertificate with the update mask self_managed and labels), so the resource
// name, and every certificate map entry pointing at it, stays the same. Each is one call, chain and key
// together, and Put waits for its long-running operation.
//
// Put first reads the certificate (GetCertificate: the chain and labels, never the key) to choose
// between create and update and to refuse overwriting a certificate that is not keyferry's. Current is
// that same GetCertificate.
type CertManagerTarget struct {
	// CertID maps a spec name to the certificate id (1-63 lowercase letters, digits and hyphens, starting
	// with a letter); nil: the spec name itself.
	CertID func(name string) string
	// Adopt lets Put replace an existing certificate that does not carry keyferry-cert=<spec name>.
	Adopt bool

	name   string
	client *certificatemanager.Client
	parent string
}

var _ Target = (*CertManagerTarget)(nil)

var (
	cmParentRule = lazyRegexp(`^projects/[^/]+/locations/[^/]+$`)
	cmIDRule     = lazyRegexp(`^[a-z][a-z0-9-]{0,62}$`)
	gcpLabelKey  = lazyRegexp(`^[\p{Ll}\p{Lo}][\p{Ll}\p{Lo}\p{N}_-]{0,62}$`)
	gcpLabelVal  = lazyRegexp(`^[\p{Ll}\p{Lo}\p{N}_-]{0,63}$`)
)

// NewCertManagerTarget returns a target named name writing certificates under parent
// ("projects/P/locations/L", e.g. location global) through client.
func NewCertManagerTarget(name string, client *certificatemanager.Client, parent string) (*CertManagerTarget, error) {
	if !cmParentRule().MatchString(parent) {
		return nil, fmt.Errorf("certs: Certificate Manager target %s: parent %q is not projects/PROJECT/locations/LOCATION", name, parent)
	}
	return &CertManagerTarget{name: name, client: client, parent: parent}, nil
}

// Name is the target's configured name.
func (t *CertManagerTarget) Name() string { return t.name }

func (t *CertManagerTarget) resource(name string) (string, error) {
	id := name
	if t.CertID != nil {
		id = t.CertID(name)
	}
	if !cmIDRule().MatchString(id) {
		return "", fmt.Errorf("%q is not a Certificate Manager certificate id (1-63 lowercase letters, digits and hyphens, starting with a letter): map it with CertID", id)
	}
	return t.parent + "/certificates/" + id, nil
}

func (t *CertManagerTarget) err(kind error, op, name, detail string, cause error) error {
	return &Error{Kind: kind, Target: t.name, Op: op, Name: name, Detail: detail, Err: cause}
}

// cmKind classifies a Certificate Manager error.
func cmKind(err error) error {
	switch status.Code(err) {
	case codes.NotFound:
		return ErrNotFound
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return ErrRefused
	}
	return ErrFailed
}

// checkLabels applies the GCP label rules: at most 64; keys start with a lowercase letter; keys and
// values at most 63 lowercase letters, digits, '_' and '-'.
func checkLabels(labels map[string]string) error {
	if len(labels) > 64 {
		return fmt.Errorf("%d labels, GCP allows at most 64", len(labels))
	}
	for k, v := range labels {
		if !gcpLabelKey().MatchString(k) {
			return fmt.Errorf("label key %q: GCP label keys start with a lowercase letter and have at most 63 lowercase letters, digits, '_' and '-'", k)
		}
		if !gcpLabelVal().MatchString(v) {
			return fmt.Errorf("label %s=%q: GCP label values have at most 63 lowercase letters, digits, '_' and '-' (for %s the spec name must fit)", k, v, TagKey)
		}
	}
	return nil
}

// Put creates the certificate, or replaces its chain and key.
func (t *CertManagerTarget) Put(ctx context.Context, name string, b *pki.Bundle, tags map[string]string) (Meta, error) {
	p, err := Check(b, time.Now())
	if err != nil {
		return Meta{}, t.err(ErrRefused, "put", name, "invalid bundle", err)
	}
	res, err := t.resource(name)
	if err != nil {
		return Meta{}, t.err(ErrRefused, "put", name, "", err)
	}
	labels, err := withMark(name, tags)
	if err == nil {
		err = checkLabels(labels)
	}
	if err != nil {
		return Meta{}, t.err(ErrRefused, "put", name, "", err)
	}
	sm := &certificatemanagerpb.Certificate_SelfManaged{SelfManaged: &certificatemanagerpb.Certificate_SelfManagedCertificate{
		PemCertificate: string(p.FullChainPEM()), PemPrivateKey: string(p.KeyPEM)}}

	cur, err := t.client.GetCertificate(ctx, &certificatemanagerpb.GetCertificateRequest{Name: res})
	var out *certificatemanagerpb.Certificate
	switch k := cmKind(err); {
	case err != nil && k == ErrNotFound:
		op, err := t.client.CreateCertificate(ctx, &certificatemanagerpb.CreateCertificateRequest{
			Parent: t.parent, CertificateId: res[len(t.parent)+len("/certificates/"):],
			Certificate: &certificatemanagerpb.Certificate{Labels: labels, Type: sm},
		})
		if err != nil {
			return Meta{}, t.err(cmKind(err), "put", name, "create "+res, err)
		}
		if out, err = op.Wait(ctx); err != nil {
			return Meta{}, t.err(cmKind(err), "put", name, "create "+res+": operation "+op.Name(), err)
		}
	case err != nil:
		return Meta{}, t.err(ErrFailed, "put", name, "read "+res, err)
	default:
		if cur.GetLabels()[TagKey] != name && !t.Adopt {
			return Meta{}, t.err(ErrRefused, "put", name, "the certificate "+res+" exists and is not keyferry's certificate "+
				quote(name)+" (no label "+TagKey+"="+name+"): refusing to replace it; remove it, label it, or set Adopt", nil)
		}
		if cur.GetSelfManaged() == nil && cur.GetManaged() != nil {
			return Meta{}, t.err(ErrRefused, "put", name, res+" is a Google-managed certificate: it cannot take an uploaded key", nil)
		}
		merged := maps.Clone(cur.GetLabels())
		if merged == nil {
			merged = map[string]string{}
		}
		maps.Copy(merged, labels)
		if err := checkLabels(merged); err != nil {
			return Meta{}, t.err(ErrRefused, "put", name, "", err)
		}
		op, err := t.client.UpdateCertificate(ctx, &certificatemanagerpb.UpdateCertificateRequest{
			Certificate: &certificatemanagerpb.Certificate{Name: res, Labels: merged, Type: sm},
			UpdateMask:  &fieldmaskpb.FieldMask{Paths: []string{"self_managed", "labels"}},
		})
		if err != nil {
			return Meta{}, t.err(cmKind(err), "put", name, "update "+res, err)
		}
		if out, err = op.Wait(ctx); err != nil {
			return Meta{}, t.err(cmKind(err), "put", name, "update "+res+": operation "+op.Name(), err)
		}
	}
	m := Meta{ID: res, Managed: true, NotAfter: p.Leaf.NotAfter}
	if out != nil {
		if out.GetName() != "" {
			m.ID = out.GetName()
		}
		if ut := out.GetUpdateTime(); ut != nil {
			m.Version = ut.AsTime().UTC().Format(time.RFC3339Nano)
		}
		if got, err := pki.ParseCertificatePEM([]byte(out.GetPemCertificate())); err == nil && !got.Equal(p.Leaf) {
			return m, t.err(ErrFailed, "put", name, "Certificate Manager answered with another certificate than the one sent", nil)
		}
	}
	return m, nil
}

// Current reads the certificate (GetCertificate: chain and labels, never the key).
func (t *CertManagerTarget) Current(ctx context.Context, name string) (*x509.Certificate, Meta, error) {
	res, err := t.resource(name)
	if err != nil {
		return nil, Meta{}, t.err(ErrFailed, "current", name, "", err)
	}
	c, err := t.client.GetCertificate(ctx, &certificatemanagerpb.GetCertificateRequest{Name: res})
	if err != nil {
		k := cmKind(err)
		if k != ErrNotFound {
			k = ErrFailed
		}
		return nil, Meta{}, t.err(k, "current", name, "get "+res, err)
	}
	meta := Meta{ID: c.GetName(), Managed: c.GetLabels()[TagKey] == name}
	if ut := c.GetUpdateTime(); ut != nil {
		meta.Version = ut.AsTime().UTC().Format(time.RFC3339Nano)
	}
	if c.GetPemCertificate() == "" {
		if !meta.Managed {
			return nil, meta, nil // e.g. a Google-managed certificate still provisioning
		}
		return nil, meta, t.err(ErrFailed, "current", name, res+" has no certificate", nil)
	}
	cert, err := pki.ParseCertificatePEM([]byte(c.GetPemCertificate()))
	if err != nil {
		return nil, meta, t.err(ErrFailed, "current", name, "the certificate of "+res, err)
	}
	meta.NotAfter = cert.NotAfter
	return cert, meta, nil
}
