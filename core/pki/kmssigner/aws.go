// Package kmssigner provides crypto.Signers whose private key never leaves a cloud KMS, for keyferry's
// intermediate CA (see package pki).
package kmssigner

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// SignTimeout bounds one KMS Sign call: crypto.Signer.Sign takes no context.
const SignTimeout = 30 * time.Second

// awsAPI is the part of *kms.Client the signer uses.
type awsAPI interface {
	GetPublicKey(ctx context.Context, in *kms.GetPublicKeyInput, optFns ...func(*kms.Options)) (*kms.GetPublicKeyOutput, error)
	Sign(ctx context.Context, in *kms.SignInput, optFns ...func(*kms.Options)) (*kms.SignOutput, error)
}

// AWSSigner is a crypto.Signer backed by an asymmetric AWS KMS key (key usage SIGN_VERIFY; key spec
// ECC_NIST_P256, ECC_NIST_P384, ECC_NIST_P521, RSA_2048, RSA_3072 or RSA_4096).
type AWSSigner struct {
	client  awsAPI
	keyID   string
	spec    types.KeySpec
	pub     crypto.PublicKey
	algs    []types.SigningAlgorithmSpec
	timeout time.Duration
}

var _ crypto.Signer = (*AWSSigner)(nil)

// NewAWS fetches the public key of keyID (a key id, ARN, alias name or alias ARN) once and returns a
// signer for it. Later Sign calls use the key GetPublicKey reported (its ARN), never the alias, so
// retargeting an alias cannot make the signer sign with a key that does not match Public.
func NewAWS(ctx context.Context, client *kms.Client, keyID string) (crypto.Signer, error) {
	if client == nil {
		return nil, errors.New("kmssigner: nil KMS client")
	}
	return newAWS(ctx, client, keyID)
}

func newAWS(ctx context.Context, client awsAPI, keyID string) (*AWSSigner, error) {
	if keyID == "" {
		return nil, errors.New("kmssigner: empty KMS key id")
	}
	out, err := client.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: aws.String(keyID)})
	if err != nil {
		return nil, fmt.Errorf("kmssigner: GetPublicKey %s: %w", keyID, err)
	}
	if out.KeyUsage != types.KeyUsageTypeSignVerify {
		return nil, fmt.Errorf("kmssigner: KMS key %s has key usage %s, want SIGN_VERIFY", keyID, out.KeyUsage)
	}
	spec := out.KeySpec
	if spec == "" {
		spec = types.KeySpec(out.CustomerMasterKeySpec) // older responses
	}
	pub, err := x509.ParsePKIXPublicKey(out.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("kmssigner: KMS key %s (%s): parse public key: %w", keyID, spec, err)
	}
	if err := checkSpec(spec, pub); err != nil {
		return nil, fmt.Errorf("kmssigner: KMS key %s: %w", keyID, err)
	}
	arn := aws.ToString(out.KeyId)
	if arn == "" {
		arn = keyID
	}
	return &AWSSigner{client: client, keyID: arn, spec: spec, pub: pub, algs: out.SigningAlgorithms, timeout: SignTimeout}, nil
}

// checkSpec accepts the key specs crypto/x509 can use and checks the public key is of that spec.
func checkSpec(spec types.KeySpec, pub crypto.PublicKey) error {
	var ok bool
	switch spec {
	case types.KeySpecEccNistP256, types.KeySpecEccNistP384, types.KeySpecEccNistP521:
		k, isEC := pub.(*ecdsa.PublicKey)
		ok = isEC && k.Curve == curveOf(spec)
	case types.KeySpecRsa2048, types.KeySpecRsa3072, types.KeySpecRsa4096:
		k, isRSA := pub.(*rsa.PublicKey)
		ok = isRSA && k.N.BitLen() == rsaBits(spec)
	default:
		return fmt.Errorf("key spec %q cannot sign X.509 certificates here (use ECC_NIST_P256/P384/P521 or RSA_2048/3072/4096)", spec)
	}
	if !ok {
		return fmt.Errorf("the public key (%T) does not match the key spec %s", pub, spec)
	}
	return nil
}

func curveOf(spec types.KeySpec) elliptic.Curve {
	switch spec {
	case types.KeySpecEccNistP256:
		return elliptic.P256()
	case types.KeySpecEccNistP384:
		return elliptic.P384()
	case types.KeySpecEccNistP521:
		return elliptic.P521()
	}
	return nil
}

func rsaBits(spec types.KeySpec) int {
	switch spec {
	case types.KeySpecRsa2048:
		return 2048
	case types.KeySpecRsa3072:
		return 3072
	case types.KeySpecRsa4096:
		return 4096
	}
	return 0
}

// Public returns the key's public key, as fetched by NewAWS.
func (s *AWSSigner) Public() crypto.PublicKey { return s.pub }

// KeyID is the key that Sign uses: the KeyId GetPublicKey reported (the key ARN on AWS; emulators may
// report the bare key id), never an alias.
func (s *AWSSigner) KeyID() string { return s.keyID }

// KeySpec is the KMS key spec.
func (s *AWSSigner) KeySpec() types.KeySpec { return s.spec }

// Sign signs digest with KMS (MessageType DIGEST), within SignTimeout. rand is unused: KMS supplies its
// own randomness.
func (s *AWSSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	return s.SignContext(ctx, digest, opts)
}

// SignContext is Sign with a caller's context.
func (s *AWSSigner) SignContext(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	alg, err := s.Algorithm(opts)
	if err != nil {
		return nil, err
	}
	if h := opts.HashFunc(); len(digest) != h.Size() {
		return nil, fmt.Errorf("kmssigner: digest is %d bytes, a %s digest is %d", len(digest), h, h.Size())
	}
	out, err := s.client.Sign(ctx, &kms.SignInput{
		KeyId:            aws.String(s.keyID),
		Message:          digest,
		MessageType:      types.MessageTypeDigest,
		SigningAlgorithm: alg,
	})
	if err != nil {
		return nil, fmt.Errorf("kmssigner: KMS Sign (%s, %s): %w", s.keyID, alg, err)
	}
	if len(out.Signature) == 0 {
		return nil, fmt.Errorf("kmssigner: KMS Sign (%s, %s) returned no signature", s.keyID, alg)
	}
	return out.Signature, nil
}

// Algorithm is the KMS signing algorithm for opts: ECDSA_SHA_256/384/512 for the matching curve,
// RSASSA_PSS_SHA_* when opts is *rsa.PSSOptions (KMS uses a salt as long as the hash, so opts asking
// for another length, PSSSaltLengthAuto included, are refused), and
// RSASSA_PKCS1_V1_5_SHA_* otherwise.
func (s *AWSSigner) Algorithm(opts crypto.SignerOpts) (types.SigningAlgorithmSpec, error) {
	if opts == nil {
		return "", errors.New("kmssigner: nil SignerOpts: KMS signs digests, name the hash")
	}
	h := opts.HashFunc()
	var alg types.SigningAlgorithmSpec
	switch s.pub.(type) {
	case *ecdsa.PublicKey:
		want := map[types.KeySpec]crypto.Hash{
			types.KeySpecEccNistP256: crypto.SHA256,
			types.KeySpecEccNistP384: crypto.SHA384,
			types.KeySpecEccNistP521: crypto.SHA512,
		}[s.spec]
		if h != want {
			return "", fmt.Errorf("kmssigner: KMS key spec %s signs %s digests only, not %s", s.spec, want, hashName(h))
		}
		alg = map[crypto.Hash]types.SigningAlgorithmSpec{
			crypto.SHA256: types.SigningAlgorithmSpecEcdsaSha256,
			crypto.SHA384: types.SigningAlgorithmSpecEcdsaSha384,
			crypto.SHA512: types.SigningAlgorithmSpecEcdsaSha512,
		}[h]
	case *rsa.PublicKey:
		if _, ok := opts.(*rsa.PSSOptions); ok {
			alg = map[crypto.Hash]types.SigningAlgorithmSpec{
				crypto.SHA256: types.SigningAlgorithmSpecRsassaPssSha256,
				crypto.SHA384: types.SigningAlgorithmSpecRsassaPssSha384,
				crypto.SHA512: types.SigningAlgorithmSpecRsassaPssSha512,
			}[h]
			if alg != "" {
				if _, err := pssOptions(opts, h, "KMS"); err != nil {
					return "", err
				}
			}
		} else {
			alg = map[crypto.Hash]types.SigningAlgorithmSpec{
				crypto.SHA256: types.SigningAlgorithmSpecRsassaPkcs1V15Sha256,
				crypto.SHA384: types.SigningAlgorithmSpecRsassaPkcs1V15Sha384,
				crypto.SHA512: types.SigningAlgorithmSpecRsassaPkcs1V15Sha512,
			}[h]
		}
		if alg == "" {
			return "", fmt.Errorf("kmssigner: KMS RSA keys sign SHA-256, SHA-384 or SHA-512 digests, not %s", hashName(h))
		}
	default:
		return "", fmt.Errorf("kmssigner: unsupported public key %T", s.pub)
	}
	if len(s.algs) > 0 && !slices.Contains(s.algs, alg) {
		return "", fmt.Errorf("kmssigner: KMS key %s does not support %s (it supports %v)", s.keyID, alg, s.algs)
	}
	return alg, nil
}

func hashName(h crypto.Hash) string {
	if h == 0 {
		return "unhashed messages"
	}
	if h.Available() {
		return h.String()
	}
	return fmt.Sprintf("hash #%d", uint(h))
}
