package kmssigner

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"sync"
	"testing"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go/middleware"

	"github.com/keyferry/keyferry/core/pki"
	"github.com/keyferry/keyferry/localtest/moto"
)

// recorder captures every KMS call a client makes (once per call, before retries).
type recorder struct {
	mu    sync.Mutex
	calls map[string]int
	signs []*kms.SignInput
}

func (r *recorder) count(op string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[op]
}

func (r *recorder) lastSign() *kms.SignInput {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.signs) == 0 {
		return nil
	}
	return r.signs[len(r.signs)-1]
}

// newClient returns a KMS client for a local endpoint (moto or the fake) with static test credentials,
// recording its calls.
func newClient(endpoint string) (*kms.Client, *recorder) {
	rec := &recorder{calls: map[string]int{}}
	c := kms.NewFromConfig(moto.Config(endpoint), func(o *kms.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Initialize.Add(middleware.InitializeMiddlewareFunc("keyferryRecord",
				func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
					rec.mu.Lock()
					op := awsmiddleware.GetOperationName(ctx)
					rec.calls[op]++
					if si, ok := in.Parameters.(*kms.SignInput); ok {
						cp := *si
						rec.signs = append(rec.signs, &cp)
					}
					rec.mu.Unlock()
					return next.HandleInitialize(ctx, in)
				}), middleware.Before)
		})
	})
	return c, rec
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// issuePSSThroughSigner runs the CA path with RSA-PSS signatures (which core/pki does not choose on its
// own): a CSR signed by signer with SHA256WithRSAPSS, an intermediate signed by a local root, a leaf
// signed by signer with SHA256WithRSAPSS, and the chain verified to the root by crypto/x509.
func issuePSSThroughSigner(t *testing.T, signer crypto.Signer) {
	t.Helper()
	ctx := context.Background()
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "pss intermediate"}, SignatureAlgorithm: x509.SHA256WithRSAPSS}, signer)
	if err != nil {
		t.Fatalf("PSS CSR: %v", err)
	}
	rootPEM, rootKeyPEM, err := pki.InitRoot(ctx, pki.RootOptions{CommonName: "pss test root"})
	if err != nil {
		t.Fatal(err)
	}
	root, _ := pki.ParseCertificatePEM(rootPEM)
	rootKey, _ := pki.ParsePrivateKeyPEM(rootKeyPEM)
	interPEM, err := pki.SignIntermediate(ctx, root, rootKey, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}),
		pki.IntermediateOptions{PermittedDNSDomains: []string{"svc.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	inter, _ := pki.ParseCertificatePEM(interPEM)
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "api.svc.example.com"}, DNSNames: []string{"api.svc.example.com"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		SignatureAlgorithm: x509.SHA256WithRSAPSS,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, inter, leafKey.Public(), signer)
	if err != nil {
		t.Fatalf("PSS leaf: %v", err)
	}
	leaf, _ := x509.ParseCertificate(der)
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	inters.AddCert(inter)
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "api.svc.example.com", Roots: roots, Intermediates: inters}); err != nil {
		t.Fatalf("the RSA-PSS leaf does not verify: %v", err)
	}
	if leaf.SignatureAlgorithm != x509.SHA256WithRSAPSS {
		t.Fatalf("leaf signed with %s", leaf.SignatureAlgorithm)
	}
}
