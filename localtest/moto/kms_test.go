package moto

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
)

// TestKMSSignsDigestsAsAWS checks the KMS patch the server starts with: Sign with MessageType DIGEST
// signs the digest itself (ECDSA, RSA PKCS #1 v1.5, RSA-PSS with a salt as long as the hash), Verify with
// DIGEST accepts those signatures and refuses others, a digest of the wrong length is a
// ValidationException, and RAW messages keep moto's behaviour (hashed, then signed).
func TestKMSSignsDigestsAsAWS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	c := kms.NewFromConfig(Config(s.URL))

	msg := []byte("tbsCertificate stand-in")
	d256, d384, d512 := sha256.Sum256(msg), sha512.Sum384(msg), sha512.Sum512(msg)
	digests := map[crypto.Hash][]byte{crypto.SHA256: d256[:], crypto.SHA384: d384[:], crypto.SHA512: d512[:]}
	cases := []struct {
		spec types.KeySpec
		alg  types.SigningAlgorithmSpec
		hash crypto.Hash
	}{
		{types.KeySpecEccNistP256, types.SigningAlgorithmSpecEcdsaSha256, crypto.SHA256},
		{types.KeySpecEccNistP384, types.SigningAlgorithmSpecEcdsaSha384, crypto.SHA384},
		{types.KeySpecEccNistP521, types.SigningAlgorithmSpecEcdsaSha512, crypto.SHA512},
		{types.KeySpecRsa2048, types.SigningAlgorithmSpecRsassaPkcs1V15Sha256, crypto.SHA256},
		{types.KeySpecRsa2048, types.SigningAlgorithmSpecRsassaPkcs1V15Sha512, crypto.SHA512},
		{types.KeySpecRsa2048, types.SigningAlgorithmSpecRsassaPssSha256, crypto.SHA256},
		{types.KeySpecRsa3072, types.SigningAlgorithmSpecRsassaPssSha384, crypto.SHA384},
	}
	keys := map[types.KeySpec]*string{}
	pubs := map[types.KeySpec]crypto.PublicKey{}
	for _, tc := range cases {
		t.Run(string(tc.alg)+"/"+string(tc.spec), func(t *testing.T) {
			if keys[tc.spec] == nil {
				k, err := c.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: tc.spec, KeyUsage: types.KeyUsageTypeSignVerify})
				if err != nil {
					t.Fatal(err)
				}
				pk, err := c.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: k.KeyMetadata.KeyId})
				if err != nil {
					t.Fatal(err)
				}
				if pubs[tc.spec], err = x509.ParsePKIXPublicKey(pk.PublicKey); err != nil {
					t.Fatal(err)
				}
				keys[tc.spec] = k.KeyMetadata.KeyId
			}
			id, pub, digest := keys[tc.spec], pubs[tc.spec], digests[tc.hash]

			out, err := c.Sign(ctx, &kms.SignInput{KeyId: id, Message: digest, MessageType: types.MessageTypeDigest, SigningAlgorithm: tc.alg})
			if err != nil {
				t.Fatalf("Sign DIGEST: %v", err)
			}
			if !verifyKMS(pub, tc.alg, tc.hash, digest, out.Signature) {
				t.Fatal("the DIGEST signature does not verify over the digest (with a hash-length PSS salt)")
			}
			ok, err := c.Verify(ctx, &kms.VerifyInput{KeyId: id, Message: digest, MessageType: types.MessageTypeDigest,
				Signature: out.Signature, SigningAlgorithm: tc.alg})
			if err != nil || !ok.SignatureValid {
				t.Fatalf("Verify DIGEST of its own signature: %v %v", ok, err)
			}
			other := append([]byte{digest[0] ^ 1}, digest[1:]...)
			// moto answers an invalid signature with SignatureValid false where AWS raises
			// KMSInvalidSignatureException; either way it must not be valid.
			if v, err := c.Verify(ctx, &kms.VerifyInput{KeyId: id, Message: other, MessageType: types.MessageTypeDigest,
				Signature: out.Signature, SigningAlgorithm: tc.alg}); err == nil && v.SignatureValid {
				t.Fatal("Verify DIGEST accepted the signature for another digest")
			}

			// A digest of the wrong length is refused, as by AWS.
			_, err = c.Sign(ctx, &kms.SignInput{KeyId: id, Message: digest[:len(digest)-1], MessageType: types.MessageTypeDigest, SigningAlgorithm: tc.alg})
			var ae smithy.APIError
			if !errors.As(err, &ae) || ae.ErrorCode() != "ValidationException" || !strings.Contains(ae.ErrorMessage(), "Digest is invalid length") {
				t.Fatalf("short digest: %v, want a ValidationException", err)
			}

			// RAW keeps moto's behaviour: the message is hashed, then signed.
			raw, err := c.Sign(ctx, &kms.SignInput{KeyId: id, Message: msg, MessageType: types.MessageTypeRaw, SigningAlgorithm: tc.alg})
			if err != nil {
				t.Fatalf("Sign RAW: %v", err)
			}
			if !verifyKMS(pub, tc.alg, tc.hash, digest, raw.Signature) && !verifyAutoSalt(pub, tc.hash, digest, raw.Signature) {
				t.Fatal("the RAW signature does not verify over H(message)")
			}
			ok, err = c.Verify(ctx, &kms.VerifyInput{KeyId: id, Message: msg, Signature: raw.Signature, SigningAlgorithm: tc.alg})
			if err != nil || !ok.SignatureValid {
				t.Fatalf("Verify RAW: %v %v", ok, err)
			}
		})
	}
}

// verifyKMS verifies sig over digest as a signature of AWS KMS: ECDSA (ASN.1), RSA PKCS #1 v1.5, or RSA-PSS
// with a salt exactly as long as the hash.
func verifyKMS(pub crypto.PublicKey, alg types.SigningAlgorithmSpec, h crypto.Hash, digest, sig []byte) bool {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(k, digest, sig)
	case *rsa.PublicKey:
		if strings.HasPrefix(string(alg), "RSASSA_PSS") {
			return rsa.VerifyPSS(k, h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
		}
		return rsa.VerifyPKCS1v15(k, h, digest, sig) == nil
	}
	return false
}

// verifyAutoSalt verifies an RSA-PSS signature of any salt length (moto's RAW PSS uses the maximum).
func verifyAutoSalt(pub crypto.PublicKey, h crypto.Hash, digest, sig []byte) bool {
	k, ok := pub.(*rsa.PublicKey)
	return ok && rsa.VerifyPSS(k, h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}) == nil
}
