package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
)

// Key types understood by GenerateKey, Spec.KeyType, RootOptions.KeyType and Policy.AllowedKeyTypes.
const (
	KeyECP256  = "ec-p256"
	KeyECP384  = "ec-p384"
	KeyRSA2048 = "rsa-2048"
	KeyRSA3072 = "rsa-3072"
	KeyRSA4096 = "rsa-4096"
)

// KeyTypes lists every supported key type.
var KeyTypes = []string{KeyECP256, KeyECP384, KeyRSA2048, KeyRSA3072, KeyRSA4096}

func validKeyType(kt string) bool {
	for _, k := range KeyTypes {
		if k == kt {
			return true
		}
	}
	return false
}

// GenerateKey returns a new private key of keyType (one of KeyTypes).
func GenerateKey(keyType string) (crypto.Signer, error) {
	switch keyType {
	case KeyECP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyECP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case KeyRSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case KeyRSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case KeyRSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	}
	return nil, fmt.Errorf("pki: unknown key type %q (supported: %s)", keyType, strings.Join(KeyTypes, ", "))
}

// KeyTypeOf names the key type of a public key (ec-p256, rsa-2048, ...), or fails for a key keyferry does
// not issue.
func KeyTypeOf(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return KeyECP256, nil
		case elliptic.P384():
			return KeyECP384, nil
		}
		return "", fmt.Errorf("pki: unsupported ECDSA curve %s", k.Curve.Params().Name)
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 2048:
			return KeyRSA2048, nil
		case 3072:
			return KeyRSA3072, nil
		case 4096:
			return KeyRSA4096, nil
		}
		return "", fmt.Errorf("pki: unsupported RSA key size %d bits", k.N.BitLen())
	}
	return "", fmt.Errorf("pki: unsupported public key type %T", pub)
}

// MarshalPrivateKeyPEM encodes key as a PKCS#8 "PRIVATE KEY" PEM block.
func MarshalPrivateKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: encode private key (%T) as PKCS#8: %w", key, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePrivateKeyPEM decodes the first PEM block of data as a private key: PKCS#8 ("PRIVATE KEY"), and,
// for interoperability, PKCS#1 ("RSA PRIVATE KEY") and SEC 1 ("EC PRIVATE KEY"). Errors never quote the
// input.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	k, err := parsePrivateKeyPEM(data, true)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	return k, nil
}

func parsePrivateKeyPEM(data []byte, legacy bool) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found where a private key was expected")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("the private key is encrypted; keyferry needs an unencrypted PKCS#8 key " +
			"(`openssl pkcs8 -topk8 -nocrypt`) protected by file permissions, or a KMS-held key")
	case "RSA PRIVATE KEY", "EC PRIVATE KEY":
		if !legacy {
			return nil, fmt.Errorf("the key is a %q PEM block; keyferry expects PKCS#8 (\"PRIVATE KEY\"): "+
				"convert it with `openssl pkcs8 -topk8 -nocrypt -in OLD -out NEW`", block.Type)
		}
		if block.Type == "RSA PRIVATE KEY" {
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		} else {
			key, err = x509.ParseECPrivateKey(block.Bytes)
		}
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key (want \"PRIVATE KEY\")", block.Type)
	}
	if err != nil {
		// The x509 parse errors describe the structure, never the key bytes.
		return nil, fmt.Errorf("parse %s: %w", block.Type, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", key)
	}
	return signer, nil
}

// maxKeyFile bounds what LoadFileSigner reads: a PEM RSA-4096 key is about 3.3 KiB.
const maxKeyFile = 1 << 20

// LoadFileSigner reads an unencrypted PKCS#8 PEM private key from path. It refuses a file that group or
// others can access (any of the permission bits 0077): a CA key must be readable by its owner only. The
// check is skipped on Windows, which has no Unix permission bits.
func LoadFileSigner(path string) (crypto.Signer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pki: open key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat() // the opened file, so a swap after the check cannot slip through
	if err != nil {
		return nil, fmt.Errorf("pki: stat key file %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("pki: key file %s is not a regular file (%s)", path, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return nil, fmt.Errorf("pki: key file %s has mode %04o: group/others can read or modify it; "+
			"a CA key must be private to its owner: run `chmod 600 %s`", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("pki: read key file %s: %w", path, err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("pki: key file %s is larger than %d bytes: not a PEM private key", path, maxKeyFile)
	}
	signer, err := parsePrivateKeyPEM(data, false)
	if err != nil {
		return nil, fmt.Errorf("pki: key file %s: %w", path, err)
	}
	return signer, nil
}
