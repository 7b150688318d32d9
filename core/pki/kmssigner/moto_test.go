package kmssigner

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/keyferry/keyferry/core/pki"
	"github.com/keyferry/keyferry/localtest/moto"
)

// TestAWSAgainstMoto runs the signer against moto's KMS (started by localtest/moto with its DIGEST fix,
// so moto signs the digest it is given, RSA-PSS with a hash-length salt, as AWS KMS does): key discovery
// (one GetPublicKey, through an alias), the Sign request (MessageType DIGEST, the algorithm for the key
// spec and hash, the key ARN), the signatures, and the full CA path: a CSR and a leaf signed through moto
// and verified to a local root by crypto/x509 (ECDSA P-256 and P-384, RSA PKCS #1 v1.5, and RSA-PSS
// certificates).
func TestAWSAgainstMoto(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	m, err := moto.Start(ctx, moto.Options{})
	if err != nil {
		t.Fatalf("moto: %v", err)
	}
	t.Cleanup(func() { _ = m.Stop() })

	type signCase struct {
		opts    crypto.SignerOpts
		wantAlg types.SigningAlgorithmSpec
	}
	pss := func(h crypto.Hash) *rsa.PSSOptions {
		return &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: h}
	}
	cases := []struct {
		spec  types.KeySpec
		alias string
		signs []signCase
	}{
		{types.KeySpecEccNistP256, "alias/keyferry-inter-ec", []signCase{{crypto.SHA256, types.SigningAlgorithmSpecEcdsaSha256}}},
		{types.KeySpecEccNistP384, "alias/keyferry-inter-ec384", []signCase{{crypto.SHA384, types.SigningAlgorithmSpecEcdsaSha384}}},
		{types.KeySpecRsa2048, "alias/keyferry-inter-rsa", []signCase{
			{crypto.SHA256, types.SigningAlgorithmSpecRsassaPkcs1V15Sha256},
			{crypto.SHA384, types.SigningAlgorithmSpecRsassaPkcs1V15Sha384},
			{pss(crypto.SHA256), types.SigningAlgorithmSpecRsassaPssSha256},
		}},
	}
	for _, c := range cases {
		t.Run(string(c.spec), func(t *testing.T) {
			client, rec := newClient(m.URL)
			key, err := client.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: c.spec, KeyUsage: types.KeyUsageTypeSignVerify})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := client.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(c.alias), TargetKeyId: key.KeyMetadata.KeyId}); err != nil {
				t.Fatal(err)
			}
			signer, err := NewAWS(ctx, client, c.alias)
			if err != nil {
				t.Fatal(err)
			}
			// Sign pins the key GetPublicKey reported (moto reports the bare key id, AWS the ARN), not the alias.
			arn := signer.(*AWSSigner).KeyID()
			if arn != aws.ToString(key.KeyMetadata.Arn) && arn != aws.ToString(key.KeyMetadata.KeyId) {
				t.Errorf("KeyID %q, want the key's ARN or id, not the alias", arn)
			}
			// The public key is the one moto reports (asked through another client, so rec counts only the
			// signer's calls).
			other, _ := newClient(m.URL)
			pk, err := other.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: key.KeyMetadata.Arn})
			if err != nil {
				t.Fatal(err)
			}
			want, _ := x509.ParsePKIXPublicKey(pk.PublicKey)
			if !signer.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(want) {
				t.Fatal("Public differs from GetPublicKey")
			}

			for _, sc := range c.signs {
				h := sc.opts.HashFunc()
				hh := h.New()
				hh.Write([]byte("tbsCertificate stand-in for " + string(sc.wantAlg)))
				digest := hh.Sum(nil)
				sig, err := signer.Sign(rand.Reader, digest, sc.opts)
				if err != nil {
					t.Fatalf("%s: %v", sc.wantAlg, err)
				}
				in := rec.lastSign()
				if in == nil || in.MessageType != types.MessageTypeDigest || in.SigningAlgorithm != sc.wantAlg ||
					aws.ToString(in.KeyId) != arn || !bytes.Equal(in.Message, digest) {
					t.Fatalf("Sign request %+v, want DIGEST %s on %s", in, sc.wantAlg, arn)
				}
				if !verify(signer.Public(), h, sc.opts, digest, sig) {
					t.Fatalf("%s: moto's signature does not verify over the digest (with a hash-length PSS salt)", sc.wantAlg)
				}
			}

			// Refusals that never reach KMS.
			signs := rec.count("Sign")
			if _, err := signer.Sign(rand.Reader, make([]byte, 20), crypto.SHA1); err == nil {
				t.Error("SHA-1 accepted")
			}
			if _, err := signer.Sign(rand.Reader, make([]byte, 31), crypto.SHA256); err == nil {
				t.Error("short digest accepted")
			}
			if rec.count("Sign") != signs {
				t.Error("a refused request reached KMS")
			}

			// X.509 through the KMS key: a CSR, an intermediate signed by a local root, a leaf; for RSA keys
			// the same with RSA-PSS certificates.
			csr, err := pki.NewCSR(signer, "kms intermediate "+string(c.spec))
			issueThroughSigner(t, signer, csr, err)
			if _, isRSA := signer.Public().(*rsa.PublicKey); isRSA {
				issuePSSThroughSigner(t, signer)
				if in := rec.lastSign(); in.SigningAlgorithm != types.SigningAlgorithmSpecRsassaPssSha256 {
					t.Errorf("RSA-PSS certificate signed with %s", in.SigningAlgorithm)
				}
			}
			if n := rec.count("GetPublicKey"); n != 1 {
				t.Errorf("GetPublicKey called %d times, want once", n)
			}
		})
	}

	t.Run("refusals", func(t *testing.T) {
		client, _ := newClient(m.URL)
		sym, err := client.CreateKey(ctx, &kms.CreateKeyInput{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := NewAWS(ctx, client, aws.ToString(sym.KeyMetadata.KeyId)); err == nil || !strings.Contains(err.Error(), "want SIGN_VERIFY") {
			t.Errorf("symmetric key: %v", err)
		}
		k1, err := client.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: types.KeySpecEccSecgP256k1, KeyUsage: types.KeyUsageTypeSignVerify})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := NewAWS(ctx, client, aws.ToString(k1.KeyMetadata.KeyId)); err == nil {
			t.Error("secp256k1 key accepted")
		}
		if _, err := NewAWS(ctx, client, "alias/missing"); err == nil || !strings.Contains(err.Error(), "GetPublicKey alias/missing") {
			t.Errorf("missing key: %v", err)
		}
		if _, err := NewAWS(ctx, client, ""); err == nil {
			t.Error("empty key id accepted")
		}
		if _, err := NewAWS(ctx, nil, "x"); err == nil {
			t.Error("nil client accepted")
		}
	})
}

func verify(pub crypto.PublicKey, h crypto.Hash, opts crypto.SignerOpts, digest, sig []byte) bool {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(k, digest, sig)
	case *rsa.PublicKey:
		if _, ok := opts.(*rsa.PSSOptions); ok {
			return rsa.VerifyPSS(k, h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
		}
		return rsa.VerifyPKCS1v15(k, h, digest, sig) == nil
	}
	return false
}

// issueThroughSigner signs csr (made by signer) as an intermediate under a fresh local root, issues a leaf
// with signer, and verifies the leaf to the root with crypto/x509, name constraints included.
func issueThroughSigner(t *testing.T, signer crypto.Signer, csr []byte, csrErr error) {
	t.Helper()
	ctx := context.Background()
	if csrErr != nil {
		t.Fatalf("NewCSR: %v", csrErr)
	}
	rootPEM, rootKeyPEM, err := pki.InitRoot(ctx, pki.RootOptions{CommonName: "kms test root"})
	if err != nil {
		t.Fatal(err)
	}
	root, _ := pki.ParseCertificatePEM(rootPEM)
	rootKey, _ := pki.ParsePrivateKeyPEM(rootKeyPEM)
	interPEM, err := pki.SignIntermediate(ctx, root, rootKey, csr, pki.IntermediateOptions{
		PermittedDNSDomains: []string{"svc.example.com"}, PermittedURIDomains: []string{"prod.example"},
	})
	if err != nil {
		t.Fatal(err)
	}
	inter, _ := pki.ParseCertificatePEM(interPEM)
	policy := pki.Policy{
		AllowedDomains: []string{"**.example.com"}, AllowedURIs: []string{"spiffe://"},
		MaxTTL: 24 * time.Hour, AllowedKeyTypes: pki.KeyTypes, AllowIPs: true,
	}
	iss, err := pki.NewLocalIssuer(inter, []*x509.Certificate{root}, signer, policy)
	if err != nil {
		t.Fatal(err)
	}
	b, err := iss.Issue(ctx, pki.Spec{
		DNSNames: []string{"api.svc.example.com"}, IPAddresses: []net.IP{net.ParseIP("10.0.0.7")},
		URIs: []string{"spiffe://prod.example/ns/app/sa/api"}, TTL: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := pki.ParseCertificatePEM(b.CertPEM)
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	inters.AddCert(inter)
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "api.svc.example.com", Roots: roots, Intermediates: inters}); err != nil {
		t.Fatalf("leaf signed by the KMS key does not verify: %v", err)
	}
	if err := leaf.CheckSignatureFrom(inter); err != nil {
		t.Fatal(err)
	}
	// The constraints bind the KMS-held intermediate: a leaf outside them is refused.
	if _, err := iss.Issue(ctx, pki.Spec{DNSNames: []string{"api.other.example.com"}, TTL: time.Hour}); err == nil {
		t.Fatal("issued outside the intermediate's name constraints")
	}
}
