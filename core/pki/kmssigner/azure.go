package kmssigner

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// azureAPI is the part of *azkeys.Client the signer uses.
type azureAPI interface {
	GetKey(ctx context.Context, name, version string, o *azkeys.GetKeyOptions) (azkeys.GetKeyResponse, error)
	Sign(ctx context.Context, name, version string, p azkeys.SignParameters, o *azkeys.SignOptions) (azkeys.SignResponse, error)
}

// AzureSigner is a crypto.Signer backed by an Azure Key Vault key: EC (P-256, P-384, P-521; EC-HSM
// too) signing ES256/ES384/ES512, or RSA (RSA-HSM too) signing RS256/384/512 and PS256/384/512.
type AzureSigner struct {
	client  azureAPI
	vault   string // the vault's host, for messages
	name    string
	version string // pinned: the version GetKey reported
	pub     crypto.PublicKey
	curve   azkeys.CurveName // EC keys
	timeout time.Duration
}

var _ crypto.Signer = (*AzureSigner)(nil)

var (
	kvKeyName    = regexp.MustCompile(`^[0-9A-Za-z-]{1,127}$`)
	kvKeyVersion = regexp.MustCompile(`^[0-9A-Za-z]{1,64}$`)
)

// NewAzure fetches the public key of the Key Vault key keyName (keyVersion "" means the current
// version) once and returns a signer for it. Sign uses the version GetKey reported, so rotating the key
// (a new current version) cannot make the signer sign with a key that does not match Public. The key
// must be enabled and allow the sign operation.
func NewAzure(ctx context.Context, client *azkeys.Client, keyName, keyVersion string) (crypto.Signer, error) {
	if client == nil {
		return nil, errors.New("kmssigner: nil Key Vault keys client")
	}
	return newAzure(ctx, client, keyName, keyVersion)
}

func newAzure(ctx context.Context, client azureAPI, name, version string) (*AzureSigner, error) {
	if !kvKeyName.MatchString(name) {
		return nil, fmt.Errorf("kmssigner: %q is not a Key Vault key name: 1-127 letters, digits and hyphens", name)
	}
	if version != "" && !kvKeyVersion.MatchString(version) {
		return nil, fmt.Errorf("kmssigner: %q is not a Key Vault key version (32 hexadecimal digits, or empty for the current one)", version)
	}
	what := name
	if version != "" {
		what += "/" + version
	}
	resp, err := client.GetKey(ctx, name, version, nil)
	if err != nil {
		return nil, kvError("GetKey", what, "", err)
	}
	k := resp.Key
	if k == nil || k.KID == nil || k.Kty == nil {
		return nil, fmt.Errorf("kmssigner: Key Vault key %s: GetKey answered without a key, kid or kty", what)
	}
	s := &AzureSigner{client: client, vault: kidHost(string(*k.KID)), name: name, version: k.KID.Version(), timeout: SignTimeout}
	if s.version == "" {
		return nil, fmt.Errorf("kmssigner: Key Vault key %s in %s: GetKey answered a kid without a version", what, s.vault)
	}
	if version != "" && !strings.EqualFold(version, s.version) {
		return nil, fmt.Errorf("kmssigner: Key Vault key %s in %s: asked for version %s, GetKey answered %s", name, s.vault, version, s.version)
	}
	where := fmt.Sprintf("Key Vault key %s/%s in %s", name, s.version, s.vault)
	if a := resp.Attributes; a != nil && a.Enabled != nil && !*a.Enabled {
		return nil, fmt.Errorf("kmssigner: %s is disabled: enable it to sign with it", where)
	}
	if len(k.KeyOps) > 0 && !slices.ContainsFunc(k.KeyOps, func(op *azkeys.KeyOperation) bool {
		return op != nil && *op == azkeys.KeyOperationSign
	}) {
		var ops []string
		for _, op := range k.KeyOps {
			if op != nil {
				ops = append(ops, string(*op))
			}
		}
		return nil, fmt.Errorf("kmssigner: %s does not allow the sign operation (its key_ops are %s): add sign to them", where, strings.Join(ops, ", "))
	}
	switch *k.Kty {
	case azkeys.KeyTypeEC, azkeys.KeyTypeECHSM:
		if k.Crv == nil {
			return nil, fmt.Errorf("kmssigner: %s: an EC key without a curve", where)
		}
		curve := map[azkeys.CurveName]elliptic.Curve{
			azkeys.CurveNameP256: elliptic.P256(), azkeys.CurveNameP384: elliptic.P384(), azkeys.CurveNameP521: elliptic.P521(),
		}[*k.Crv]
		if curve == nil {
			return nil, fmt.Errorf("kmssigner: %s: curve %s cannot sign X.509 certificates here (use P-256, P-384 or P-521)", where, *k.Crv)
		}
		size := (curve.Params().BitSize + 7) / 8
		if len(k.X) > size || len(k.Y) > size || len(k.X) == 0 || len(k.Y) == 0 {
			return nil, fmt.Errorf("kmssigner: %s: EC coordinates of %d and %d bytes for %s", where, len(k.X), len(k.Y), *k.Crv)
		}
		point := make([]byte, 1+2*size)
		point[0] = 4
		copy(point[1+size-len(k.X):1+size], k.X)
		copy(point[1+2*size-len(k.Y):], k.Y)
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
		if err != nil {
			return nil, fmt.Errorf("kmssigner: %s: the public key: %w", where, err)
		}
		s.pub, s.curve = pub, *k.Crv
	case azkeys.KeyTypeRSA, azkeys.KeyTypeRSAHSM:
		n, e := new(big.Int).SetBytes(k.N), new(big.Int).SetBytes(k.E)
		if n.BitLen() < 2048 {
			return nil, fmt.Errorf("kmssigner: %s: an RSA key of %d bits; X.509 signing needs at least 2048", where, n.BitLen())
		}
		if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0 {
			return nil, fmt.Errorf("kmssigner: %s: an RSA public exponent that is not a small odd number", where)
		}
		s.pub = &rsa.PublicKey{N: n, E: int(e.Int64())}
	default:
		return nil, fmt.Errorf("kmssigner: %s is of type %s, which cannot sign X.509 certificates here (use EC or RSA)", where, *k.Kty)
	}
	return s, nil
}

// kidHost is the vault's host in a key id (https://HOST/keys/NAME/VERSION).
func kidHost(kid string) string {
	if u, err := url.Parse(kid); err == nil && u.Host != "" {
		return u.Host
	}
	return "the vault"
}

// kvError names the operation, the key and the vault, and says what Key Vault answered (status, error
// code and message), keeping err for errors.As.
func kvError(op, key, vault string, err error) error {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		if vault == "" {
			vault = "the vault"
		}
		return fmt.Errorf("kmssigner: Key Vault key %s in %s: %s: %w", key, vault, op, err)
	}
	if vault == "" && re.RawResponse != nil && re.RawResponse.Request != nil {
		vault = re.RawResponse.Request.URL.Host
	}
	answer := fmt.Sprintf("HTTP %d", re.StatusCode)
	if re.ErrorCode != "" {
		answer += " " + re.ErrorCode
	}
	if msg := responseMessage(re); msg != "" {
		answer += ": " + msg
	}
	return &serviceError{msg: fmt.Sprintf("kmssigner: Key Vault key %s in %s: %s: Key Vault answered %s", key, vault, op, answer), err: err}
}

// responseMessage is error.message of a Key Vault error body (which the SDK keeps readable).
func responseMessage(re *azcore.ResponseError) string {
	if re.RawResponse == nil || re.RawResponse.Body == nil {
		return ""
	}
	body, _ := io.ReadAll(io.LimitReader(re.RawResponse.Body, 64<<10))
	re.RawResponse.Body = io.NopCloser(bytes.NewReader(body))
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	return e.Error.Message
}

// serviceError is a concise message for a service's error, wrapping it.
type serviceError struct {
	msg string
	err error
}

func (e *serviceError) Error() string { return e.msg }
func (e *serviceError) Unwrap() error { return e.err }

// Public returns the key's public key, as fetched by NewAzure.
func (s *AzureSigner) Public() crypto.PublicKey { return s.pub }

// KeyVersion is the key version Sign uses.
func (s *AzureSigner) KeyVersion() string { return s.version }

// Sign signs digest with Key Vault, within SignTimeout. rand is unused: Key Vault supplies its own
// randomness. ECDSA signatures come back as ASN.1 DER, as crypto/x509 expects.
func (s *AzureSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	return s.SignContext(ctx, digest, opts)
}

// SignContext is Sign with a caller's context.
func (s *AzureSigner) SignContext(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	alg, err := s.Algorithm(opts)
	if err != nil {
		return nil, err
	}
	if err := checkDigest(digest, opts.HashFunc()); err != nil {
		return nil, err
	}
	key := s.name + "/" + s.version
	resp, err := s.client.Sign(ctx, s.name, s.version, azkeys.SignParameters{Algorithm: &alg, Value: digest}, nil)
	if err != nil {
		return nil, kvError("Sign ("+string(alg)+")", key, s.vault, err)
	}
	if resp.KID != nil && !strings.EqualFold(resp.KID.Version(), s.version) {
		return nil, fmt.Errorf("kmssigner: Key Vault key %s in %s: Sign answered for version %q", key, s.vault, resp.KID.Version())
	}
	sig := resp.Result
	if len(sig) == 0 {
		return nil, fmt.Errorf("kmssigner: Key Vault key %s in %s: Sign (%s) returned no signature", key, s.vault, alg)
	}
	if pub, ok := s.pub.(*ecdsa.PublicKey); ok {
		der, err := ecdsaRawToDER(sig, (pub.Curve.Params().BitSize+7)/8)
		if err != nil {
			return nil, fmt.Errorf("kmssigner: Key Vault key %s in %s: Sign (%s) returned %w", key, s.vault, alg, err)
		}
		return der, nil
	}
	return sig, nil
}

// Algorithm is the Key Vault signature algorithm for opts: ES256/ES384/ES512 for the key's curve (P-256
// signs SHA-256 digests only, and so on), PS256/384/512 when opts is *rsa.PSSOptions (with a salt as
// long as the hash), RS256/384/512 otherwise.
func (s *AzureSigner) Algorithm(opts crypto.SignerOpts) (azkeys.SignatureAlgorithm, error) {
	h, err := hashOf(opts, "Key Vault")
	if err != nil {
		return "", err
	}
	switch s.pub.(type) {
	case *ecdsa.PublicKey:
		want := map[azkeys.CurveName]crypto.Hash{azkeys.CurveNameP256: crypto.SHA256, azkeys.CurveNameP384: crypto.SHA384,
			azkeys.CurveNameP521: crypto.SHA512}[s.curve]
		if h != want {
			return "", fmt.Errorf("kmssigner: Key Vault %s keys sign %s digests only, not %s", s.curve, hashName(want), hashName(h))
		}
		return map[crypto.Hash]azkeys.SignatureAlgorithm{crypto.SHA256: azkeys.SignatureAlgorithmES256,
			crypto.SHA384: azkeys.SignatureAlgorithmES384, crypto.SHA512: azkeys.SignatureAlgorithmES512}[h], nil
	case *rsa.PublicKey:
		pss, err := pssOptions(opts, h, "Key Vault")
		if err != nil {
			return "", err
		}
		algs := map[crypto.Hash]azkeys.SignatureAlgorithm{crypto.SHA256: azkeys.SignatureAlgorithmRS256,
			crypto.SHA384: azkeys.SignatureAlgorithmRS384, crypto.SHA512: azkeys.SignatureAlgorithmRS512}
		if pss {
			algs = map[crypto.Hash]azkeys.SignatureAlgorithm{crypto.SHA256: azkeys.SignatureAlgorithmPS256,
				crypto.SHA384: azkeys.SignatureAlgorithmPS384, crypto.SHA512: azkeys.SignatureAlgorithmPS512}
		}
		if alg, ok := algs[h]; ok {
			return alg, nil
		}
		return "", fmt.Errorf("kmssigner: Key Vault RSA keys sign SHA-256, SHA-384 or SHA-512 digests, not %s", hashName(h))
	}
	return "", fmt.Errorf("kmssigner: unsupported public key %T", s.pub)
}
