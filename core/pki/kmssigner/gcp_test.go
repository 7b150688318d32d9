package kmssigner

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"strings"
	"testing"

	kms "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/keyferry/keyferry/core/pki"
	"github.com/keyferry/keyferry/localtest/gcpkms"
)

const gcpLoc = "projects/kf-test/locations/global"

// startGCPKMS starts the Cloud KMS emulator with a key ring and returns a client and the ring's name.
func startGCPKMS(t *testing.T) (*gcpkms.Server, *kms.KeyManagementClient, string) {
	t.Helper()
	s, err := gcpkms.Start(gcpkms.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	c, err := kms.NewKeyManagementClient(context.Background(), s.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ring, err := c.CreateKeyRing(tctx(t), &kmspb.CreateKeyRingRequest{Parent: gcpLoc, KeyRingId: "keyferry", KeyRing: &kmspb.KeyRing{}})
	if err != nil {
		t.Fatal(err)
	}
	return s, c, ring.GetName()
}

// gcpKey creates an asymmetric signing key and returns the name of its version 1.
func gcpKey(t *testing.T, c *kms.KeyManagementClient, ring, id string, alg kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm) string {
	t.Helper()
	k, err := c.CreateCryptoKey(tctx(t), &kmspb.CreateCryptoKeyRequest{Parent: ring, CryptoKeyId: id, CryptoKey: &kmspb.CryptoKey{
		Purpose: kmspb.CryptoKey_ASYMMETRIC_SIGN, VersionTemplate: &kmspb.CryptoKeyVersionTemplate{Algorithm: alg},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return k.GetName() + "/cryptoKeyVersions/1"
}

// TestGCPIssuesThroughCloudKMS holds the intermediate CA key in the Cloud KMS emulator: one
// GetPublicKey, a CSR and leaves signed by AsymmetricSign (with the digest's CRC32C), and the chain
// verified to a local root by crypto/x509. RSA-PSS keys sign RSA-PSS certificates.
func TestGCPIssuesThroughCloudKMS(t *testing.T) {
	ctx := tctx(t)
	srv, client, ring := startGCPKMS(t)
	cases := []struct {
		id  string
		alg kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm
	}{
		{"ec-p256", kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256},
		{"ec-p384", kmspb.CryptoKeyVersion_EC_SIGN_P384_SHA384},
		{"rsa-2048", kmspb.CryptoKeyVersion_RSA_SIGN_PKCS1_2048_SHA256},
		{"rsa-pss-2048", kmspb.CryptoKeyVersion_RSA_SIGN_PSS_2048_SHA256},
	}
	for _, c := range cases {
		t.Run(c.id, func(t *testing.T) {
			name := gcpKey(t, client, ring, c.id, c.alg)
			gets, signs := srv.Fault().Count("kms:GetPublicKey"), srv.Fault().Count("kms:AsymmetricSign")
			signer, err := NewGCP(ctx, client, name)
			if err != nil {
				t.Fatal(err)
			}
			if got := signer.(*GCPSigner).Algorithm(); got != c.alg {
				t.Fatalf("algorithm %s", got)
			}
			wantSigns := int64(2)
			if strings.Contains(c.id, "pss") {
				issuePSSThroughSigner(t, signer)
				// core/pki signs RSA certificates with PKCS #1 v1.5, which a PSS key refuses clearly.
				_, err := pki.NewCSR(signer, "pss")
				if err == nil || !strings.Contains(err.Error(), "signs RSA-PSS only") {
					t.Fatalf("PKCS #1 v1.5 with a PSS key: %v", err)
				}
			} else {
				csr, err := pki.NewCSR(signer, "cloud kms intermediate "+c.id)
				issueThroughSigner(t, signer, csr, err)
				wantSigns = 3 // CSR, leaf, and the leaf refused by the name constraints
			}
			if n := srv.Fault().Count("kms:GetPublicKey") - gets; n != 1 {
				t.Errorf("GetPublicKey called %d times, want once", n)
			}
			if n := srv.Fault().Count("kms:AsymmetricSign") - signs; n != wantSigns {
				t.Errorf("AsymmetricSign called %d times, want %d", n, wantSigns)
			}
		})
	}
}

// TestGCPRefusals: opts the key version cannot honour never reach Cloud KMS; Cloud KMS's own refusals
// name the key version and what it answered.
func TestGCPRefusals(t *testing.T) {
	ctx := tctx(t)
	srv, client, ring := startGCPKMS(t)
	ec := gcpKey(t, client, ring, "ec", kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256)
	pkcs1 := gcpKey(t, client, ring, "pkcs1", kmspb.CryptoKeyVersion_RSA_SIGN_PKCS1_2048_SHA256)
	pss := gcpKey(t, client, ring, "pss", kmspb.CryptoKeyVersion_RSA_SIGN_PSS_2048_SHA256)

	newCases := []struct {
		name string
		want []string
	}{
		{ring + "/cryptoKeys/missing/cryptoKeyVersions/1", []string{"Cloud KMS key version " + ring + "/cryptoKeys/missing/cryptoKeyVersions/1", "GetPublicKey", "Cloud KMS answered NotFound"}},
		{ring + "/cryptoKeys/ec/cryptoKeyVersions/2", []string{"cryptoKeyVersions/2", "NotFound"}},
		{ring + "/cryptoKeys/ec", []string{"is not a Cloud KMS key version"}},
		{"ec", []string{"is not a Cloud KMS key version"}},
		{ring + "/cryptoKeys/ec/cryptoKeyVersions/0", []string{"is not a Cloud KMS key version"}},
	}
	for _, c := range newCases {
		_, err := NewGCP(ctx, client, c.name)
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("NewGCP(%q): %v\nwant it to say %q", c.name, err, w)
			}
		}
	}
	if _, err := NewGCP(ctx, client, ring+"/cryptoKeys/missing/cryptoKeyVersions/1"); status.Code(err) != codes.NotFound {
		t.Errorf("the gRPC status is not kept: %v", status.Code(err))
	}
	if _, err := NewGCP(ctx, nil, ec); err == nil {
		t.Error("nil client accepted")
	}

	signers := map[string]crypto.Signer{}
	for _, n := range []string{ec, pkcs1, pss} {
		s, err := NewGCP(ctx, client, n)
		if err != nil {
			t.Fatal(err)
		}
		signers[n] = s
	}
	d256, d384 := sha256.Sum256([]byte("x")), sha512.Sum384([]byte("x"))
	signs := srv.Fault().Count("kms:AsymmetricSign")
	cases := []struct {
		key    string
		digest []byte
		opts   crypto.SignerOpts
		want   string
	}{
		{ec, d384[:], crypto.SHA384, "(EC_SIGN_P256_SHA256) signs SHA-256 digests only, not SHA-384"},
		{ec, d256[:16], crypto.SHA256, "digest is 16 bytes"},
		{ec, d256[:], nil, "nil SignerOpts"},
		{pkcs1, d384[:], crypto.SHA384, "signs SHA-256 digests only, not SHA-384"},
		{pkcs1, d256[:], &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: rsa.PSSSaltLengthEqualsHash}, "signs RSA PKCS #1 v1.5, not RSA-PSS"},
		{pss, d256[:], crypto.SHA256, "signs RSA-PSS only"},
		{pss, d256[:], &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: 20}, "salt as long as the hash (32 bytes), not 20 bytes"},
	}
	for i, c := range cases {
		if _, err := signers[c.key].Sign(rand.Reader, c.digest, c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("case %d: %v, want %q", i, err, c.want)
		}
	}
	if n := srv.Fault().Count("kms:AsymmetricSign") - signs; n != 0 {
		t.Errorf("%d refused requests reached Cloud KMS", n)
	}
}

// corrupting wraps the emulator's client and damages its answers (or the request's checksum) as a
// faulty network would.
type corrupting struct {
	gcpAPI
	pub  func(*kmspb.PublicKey)
	sign func(*kmspb.AsymmetricSignResponse)
	req  func(*kmspb.AsymmetricSignRequest)
}

func (c corrupting) GetPublicKey(ctx context.Context, req *kmspb.GetPublicKeyRequest, opts ...gax.CallOption) (*kmspb.PublicKey, error) {
	pk, err := c.gcpAPI.GetPublicKey(ctx, req, opts...)
	if err == nil && c.pub != nil {
		c.pub(pk)
	}
	return pk, err
}

func (c corrupting) AsymmetricSign(ctx context.Context, req *kmspb.AsymmetricSignRequest, opts ...gax.CallOption) (*kmspb.AsymmetricSignResponse, error) {
	if c.req != nil {
		req = proto.Clone(req).(*kmspb.AsymmetricSignRequest)
		c.req(req)
	}
	resp, err := c.gcpAPI.AsymmetricSign(ctx, req, opts...)
	if err == nil && c.sign != nil {
		c.sign(resp)
	}
	return resp, err
}

// TestGCPChecksums: the CRC32C checks catch a damaged public key, a damaged signature, a response that
// did not verify the digest's checksum, and an answer for another key version; a request whose
// checksum does not match its digest is refused by Cloud KMS.
func TestGCPChecksums(t *testing.T) {
	ctx := tctx(t)
	_, client, ring := startGCPKMS(t)
	name := gcpKey(t, client, ring, "ec", kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256)
	d := sha256.Sum256([]byte("x"))

	pubCases := []struct {
		what string
		pub  func(*kmspb.PublicKey)
		want string
	}{
		{"PEM damaged", func(pk *kmspb.PublicKey) { pk.Pem = strings.Replace(pk.Pem, "A", "B", 1) }, "public key's CRC32C does not match"},
		{"no checksum", func(pk *kmspb.PublicKey) { pk.PemCrc32C = nil }, "public key's CRC32C does not match"},
		{"other version", func(pk *kmspb.PublicKey) { pk.Name = ring + "/cryptoKeys/ec/cryptoKeyVersions/9" }, "GetPublicKey answered for"},
		{"unsupported algorithm", func(pk *kmspb.PublicKey) { pk.Algorithm = kmspb.CryptoKeyVersion_EC_SIGN_SECP256K1_SHA256 }, "EC_SIGN_SECP256K1_SHA256, which cannot sign"},
		{"mismatched algorithm", func(pk *kmspb.PublicKey) { pk.Algorithm = kmspb.CryptoKeyVersion_RSA_SIGN_PKCS1_2048_SHA256 }, "does not match its algorithm"},
	}
	for _, c := range pubCases {
		if _, err := newGCP(ctx, corrupting{gcpAPI: client, pub: c.pub}, name); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.what, err, c.want)
		}
	}

	signCases := []struct {
		what string
		c    corrupting
		want string
	}{
		{"signature damaged", corrupting{sign: func(r *kmspb.AsymmetricSignResponse) { r.Signature[len(r.Signature)-1] ^= 1 }}, "signature's CRC32C does not match"},
		{"no signature checksum", corrupting{sign: func(r *kmspb.AsymmetricSignResponse) { r.SignatureCrc32C = nil }}, "signature's CRC32C does not match"},
		{"digest checksum not verified", corrupting{sign: func(r *kmspb.AsymmetricSignResponse) { r.VerifiedDigestCrc32C = false }}, "did not verify the digest's CRC32C"},
		{"other version", corrupting{sign: func(r *kmspb.AsymmetricSignResponse) { r.Name = ring + "/cryptoKeys/x/cryptoKeyVersions/1" }}, "AsymmetricSign answered for"},
		{"request damaged", corrupting{req: func(r *kmspb.AsymmetricSignRequest) { r.DigestCrc32C = wrapperspb.Int64(r.DigestCrc32C.GetValue() + 1) }},
			"Cloud KMS answered InvalidArgument: The checksum in field digest_crc32c did not match"},
	}
	for _, c := range signCases {
		c.c.gcpAPI = client
		s, err := newGCP(ctx, c.c, name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Sign(rand.Reader, d[:], crypto.SHA256); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.what, err, c.want)
		}
	}
	// Undamaged, the same path signs.
	s, err := newGCP(ctx, corrupting{gcpAPI: client}, name)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil || !verify(s.Public(), crypto.SHA256, crypto.SHA256, d[:], sig) {
		t.Fatalf("undamaged: %v", err)
	}
}
