package kmssigner

import (
	"crypto"
	"crypto/rsa"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
)

// hashOf is the hash opts names, refusing nil opts and unhashed messages: a KMS signs digests.
func hashOf(opts crypto.SignerOpts, kms string) (crypto.Hash, error) {
	if opts == nil {
		return 0, fmt.Errorf("kmssigner: nil SignerOpts: %s signs digests, name the hash", kms)
	}
	h := opts.HashFunc()
	if h == 0 {
		return 0, fmt.Errorf("kmssigner: %s signs digests, not unhashed messages", kms)
	}
	return h, nil
}

// pssOptions reports whether opts asks for RSA-PSS and, if so, refuses any salt length but the hash's:
// Key Vault and Cloud KMS use a salt exactly as long as the hash (PSSSaltLengthAuto, "as large as
// possible", is refused too).
func pssOptions(opts crypto.SignerOpts, h crypto.Hash, kms string) (bool, error) {
	pss, ok := opts.(*rsa.PSSOptions)
	if !ok {
		return false, nil
	}
	if s := pss.SaltLength; s != rsa.PSSSaltLengthEqualsHash && s != h.Size() {
		what := fmt.Sprintf("%d bytes", s)
		if s == rsa.PSSSaltLengthAuto {
			what = "the longest possible salt (PSSSaltLengthAuto)"
		}
		return true, fmt.Errorf("kmssigner: %s RSA-PSS uses a salt as long as the hash (%d bytes), not %s", kms, h.Size(), what)
	}
	return true, nil
}

// checkDigest checks digest is as long as h's output.
func checkDigest(digest []byte, h crypto.Hash) error {
	if len(digest) != h.Size() {
		return fmt.Errorf("kmssigner: digest is %d bytes, a %s digest is %d", len(digest), hashName(h), h.Size())
	}
	return nil
}

// ecdsaRawToDER turns a JOSE ECDSA signature (r||s, each as long as the curve's order) into the ASN.1
// DER form crypto/x509 expects.
func ecdsaRawToDER(sig []byte, byteLen int) ([]byte, error) {
	if len(sig) != 2*byteLen {
		return nil, fmt.Errorf("an ECDSA signature of %d bytes, want r||s of %d", len(sig), 2*byteLen)
	}
	r, s := new(big.Int).SetBytes(sig[:byteLen]), new(big.Int).SetBytes(sig[byteLen:])
	if r.Sign() == 0 || s.Sign() == 0 {
		return nil, errors.New("an ECDSA signature with r or s zero")
	}
	return asn1.Marshal(struct{ R, S *big.Int }{r, s})
}
