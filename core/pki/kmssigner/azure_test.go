package kmssigner

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/keyferry/keyferry/core/pki"
	"github.com/keyferry/keyferry/localtest/azkv"
	"github.com/keyferry/keyferry/localtest/oidc"
)

// kvEnv is the Key Vault emulator with the identity provider whose tokens it accepts.
type kvEnv struct {
	iss *oidc.Issuer
	srv *azkv.Server
}

func newKVEnv(t *testing.T) *kvEnv {
	t.Helper()
	iss, err := oidc.Start(oidc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = iss.Close() })
	srv, err := azkv.Start(azkv.Options{Issuer: iss})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return &kvEnv{iss: iss, srv: srv}
}

// kvCred hands out Key Vault tokens minted by the local issuer.
type kvCred struct{ iss *oidc.Issuer }

func (c kvCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := c.iss.Mint(c.iss.ManagedIdentityClaims(azkv.Resource))
	if err != nil {
		return azcore.AccessToken{}, err
	}
	return azcore.AccessToken{Token: tok, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// kvCalls counts a client's requests by method and last path segment ("GET <version>", "POST sign").
type kvCalls struct {
	mu    sync.Mutex
	calls []string
}

func (c *kvCalls) Do(req *policy.Request) (*http.Response, error) {
	r := req.Raw()
	parts := strings.Split(strings.TrimSuffix(r.URL.Path, "/"), "/")
	c.mu.Lock()
	c.calls = append(c.calls, r.Method+" "+strings.Join(parts[2:], "/")) // after /keys/
	c.mu.Unlock()
	return req.Next()
}

func (c *kvCalls) count(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, call := range c.calls {
		if strings.HasPrefix(call, prefix) {
			n++
		}
	}
	return n
}

func (c *kvCalls) last() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.calls) == 0 {
		return ""
	}
	return c.calls[len(c.calls)-1]
}

// keyClient returns an azkeys client for the emulator (its TLS CA, tokens from its issuer), counting
// its requests.
func (e *kvEnv) keyClient(t *testing.T) (*azkeys.Client, *kvCalls) {
	t.Helper()
	calls := &kvCalls{}
	c, err := azkeys.NewClient(e.srv.URL(), kvCred{e.iss}, &azkeys.ClientOptions{
		ClientOptions: policy.ClientOptions{
			Transport:       e.srv.HTTPClient(),
			Retry:           policy.RetryOptions{MaxRetries: 2, RetryDelay: 5 * time.Millisecond, MaxRetryDelay: 20 * time.Millisecond},
			PerCallPolicies: []policy.Policy{calls},
		},
		DisableChallengeResourceVerification: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, calls
}

func ptr[T any](v T) *T { return &v }

// TestAzureIssuesThroughKeyVault holds the intermediate CA key in the Key Vault emulator: one GetKey,
// a CSR and a leaf signed by Key Vault (ES256/384/512, RS256; PS256 through an RSA-PSS certificate), the
// chain verified to a local root by crypto/x509, and the key version pinned across a key rotation.
func TestAzureIssuesThroughKeyVault(t *testing.T) {
	ctx := tctx(t)
	e := newKVEnv(t)
	admin, _ := e.keyClient(t)
	cases := []struct {
		name    string
		params  azkeys.CreateKeyParameters
		wantAlg azkeys.SignatureAlgorithm // what a default x509 signature uses
	}{
		{"ec-p256", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC), Curve: ptr(azkeys.CurveNameP256)}, azkeys.SignatureAlgorithmES256},
		{"ec-p384", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC), Curve: ptr(azkeys.CurveNameP384)}, azkeys.SignatureAlgorithmES384},
		{"ec-p521", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC), Curve: ptr(azkeys.CurveNameP521)}, azkeys.SignatureAlgorithmES512},
		{"rsa-2048", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeRSA), KeySize: ptr(int32(2048)),
			KeyOps: []*azkeys.KeyOperation{ptr(azkeys.KeyOperationSign), ptr(azkeys.KeyOperationVerify)}}, azkeys.SignatureAlgorithmRS256},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			created, err := admin.CreateKey(ctx, c.name, c.params, nil)
			if err != nil {
				t.Fatal(err)
			}
			client, calls := e.keyClient(t)
			signer, err := NewAzure(ctx, client, c.name, "")
			if err != nil {
				t.Fatal(err)
			}
			as := signer.(*AzureSigner)
			if as.KeyVersion() != created.Key.KID.Version() {
				t.Fatalf("pinned version %q, want the current one %q", as.KeyVersion(), created.Key.KID.Version())
			}
			csr, err := pki.NewCSR(signer, "key vault intermediate "+c.name)
			issueThroughSigner(t, signer, csr, err)
			if n := calls.count("GET "); n != 1 {
				t.Errorf("GetKey called %d times, want once", n)
			}
			if n := calls.count("POST " + c.name + "/" + as.KeyVersion() + "/sign"); n != 3 { // CSR, leaf, and the leaf refused by the name constraints
				t.Errorf("Sign called %d times on the pinned version, want 3 (calls %v)", n, calls.calls)
			}

			// A rotation (a new current version) does not change the key the signer signs with.
			if _, err := admin.CreateKey(ctx, c.name, c.params, nil); err != nil {
				t.Fatal(err)
			}
			h := crypto.SHA256
			switch c.wantAlg {
			case azkeys.SignatureAlgorithmES384:
				h = crypto.SHA384
			case azkeys.SignatureAlgorithmES512:
				h = crypto.SHA512
			}
			digest := h.New()
			digest.Write([]byte("after rotation"))
			sum := digest.Sum(nil)
			sig, err := signer.Sign(rand.Reader, sum, h)
			if err != nil {
				t.Fatal(err)
			}
			if !verify(signer.Public(), h, h, sum, sig) {
				t.Fatal("after a rotation, the signature does not verify with Public")
			}
			if last := calls.last(); last != "POST "+c.name+"/"+as.KeyVersion()+"/sign" {
				t.Fatalf("after a rotation, Sign went to %q, not the pinned version", last)
			}
			// Asking for a version explicitly pins that one.
			other, err := NewAzure(ctx, client, c.name, as.KeyVersion())
			if err != nil || other.(*AzureSigner).KeyVersion() != as.KeyVersion() {
				t.Fatalf("explicit version: %v", err)
			}
		})
	}

	t.Run("rsa-2048 PSS", func(t *testing.T) {
		if _, err := admin.CreateKey(ctx, "rsa-pss", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeRSA)}, nil); err != nil {
			t.Fatal(err)
		}
		client, calls := e.keyClient(t)
		signer, err := NewAzure(ctx, client, "rsa-pss", "")
		if err != nil {
			t.Fatal(err)
		}
		issuePSSThroughSigner(t, signer)
		if n := calls.count("POST rsa-pss/"); n != 2 {
			t.Errorf("Sign called %d times, want 2", n)
		}
		if alg, err := signer.(*AzureSigner).Algorithm(&rsa.PSSOptions{Hash: crypto.SHA384, SaltLength: rsa.PSSSaltLengthEqualsHash}); err != nil || alg != azkeys.SignatureAlgorithmPS384 {
			t.Errorf("PSS SHA-384: %s %v", alg, err)
		}
	})
}

// TestAzureRefusals: what cannot be signed is refused with a message naming the key, the vault and what
// Key Vault answered, and refusals the signer can decide itself never reach Key Vault.
func TestAzureRefusals(t *testing.T) {
	ctx := tctx(t)
	e := newKVEnv(t)
	admin, _ := e.keyClient(t)
	mk := func(name string, p azkeys.CreateKeyParameters) string {
		t.Helper()
		k, err := admin.CreateKey(ctx, name, p, nil)
		if err != nil {
			t.Fatal(err)
		}
		return k.Key.KID.Version()
	}
	mk("ec", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC), Curve: ptr(azkeys.CurveNameP256)})
	mk("rsa", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeRSA)})
	mk("verify-only", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeRSA), KeyOps: []*azkeys.KeyOperation{ptr(azkeys.KeyOperationVerify)}})
	disabledVer := mk("disabled", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC), KeyAttributes: &azkeys.KeyAttributes{Enabled: ptr(false)}})
	host := strings.TrimPrefix(e.srv.URL(), "https://")

	client, calls := e.keyClient(t)
	newCases := []struct {
		name, version string
		want          []string
	}{
		{"missing", "", []string{"Key Vault key missing in " + host, "GetKey", "Key Vault answered HTTP 404 KeyNotFound", "was not found"}},
		{"verify-only", "", []string{"Key Vault key verify-only/", host, "does not allow the sign operation", "verify"}},
		{"disabled", disabledVer, []string{"Key Vault key disabled/" + disabledVer, "HTTP 403 Forbidden", "disabled key"}},
		{"bad/name", "", []string{"not a Key Vault key name"}},
		{"", "", []string{"not a Key Vault key name"}},
		{"ec", "not-a-version!", []string{"not a Key Vault key version"}},
		{"ec", "00000000000000000000000000000000", []string{"Key Vault key ec/00000000000000000000000000000000", "HTTP 404"}},
	}
	for _, c := range newCases {
		_, err := NewAzure(ctx, client, c.name, c.version)
		if err == nil {
			t.Errorf("NewAzure(%q, %q) succeeded", c.name, c.version)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("NewAzure(%q, %q): %v\nwant it to say %q", c.name, c.version, err, w)
			}
		}
	}
	if _, err := NewAzure(ctx, client, "missing", ""); !errors.As(err, new(*azcore.ResponseError)) {
		t.Errorf("the service's error is not kept for errors.As: %T", err)
	}
	if _, err := NewAzure(ctx, nil, "ec", ""); err == nil {
		t.Error("nil client accepted")
	}

	ecSigner, err := NewAzure(ctx, client, "ec", "")
	if err != nil {
		t.Fatal(err)
	}
	rsaSigner, err := NewAzure(ctx, client, "rsa", "")
	if err != nil {
		t.Fatal(err)
	}
	d256, d384 := sha256.Sum256([]byte("x")), sha512.Sum384([]byte("x"))
	before := calls.count("POST ")
	signCases := []struct {
		signer crypto.Signer
		digest []byte
		opts   crypto.SignerOpts
		want   string
	}{
		{ecSigner, d384[:], crypto.SHA384, "P-256 keys sign SHA-256 digests only, not SHA-384"},
		{ecSigner, d256[:31], crypto.SHA256, "digest is 31 bytes"},
		{ecSigner, d256[:], nil, "nil SignerOpts"},
		{ecSigner, d256[:], crypto.Hash(0), "not unhashed messages"},
		{rsaSigner, d256[:20], crypto.SHA1, "not SHA-1"},
		{rsaSigner, d256[:], &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: 20}, "salt as long as the hash (32 bytes), not 20 bytes"},
		{rsaSigner, d256[:], &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: rsa.PSSSaltLengthAuto}, "not the longest possible salt"},
	}
	for i, c := range signCases {
		if _, err := c.signer.Sign(rand.Reader, c.digest, c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("case %d: %v, want %q", i, err, c.want)
		}
	}
	if n := calls.count("POST "); n != before {
		t.Errorf("%d refused requests reached Key Vault", n-before)
	}

	// Key Vault's own refusal: the sign operation removed from the key after the signer was made.
	if _, err := admin.UpdateKey(ctx, "ec", "", azkeys.UpdateKeyParameters{KeyOps: []*azkeys.KeyOperation{ptr(azkeys.KeyOperationVerify)}}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = ecSigner.Sign(rand.Reader, d256[:], crypto.SHA256)
	for _, w := range []string{"Key Vault key ec/", "in " + host, "Sign (ES256)", "Key Vault answered HTTP 403 Forbidden", "not permitted"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Sign with the sign operation removed: %v\nwant it to say %q", err, w)
		}
	}
}

// fakeKV is an azureAPI answering canned responses, for what the emulator never answers.
type fakeKV struct {
	key  azkeys.GetKeyResponse
	sign azkeys.SignResponse
}

func (f fakeKV) GetKey(context.Context, string, string, *azkeys.GetKeyOptions) (azkeys.GetKeyResponse, error) {
	return f.key, nil
}

func (f fakeKV) Sign(context.Context, string, string, azkeys.SignParameters, *azkeys.SignOptions) (azkeys.SignResponse, error) {
	return f.sign, nil
}

// TestAzureOddAnswers: answers a real vault should never give are refused, not passed on.
func TestAzureOddAnswers(t *testing.T) {
	ctx := context.Background()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := priv.PublicKey.Bytes()
	kid := azkeys.ID("https://kf.vault.azure.net/keys/k/0123456789abcdef0123456789abcdef")
	ecKey := func(mod func(*azkeys.JSONWebKey)) azkeys.GetKeyResponse {
		k := &azkeys.JSONWebKey{KID: &kid, Kty: ptr(azkeys.KeyTypeEC), Crv: ptr(azkeys.CurveNameP256), X: raw[1:33], Y: raw[33:]}
		if mod != nil {
			mod(k)
		}
		return azkeys.GetKeyResponse{KeyBundle: azkeys.KeyBundle{Key: k}}
	}
	newCases := []struct {
		name string
		resp azkeys.GetKeyResponse
		want string
	}{
		{"no key", azkeys.GetKeyResponse{}, "without a key"},
		{"no version", ecKey(func(k *azkeys.JSONWebKey) { k.KID = ptr(azkeys.ID("https://kf.vault.azure.net/keys/k")) }), "without a version"},
		{"oct key", ecKey(func(k *azkeys.JSONWebKey) { k.Kty = ptr(azkeys.KeyTypeOct) }), "is of type oct"},
		{"secp256k1", ecKey(func(k *azkeys.JSONWebKey) { k.Crv = ptr(azkeys.CurveNameP256K) }), "curve P-256K cannot sign"},
		{"point off the curve", ecKey(func(k *azkeys.JSONWebKey) { k.Y = append([]byte{}, k.X...) }), "the public key"},
		{"small RSA", azkeys.GetKeyResponse{KeyBundle: azkeys.KeyBundle{Key: &azkeys.JSONWebKey{KID: &kid, Kty: ptr(azkeys.KeyTypeRSA),
			N: make([]byte, 128), E: []byte{1, 0, 1}}}}, "RSA key of 0 bits"},
	}
	for _, c := range newCases {
		if _, err := newAzure(ctx, fakeKV{key: c.resp}, "k", ""); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := newAzure(ctx, fakeKV{key: ecKey(nil)}, "k", "ffffffffffffffffffffffffffffffff"); err == nil || !strings.Contains(err.Error(), "asked for version") {
		t.Errorf("other version answered: %v", err)
	}

	d := sha256.Sum256([]byte("x"))
	signCases := []struct {
		name string
		resp azkeys.SignResponse
		want string
	}{
		{"empty", azkeys.SignResponse{}, "returned no signature"},
		{"DER instead of r||s", azkeys.SignResponse{KeyOperationResult: azkeys.KeyOperationResult{Result: make([]byte, 70)}}, "want r||s of 64"},
		{"zero r", azkeys.SignResponse{KeyOperationResult: azkeys.KeyOperationResult{Result: make([]byte, 64)}}, "r or s zero"},
		{"other version", azkeys.SignResponse{KeyOperationResult: azkeys.KeyOperationResult{
			KID: ptr(azkeys.ID("https://kf.vault.azure.net/keys/k/ffffffffffffffffffffffffffffffff")), Result: make([]byte, 64)}}, "answered for version"},
	}
	for _, c := range signCases {
		s, err := newAzure(ctx, fakeKV{key: ecKey(nil), sign: c.resp}, "k", "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Sign(rand.Reader, d[:], crypto.SHA256); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}
