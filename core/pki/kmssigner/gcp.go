package kmssigner

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"regexp"
	"time"

	kms "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// gcpAPI is the part of *kms.KeyManagementClient the signer uses.
type gcpAPI interface {
	GetPublicKey(ctx context.Context, req *kmspb.GetPublicKeyRequest, opts ...gax.CallOption) (*kmspb.PublicKey, error)
	AsymmetricSign(ctx context.Context, req *kmspb.AsymmetricSignRequest, opts ...gax.CallOption) (*kmspb.AsymmetricSignResponse, error)
}

// gcpAlgorithm is what a Cloud KMS signing algorithm is: its key and the digests it signs.
type gcpAlgorithm struct {
	curve   elliptic.Curve // EC algorithms
	rsaBits int            // RSA algorithms
	hash    crypto.Hash
	pss     bool
}

// gcpAlgorithms are the Cloud KMS algorithms that sign digests with keys crypto/x509 can use.
var gcpAlgorithms = map[kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm]gcpAlgorithm{
	kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256:        {curve: elliptic.P256(), hash: crypto.SHA256},
	kmspb.CryptoKeyVersion_EC_SIGN_P384_SHA384:        {curve: elliptic.P384(), hash: crypto.SHA384},
	kmspb.CryptoKeyVersion_RSA_SIGN_PKCS1_2048_SHA256: {rsaBits: 2048, hash: crypto.SHA256},
	kmspb.CryptoKeyVersion_RSA_SIGN_PKCS1_3072_SHA256: {rsaBits: 3072, hash: crypto.SHA256},
	kmspb.CryptoKeyVersion_RSA_SIGN_PKCS1_4096_SHA256: {rsaBits: 4096, hash: crypto.SHA256},
	kmspb.CryptoKeyVersion_RSA_SIGN_PKCS1_4096_SHA512: {rsaBits: 4096, hash: crypto.SHA512},
	kmspb.CryptoKeyVersion_RSA_SIGN_PSS_2048_SHA256:   {rsaBits: 2048, hash: crypto.SHA256, pss: true},
	kmspb.CryptoKeyVersion_RSA_SIGN_PSS_3072_SHA256:   {rsaBits: 3072, hash: crypto.SHA256, pss: true},
	kmspb.CryptoKeyVersion_RSA_SIGN_PSS_4096_SHA256:   {rsaBits: 4096, hash: crypto.SHA256, pss: true},
	kmspb.CryptoKeyVersion_RSA_SIGN_PSS_4096_SHA512:   {rsaBits: 4096, hash: crypto.SHA512, pss: true},
}

// gcpKeyVersionName matches a Cloud KMS key version's resource name.
var gcpKeyVersionName = regexp.MustCompile(`^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+/cryptoKeyVersions/[1-9][0-9]*$`)

// GCPSigner is a crypto.Signer backed by a Cloud KMS asymmetric signing key version (EC_SIGN_P256_SHA256,
// EC_SIGN_P384_SHA384, RSA_SIGN_PKCS1_* or RSA_SIGN_PSS_*).
type GCPSigner struct {
	client  gcpAPI
	name    string
	alg     kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm
	spec    gcpAlgorithm
	pub     crypto.PublicKey
	timeout time.Duration
}

var _ crypto.Signer = (*GCPSigner)(nil)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc32c(b []byte) int64 { return int64(crc32.Checksum(b, castagnoli)) }

// NewGCP fetches the public key of a Cloud KMS key version
// (projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N) once, checking its CRC32C, and
// returns a signer for it. A key version never changes, so Public always matches what Sign signs with.
func NewGCP(ctx context.Context, client *kms.KeyManagementClient, keyVersionName string) (crypto.Signer, error) {
	if client == nil {
		return nil, errors.New("kmssigner: nil Cloud KMS client")
	}
	return newGCP(ctx, client, keyVersionName)
}

func newGCP(ctx context.Context, client gcpAPI, name string) (*GCPSigner, error) {
	if !gcpKeyVersionName.MatchString(name) {
		return nil, fmt.Errorf("kmssigner: %q is not a Cloud KMS key version: write projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N", name)
	}
	pk, err := client.GetPublicKey(ctx, &kmspb.GetPublicKeyRequest{Name: name})
	if err != nil {
		return nil, gcpError("GetPublicKey", name, err)
	}
	if pk.GetName() != "" && pk.GetName() != name {
		return nil, fmt.Errorf("kmssigner: Cloud KMS key version %s: GetPublicKey answered for %s", name, pk.GetName())
	}
	if c := pk.GetPemCrc32C(); c == nil || c.GetValue() != crc32c([]byte(pk.GetPem())) {
		return nil, fmt.Errorf("kmssigner: Cloud KMS key version %s: the public key's CRC32C does not match (corrupted in transit?)", name)
	}
	spec, ok := gcpAlgorithms[pk.GetAlgorithm()]
	if !ok {
		return nil, fmt.Errorf("kmssigner: Cloud KMS key version %s has algorithm %s, which cannot sign X.509 certificates here "+
			"(use EC_SIGN_P256_SHA256, EC_SIGN_P384_SHA384, RSA_SIGN_PKCS1_* or RSA_SIGN_PSS_*)", name, pk.GetAlgorithm())
	}
	block, _ := pem.Decode([]byte(pk.GetPem()))
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("kmssigner: Cloud KMS key version %s: the public key is not a PEM PUBLIC KEY", name)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("kmssigner: Cloud KMS key version %s (%s): parse public key: %w", name, pk.GetAlgorithm(), err)
	}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		ok = spec.curve != nil && k.Curve == spec.curve
	case *rsa.PublicKey:
		ok = spec.rsaBits != 0 && k.N.BitLen() == spec.rsaBits
	default:
		ok = false
	}
	if !ok {
		return nil, fmt.Errorf("kmssigner: Cloud KMS key version %s: the public key (%T) does not match its algorithm %s", name, pub, pk.GetAlgorithm())
	}
	return &GCPSigner{client: client, name: name, alg: pk.GetAlgorithm(), spec: spec, pub: pub, timeout: SignTimeout}, nil
}

// gcpError names the operation and the key version and says what Cloud KMS answered (the gRPC code and
// message), keeping err for errors.As and status.FromError.
func gcpError(op, name string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("kmssigner: Cloud KMS key version %s: %s: %w", name, op, err)
	}
	return &serviceError{msg: fmt.Sprintf("kmssigner: Cloud KMS key version %s: %s: Cloud KMS answered %s: %s", name, op, st.Code(), st.Message()), err: err}
}

// Public returns the key version's public key, as fetched by NewGCP.
func (s *GCPSigner) Public() crypto.PublicKey { return s.pub }

// Algorithm is the key version's Cloud KMS algorithm.
func (s *GCPSigner) Algorithm() kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm { return s.alg }

// PSSOnly reports whether the key version signs RSA-PSS only (RSA_SIGN_PSS_*): a caller must then sign
// with *rsa.PSSOptions (for certificates, an RSA-PSS signature algorithm).
func (s *GCPSigner) PSSOnly() bool { return s.spec.pss }

// Sign signs digest with Cloud KMS, within SignTimeout. rand is unused: Cloud KMS supplies its own
// randomness.
func (s *GCPSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	return s.SignContext(ctx, digest, opts)
}

// SignContext is Sign with a caller's context. The digest goes with its CRC32C; the answer must say
// Cloud KMS checked it (verified_digest_crc32c), and the signature must match its signature_crc32c.
func (s *GCPSigner) SignContext(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if err := s.checkOpts(opts); err != nil {
		return nil, err
	}
	if err := checkDigest(digest, s.spec.hash); err != nil {
		return nil, err
	}
	d := &kmspb.Digest{}
	switch s.spec.hash {
	case crypto.SHA256:
		d.Digest = &kmspb.Digest_Sha256{Sha256: digest}
	case crypto.SHA384:
		d.Digest = &kmspb.Digest_Sha384{Sha384: digest}
	case crypto.SHA512:
		d.Digest = &kmspb.Digest_Sha512{Sha512: digest}
	}
	resp, err := s.client.AsymmetricSign(ctx, &kmspb.AsymmetricSignRequest{
		Name: s.name, Digest: d, DigestCrc32C: wrapperspb.Int64(crc32c(digest)),
	})
	if err != nil {
		return nil, gcpError("AsymmetricSign", s.name, err)
	}
	switch {
	case resp.GetName() != "" && resp.GetName() != s.name:
		return nil, fmt.Errorf("kmssigner: Cloud KMS key version %s: AsymmetricSign answered for %s", s.name, resp.GetName())
	case !resp.GetVerifiedDigestCrc32C():
		return nil, fmt.Errorf("kmssigner: Cloud KMS key version %s: AsymmetricSign did not verify the digest's CRC32C (the request may have been corrupted in transit)", s.name)
	case len(resp.GetSignature()) == 0:
		return nil, fmt.Errorf("kmssigner: Cloud KMS key version %s: AsymmetricSign returned no signature", s.name)
	case resp.GetSignatureCrc32C() == nil || resp.GetSignatureCrc32C().GetValue() != crc32c(resp.GetSignature()):
		return nil, fmt.Errorf("kmssigner: Cloud KMS key version %s: the signature's CRC32C does not match (corrupted in transit?)", s.name)
	}
	return resp.GetSignature(), nil // ECDSA signatures are ASN.1 DER already
}

// checkOpts refuses opts the key version cannot honour: a hash other than its algorithm's, PSS options
// for a PKCS #1 v1.5 key or plain options for a PSS key, and a PSS salt other than the hash's length.
func (s *GCPSigner) checkOpts(opts crypto.SignerOpts) error {
	h, err := hashOf(opts, "Cloud KMS")
	if err != nil {
		return err
	}
	if h != s.spec.hash {
		return fmt.Errorf("kmssigner: Cloud KMS key version %s (%s) signs %s digests only, not %s", s.name, s.alg, hashName(s.spec.hash), hashName(h))
	}
	if s.spec.rsaBits == 0 {
		return nil
	}
	pss, err := pssOptions(opts, h, "Cloud KMS")
	switch {
	case err != nil:
		return err
	case pss && !s.spec.pss:
		return fmt.Errorf("kmssigner: Cloud KMS key version %s (%s) signs RSA PKCS #1 v1.5, not RSA-PSS", s.name, s.alg)
	case !pss && s.spec.pss:
		return fmt.Errorf("kmssigner: Cloud KMS key version %s (%s) signs RSA-PSS only: sign with *rsa.PSSOptions (for a certificate, signature algorithm SHA256-RSAPSS)", s.name, s.alg)
	}
	return nil
}
