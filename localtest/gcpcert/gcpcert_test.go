package gcpcert

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	certificatemanager "cloud.google.com/go/certificatemanager/apiv1"
	"cloud.google.com/go/certificatemanager/apiv1/certificatemanagerpb"
	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/keyferry/keyferry/localtest/fault"
)

const loc = "projects/kf-emu/locations/global"

// fakeClock advances one second on every reading, so create and update times differ.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

func start(t *testing.T, opts Options) (*Server, *certificatemanager.Client) {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	c, err := certificatemanager.NewClient(context.Background(), s.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return s, c
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func wantCode(t *testing.T, what string, err error, c codes.Code) {
	t.Helper()
	if got := status.Code(err); got != c {
		t.Fatalf("%s: got %v (%v), want %v", what, got, err, c)
	}
}

// pki issues test certificates.
type pki struct {
	caKey  *ecdsa.PrivateKey
	ca     *x509.Certificate
	serial int64
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kf test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	return &pki{caKey: k, ca: ca, serial: 1}
}

func certPEM(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

// leaf issues a certificate for key with the DNS names; the notAfter is truncated to seconds.
func (p *pki) leaf(t *testing.T, key crypto.Signer, notAfter time.Time, dns ...string) *x509.Certificate {
	t.Helper()
	p.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial), Subject: pkix.Name{CommonName: dns[0]}, DNSNames: dns,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter.Truncate(time.Second),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, key.Public(), p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func ecKey(t *testing.T, curve elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pkcs8PEM(t *testing.T, k crypto.Signer) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

func selfManaged(chain, key string) *certificatemanagerpb.Certificate_SelfManaged {
	return &certificatemanagerpb.Certificate_SelfManaged{SelfManaged: &certificatemanagerpb.Certificate_SelfManagedCertificate{
		PemCertificate: chain, PemPrivateKey: key}}
}

func createReq(id, chain, key string) *certificatemanagerpb.CreateCertificateRequest {
	return &certificatemanagerpb.CreateCertificateRequest{Parent: loc, CertificateId: id,
		Certificate: &certificatemanagerpb.Certificate{Type: selfManaged(chain, key)}}
}

func mustCreate(t *testing.T, c *certificatemanager.Client, req *certificatemanagerpb.CreateCertificateRequest) *certificatemanagerpb.Certificate {
	t.Helper()
	op, err := c.CreateCertificate(tctx(t), req)
	if err != nil {
		t.Fatalf("CreateCertificate(%s): %v", req.GetCertificateId(), err)
	}
	cert, err := op.Wait(tctx(t))
	if err != nil {
		t.Fatalf("CreateCertificate(%s).Wait: %v", req.GetCertificateId(), err)
	}
	return cert
}

// noKey fails if anything that looks like a private key is in m.
func noKey(t *testing.T, what string, m proto.Message) {
	t.Helper()
	if txt := prototext.Format(m); strings.Contains(txt, "PRIVATE KEY") || strings.Contains(txt, "pem_private_key") {
		t.Fatalf("%s leaks the private key:\n%s", what, txt)
	}
}

// TestCreateGetWait: the self-managed workflow with the official client, the LRO included.
func TestCreateGetWait(t *testing.T) {
	clock := &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	_, c := start(t, Options{Now: clock.Now})
	p := newPKI(t)
	key := ecKey(t, elliptic.P256())
	notAfter := time.Now().Add(90 * 24 * time.Hour)
	leaf := p.leaf(t, key, notAfter, "www.example.com", "example.com")
	chain := certPEM(leaf) + certPEM(p.ca)

	req := createReq("web-cert-1", chain, pkcs8PEM(t, key))
	req.Certificate.Labels = map[string]string{"env": "test"}
	req.Certificate.Description = "the web certificate"
	op, err := c.CreateCertificate(tctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if !op.Done() {
		t.Fatal("operation not done at once")
	}
	if !strings.HasPrefix(op.Name(), loc+"/operations/") {
		t.Fatalf("operation name %q", op.Name())
	}
	meta, err := op.Metadata()
	if err != nil || meta.GetVerb() != "create" || meta.GetTarget() != loc+"/certificates/web-cert-1" || meta.GetApiVersion() != "v1" {
		t.Fatalf("metadata %v, %v", meta, err)
	}
	got, err := op.Wait(tctx(t))
	if err != nil {
		t.Fatal(err)
	}
	noKey(t, "operation response", got)

	check := func(what string, got *certificatemanagerpb.Certificate) {
		t.Helper()
		noKey(t, what, got)
		if got.GetName() != loc+"/certificates/web-cert-1" {
			t.Fatalf("%s: name %q", what, got.GetName())
		}
		if got.GetPemCertificate() != chain {
			t.Fatalf("%s: pem_certificate\n%s\nwant\n%s", what, got.GetPemCertificate(), chain)
		}
		if strings.Join(got.GetSanDnsnames(), ",") != "www.example.com,example.com" {
			t.Fatalf("%s: san_dnsnames %v", what, got.GetSanDnsnames())
		}
		if !got.GetExpireTime().AsTime().Equal(leaf.NotAfter) {
			t.Fatalf("%s: expire_time %v, want %v", what, got.GetExpireTime().AsTime(), leaf.NotAfter)
		}
		if got.GetLabels()["env"] != "test" || got.GetDescription() != "the web certificate" {
			t.Fatalf("%s: labels %v description %q", what, got.GetLabels(), got.GetDescription())
		}
		if got.GetCreateTime() == nil || !got.GetCreateTime().AsTime().Equal(got.GetUpdateTime().AsTime()) ||
			got.GetCreateTime().AsTime().Before(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) {
			t.Fatalf("%s: create_time %v update_time %v", what, got.GetCreateTime(), got.GetUpdateTime())
		}
		if got.GetSelfManaged() == nil || got.GetSelfManaged().GetPemPrivateKey() != "" || got.GetSelfManaged().GetPemCertificate() != "" {
			t.Fatalf("%s: self_managed %v", what, got.GetSelfManaged())
		}
	}
	check("Wait", got)
	g, err := c.GetCertificate(tctx(t), &certificatemanagerpb.GetCertificateRequest{Name: got.GetName()})
	if err != nil {
		t.Fatal(err)
	}
	check("GetCertificate", g)

	// The operation can be fetched and resumed by name through the Operations service.
	raw, err := c.GetOperation(tctx(t), &longrunningpb.GetOperationRequest{Name: op.Name()})
	if err != nil || !raw.GetDone() {
		t.Fatalf("GetOperation: %v, %v", raw, err)
	}
	noKey(t, "GetOperation", raw)
	resumed := c.CreateCertificateOperation(op.Name())
	if resumed.Done() {
		t.Fatal("a handle made from a name should not know the operation is done before polling")
	}
	again, err := resumed.Wait(tctx(t))
	if err != nil {
		t.Fatalf("resumed Wait: %v", err)
	}
	check("resumed Wait", again)
	_, err = c.GetOperation(tctx(t), &longrunningpb.GetOperationRequest{Name: loc + "/operations/nope"})
	wantCode(t, "GetOperation(unknown)", err, codes.NotFound)
	it := c.ListOperations(tctx(t), &longrunningpb.ListOperationsRequest{Name: loc})
	n := 0
	for {
		o, err := it.Next()
		if err == iterator.Done {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if o.GetName() == op.Name() {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("ListOperations found the operation %d times", n)
	}
	if err := c.DeleteOperation(tctx(t), &longrunningpb.DeleteOperationRequest{Name: op.Name()}); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetOperation(tctx(t), &longrunningpb.GetOperationRequest{Name: op.Name()})
	wantCode(t, "GetOperation(deleted)", err, codes.NotFound)

	_, err = c.CreateCertificate(tctx(t), createReq("web-cert-1", chain, pkcs8PEM(t, key)))
	wantCode(t, "CreateCertificate(duplicate)", err, codes.AlreadyExists)
	_, err = c.GetCertificate(tctx(t), &certificatemanagerpb.GetCertificateRequest{Name: loc + "/certificates/nope"})
	wantCode(t, "GetCertificate(unknown)", err, codes.NotFound)
	_, err = c.GetCertificate(tctx(t), &certificatemanagerpb.GetCertificateRequest{Name: "projects/x/certificates/nope"})
	wantCode(t, "GetCertificate(malformed)", err, codes.InvalidArgument)
}

// TestValidation: ids, PEM, key match, key types, chain order, types.
func TestValidation(t *testing.T) {
	_, c := start(t, Options{})
	p := newPKI(t)
	key := ecKey(t, elliptic.P256())
	leaf := p.leaf(t, key, time.Now().Add(time.Hour), "a.example.com")
	chain, keyPEM := certPEM(leaf)+certPEM(p.ca), pkcs8PEM(t, key)

	for _, id := range []string{"", "1cert", "Cert", "cert_1", "cert.1", "-cert", strings.Repeat("a", 64)} {
		_, err := c.CreateCertificate(tctx(t), createReq(id, chain, keyPEM))
		wantCode(t, fmt.Sprintf("id %q", id), err, codes.InvalidArgument)
	}
	for _, id := range []string{"a", "cert-1", strings.Repeat("a", 63)} {
		mustCreate(t, c, createReq(id, chain, keyPEM))
	}
	bad := createReq("ok", chain, keyPEM)
	bad.Parent = "projects/kf-emu"
	_, err := c.CreateCertificate(tctx(t), bad)
	wantCode(t, "bad parent", err, codes.InvalidArgument)

	other := ecKey(t, elliptic.P256())
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	rsaLeafKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaLeaf := p.leaf(t, rsaLeafKey, time.Now().Add(time.Hour), "rsa.example.com")
	rsaPKCS1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaLeafKey)}))
	ecDER, _ := x509.MarshalECPrivateKey(key)
	ecSEC1 := "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n" +
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}))
	p224 := ecKey(t, elliptic.P224())

	for i, tc := range []struct {
		what, chain, key string
		want             codes.Code
	}{
		{"garbage certificate", "not a certificate", keyPEM, codes.InvalidArgument},
		{"corrupt certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", keyPEM, codes.InvalidArgument},
		{"key block in chain", chain + keyPEM, keyPEM, codes.InvalidArgument},
		{"empty certificate", "", keyPEM, codes.InvalidArgument},
		{"empty key", chain, "", codes.InvalidArgument},
		{"garbage key", chain, "not a key", codes.InvalidArgument},
		{"two keys", chain, keyPEM + keyPEM, codes.InvalidArgument},
		{"key of another certificate", chain, pkcs8PEM(t, other), codes.InvalidArgument},
		{"CA first", certPEM(p.ca) + certPEM(leaf), keyPEM, codes.InvalidArgument},
		{"unrelated intermediate", certPEM(leaf) + certPEM(newPKI(t).ca), keyPEM, codes.InvalidArgument},
		{"RSA 1024", certPEM(p.leaf(t, rsa1024, time.Now().Add(time.Hour), "x.example.com")), pkcs8PEM(t, rsa1024), codes.InvalidArgument},
		{"P-224", certPEM(p.leaf(t, p224, time.Now().Add(time.Hour), "x.example.com")), pkcs8PEM(t, p224), codes.InvalidArgument},
		{"encrypted key", chain, "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n", codes.InvalidArgument},
		{"RSA PKCS#1 key", certPEM(rsaLeaf) + certPEM(p.ca), rsaPKCS1, codes.OK},
		{"EC SEC1 key with parameters", chain, ecSEC1, codes.OK},
		{"leaf only", certPEM(leaf), keyPEM, codes.OK},
	} {
		id := fmt.Sprintf("v-%d", i)
		op, err := c.CreateCertificate(tctx(t), createReq(id, tc.chain, tc.key))
		wantCode(t, tc.what, err, tc.want)
		if err == nil {
			if _, err := op.Wait(tctx(t)); err != nil {
				t.Fatalf("%s: Wait: %v", tc.what, err)
			}
		} else if strings.Contains(err.Error(), "PRIVATE KEY") && tc.what != "key block in chain" {
			t.Fatalf("%s: the error quotes the key: %v", tc.what, err)
		}
	}

	// Types other than self-managed.
	_, err = c.CreateCertificate(tctx(t), &certificatemanagerpb.CreateCertificateRequest{Parent: loc, CertificateId: "managed",
		Certificate: &certificatemanagerpb.Certificate{Type: &certificatemanagerpb.Certificate_Managed{
			Managed: &certificatemanagerpb.Certificate_ManagedCertificate{Domains: []string{"example.com"}}}}})
	wantCode(t, "managed", err, codes.Unimplemented)
	_, err = c.CreateCertificate(tctx(t), &certificatemanagerpb.CreateCertificateRequest{Parent: loc, CertificateId: "untyped",
		Certificate: &certificatemanagerpb.Certificate{}})
	wantCode(t, "no type", err, codes.InvalidArgument)
	_, err = c.CreateCertificate(tctx(t), &certificatemanagerpb.CreateCertificateRequest{Parent: loc, CertificateId: "nil"})
	wantCode(t, "no certificate", err, codes.InvalidArgument)
	badLabels := createReq("labels", chain, keyPEM)
	badLabels.Certificate.Labels = map[string]string{"Env": "x"}
	_, err = c.CreateCertificate(tctx(t), badLabels)
	wantCode(t, "bad label key", err, codes.InvalidArgument)
}

// TestListPaging: sorted by name, keyset pages, filters refused.
func TestListPaging(t *testing.T) {
	_, c := start(t, Options{})
	p := newPKI(t)
	key := ecKey(t, elliptic.P256())
	chain, keyPEM := certPEM(p.leaf(t, key, time.Now().Add(time.Hour), "l.example.com")), pkcs8PEM(t, key)
	var want []string
	for _, id := range []string{"c-3", "c-1", "c-5", "c-2", "c-4"} {
		mustCreate(t, c, createReq(id, chain, keyPEM))
	}
	for i := 1; i <= 5; i++ {
		want = append(want, fmt.Sprintf("%s/certificates/c-%d", loc, i))
	}
	// Another location is not listed.
	other := createReq("elsewhere", chain, keyPEM)
	other.Parent = "projects/kf-emu/locations/europe-west1"
	mustCreate(t, c, other)

	var pages [][]string
	token := ""
	for {
		it := c.ListCertificates(tctx(t), &certificatemanagerpb.ListCertificatesRequest{Parent: loc})
		pager := iterator.NewPager(it, 2, token)
		var page []*certificatemanagerpb.Certificate
		next, err := pager.NextPage(&page)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, cert := range page {
			noKey(t, "ListCertificates", cert)
			if cert.GetPemCertificate() == "" || len(cert.GetSanDnsnames()) != 1 {
				t.Fatalf("listed certificate lacks output fields: %v", cert)
			}
			names = append(names, cert.GetName())
		}
		pages = append(pages, names)
		if next == "" {
			break
		}
		token = next
	}
	if fmt.Sprint(pages) != fmt.Sprint([][]string{want[0:2], want[2:4], want[4:5]}) {
		t.Fatalf("pages %v", pages)
	}

	var all []string
	it := c.ListCertificates(tctx(t), &certificatemanagerpb.ListCertificatesRequest{Parent: loc})
	for {
		cert, err := it.Next()
		if err == iterator.Done {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, cert.GetName())
	}
	if fmt.Sprint(all) != fmt.Sprint(want) {
		t.Fatalf("all %v", all)
	}

	_, err := c.ListCertificates(tctx(t), &certificatemanagerpb.ListCertificatesRequest{Parent: loc, Filter: "labels.env=x"}).Next()
	wantCode(t, "filter", err, codes.Unimplemented)
	_, err = c.ListCertificates(tctx(t), &certificatemanagerpb.ListCertificatesRequest{Parent: loc, PageToken: "garbage!"}).Next()
	wantCode(t, "bad token", err, codes.InvalidArgument)
	_, err = c.ListCertificates(tctx(t), &certificatemanagerpb.ListCertificatesRequest{Parent: "projects/kf-emu"}).Next()
	wantCode(t, "bad parent", err, codes.InvalidArgument)
}

// TestUpdateDelete: labels and description; self_managed replaces chain and key; delete.
func TestUpdateDelete(t *testing.T) {
	clock := &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	s, c := start(t, Options{Now: clock.Now})
	p := newPKI(t)
	key := ecKey(t, elliptic.P256())
	leaf := p.leaf(t, key, time.Now().Add(time.Hour), "old.example.com")
	orig := mustCreate(t, c, createReq("rotating", certPEM(leaf)+certPEM(p.ca), pkcs8PEM(t, key)))
	name := orig.GetName()

	op, err := c.UpdateCertificate(tctx(t), &certificatemanagerpb.UpdateCertificateRequest{
		Certificate: &certificatemanagerpb.Certificate{Name: name, Labels: map[string]string{"gen": "1"}, Description: "d1"},
		UpdateMask:  &fieldmaskpb.FieldMask{Paths: []string{"labels", "description"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	u1, err := op.Wait(tctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if u1.GetLabels()["gen"] != "1" || u1.GetDescription() != "d1" || u1.GetPemCertificate() != orig.GetPemCertificate() ||
		!u1.GetUpdateTime().AsTime().After(orig.GetUpdateTime().AsTime()) || !u1.GetCreateTime().AsTime().Equal(orig.GetCreateTime().AsTime()) {
		t.Fatalf("after metadata update: %v (was %v)", u1, orig)
	}
	if m, _ := op.Metadata(); m.GetVerb() != "update" {
		t.Fatalf("update metadata %v", m)
	}

	// Replace the certificate and key (a rotation).
	newKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	newLeaf := p.leaf(t, newKey, time.Now().Add(48*time.Hour), "new.example.com")
	op, err = c.UpdateCertificate(tctx(t), &certificatemanagerpb.UpdateCertificateRequest{
		Certificate: &certificatemanagerpb.Certificate{Name: name, Type: selfManaged(certPEM(newLeaf)+certPEM(p.ca), pkcs8PEM(t, newKey))},
		UpdateMask:  &fieldmaskpb.FieldMask{Paths: []string{"self_managed"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	u2, err := op.Wait(tctx(t))
	if err != nil {
		t.Fatal(err)
	}
	noKey(t, "update response", u2)
	if u2.GetPemCertificate() != certPEM(newLeaf)+certPEM(p.ca) || fmt.Sprint(u2.GetSanDnsnames()) != "[new.example.com]" ||
		!u2.GetExpireTime().AsTime().Equal(newLeaf.NotAfter) || u2.GetLabels()["gen"] != "1" ||
		!u2.GetUpdateTime().AsTime().After(u1.GetUpdateTime().AsTime()) {
		t.Fatalf("after rotation: %v", u2)
	}
	tc, err := s.TLSCertificate(name)
	if err != nil {
		t.Fatal(err)
	}
	if !tc.Leaf.Equal(newLeaf) || !newKey.Equal(tc.PrivateKey) || len(tc.Certificate) != 2 {
		t.Fatal("TLSCertificate does not hold the rotated chain and key")
	}

	for _, tc := range []struct {
		what string
		req  *certificatemanagerpb.UpdateCertificateRequest
		want codes.Code
	}{
		{"no mask", &certificatemanagerpb.UpdateCertificateRequest{Certificate: &certificatemanagerpb.Certificate{Name: name}}, codes.InvalidArgument},
		{"unknown path", &certificatemanagerpb.UpdateCertificateRequest{Certificate: &certificatemanagerpb.Certificate{Name: name},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"colour"}}}, codes.InvalidArgument},
		{"immutable scope", &certificatemanagerpb.UpdateCertificateRequest{Certificate: &certificatemanagerpb.Certificate{Name: name},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"scope"}}}, codes.InvalidArgument},
		{"mismatched key", &certificatemanagerpb.UpdateCertificateRequest{
			Certificate: &certificatemanagerpb.Certificate{Name: name, Type: selfManaged(certPEM(newLeaf), pkcs8PEM(t, key))},
			UpdateMask:  &fieldmaskpb.FieldMask{Paths: []string{"self_managed"}}}, codes.InvalidArgument},
		{"unknown certificate", &certificatemanagerpb.UpdateCertificateRequest{
			Certificate: &certificatemanagerpb.Certificate{Name: loc + "/certificates/nope"},
			UpdateMask:  &fieldmaskpb.FieldMask{Paths: []string{"labels"}}}, codes.NotFound},
	} {
		_, err := c.UpdateCertificate(tctx(t), tc.req)
		wantCode(t, tc.what, err, tc.want)
	}

	dop, err := c.DeleteCertificate(tctx(t), &certificatemanagerpb.DeleteCertificateRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	if err := dop.Wait(tctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteCertificateOperation(dop.Name()).Wait(tctx(t)); err != nil {
		t.Fatalf("resumed delete Wait: %v", err)
	}
	_, err = c.GetCertificate(tctx(t), &certificatemanagerpb.GetCertificateRequest{Name: name})
	wantCode(t, "Get after delete", err, codes.NotFound)
	_, err = c.DeleteCertificate(tctx(t), &certificatemanagerpb.DeleteCertificateRequest{Name: name})
	wantCode(t, "Delete again", err, codes.NotFound)
	if _, err := s.TLSCertificate(name); err == nil {
		t.Fatal("TLSCertificate of a deleted certificate")
	}
}

// TestFaultLayerAndInterceptors: the fault layer counts and throttles, interceptors see what passes.
func TestFaultLayerAndInterceptors(t *testing.T) {
	layer := fault.New(1, 3)
	var mu sync.Mutex
	var seen []string
	record := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		mu.Lock()
		seen = append(seen, info.FullMethod)
		mu.Unlock()
		return h(ctx, req)
	}
	s, c := start(t, Options{Fault: layer, Interceptors: []grpc.UnaryServerInterceptor{record}})
	if s.Fault() != layer || !strings.HasPrefix(s.Addr(), "127.0.0.1:") {
		t.Fatalf("Fault/Addr: %p %q", s.Fault(), s.Addr())
	}
	p := newPKI(t)
	key := ecKey(t, elliptic.P256())
	mustCreate(t, c, createReq("f", certPEM(p.leaf(t, key, time.Now().Add(time.Hour), "f.example.com")), pkcs8PEM(t, key)))
	if n := layer.Count("certificatemanager:CreateCertificate"); n != 1 {
		t.Fatalf("CreateCertificate counted %d times", n)
	}
	// Resuming an operation by name polls the Operations service, behind the same layer.
	ops := c.ListOperations(tctx(t), &longrunningpb.ListOperationsRequest{Name: loc})
	o, err := ops.Next()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateCertificateOperation(o.GetName()).Wait(tctx(t)); err != nil {
		t.Fatal(err)
	}
	if n := layer.Count("longrunning:GetOperation"); n != 1 {
		t.Fatalf("GetOperation counted %d times, calls %v", n, layer.Calls())
	}
	layer.SetRules(fault.Rule{API: "certificatemanager:GetCertificate", Throttle: 1})
	_, err = c.GetCertificate(tctx(t), &certificatemanagerpb.GetCertificateRequest{Name: loc + "/certificates/f"})
	wantCode(t, "throttled Get", err, codes.ResourceExhausted)
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 || !strings.HasSuffix(seen[0], "/CreateCertificate") || !strings.HasSuffix(seen[2], "/GetOperation") {
		t.Fatalf("interceptor saw %v (the throttled call must not reach it)", seen)
	}
}
