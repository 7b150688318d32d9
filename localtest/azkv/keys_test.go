package azkv

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// keyClient returns an azkeys client for the vault, with tokens minted by the issuer.
func (e *env) keyClient(t *testing.T, perCall ...policy.Policy) *azkeys.Client {
	t.Helper()
	c, err := azkeys.NewClient(e.srv.URL(), mintCred{e.iss, nil}, &azkeys.ClientOptions{
		ClientOptions: policy.ClientOptions{
			Transport:       e.srv.HTTPClient(),
			Retry:           policy.RetryOptions{MaxRetries: 3, RetryDelay: 5 * time.Millisecond, MaxRetryDelay: 50 * time.Millisecond},
			PerCallPolicies: perCall,
		},
		DisableChallengeResourceVerification: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// jwkPublicKey builds the Go public key a JWK describes, refusing JWKs that carry private parameters.
func jwkPublicKey(t *testing.T, k *azkeys.JSONWebKey) crypto.PublicKey {
	t.Helper()
	if k.D != nil || k.P != nil || k.Q != nil || k.DP != nil || k.DQ != nil || k.QI != nil || k.K != nil || k.T != nil {
		t.Fatal("the JWK carries private key material")
	}
	switch *k.Kty {
	case azkeys.KeyTypeRSA:
		return &rsa.PublicKey{N: new(big.Int).SetBytes(k.N), E: int(new(big.Int).SetBytes(k.E).Int64())}
	case azkeys.KeyTypeEC:
		curve := map[azkeys.CurveName]elliptic.Curve{azkeys.CurveNameP256: elliptic.P256(), azkeys.CurveNameP384: elliptic.P384(),
			azkeys.CurveNameP521: elliptic.P521()}[*k.Crv]
		size := (curve.Params().BitSize + 7) / 8
		if len(k.X) != size || len(k.Y) != size {
			t.Fatalf("EC coordinates of %d and %d bytes, want %d", len(k.X), len(k.Y), size)
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, k.X...), k.Y...))
		if err != nil {
			t.Fatal(err)
		}
		return pub
	}
	t.Fatalf("kty %q", *k.Kty)
	return nil
}

// verifyJOSE verifies a signature as a JOSE consumer would: ECDSA as r||s, RSA PKCS#1 v1.5 or PSS.
func verifyJOSE(t *testing.T, pub crypto.PublicKey, alg string, digest, sig []byte) bool {
	t.Helper()
	hash := map[string]crypto.Hash{"256": crypto.SHA256, "384": crypto.SHA384, "512": crypto.SHA512}[alg[2:]]
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			t.Fatalf("ECDSA signature of %d bytes, want r||s of %d", len(sig), 2*size)
		}
		return ecdsa.Verify(k, digest, new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:]))
	case *rsa.PublicKey:
		if strings.HasPrefix(alg, "PS") {
			return rsa.VerifyPSS(k, hash, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
		}
		return rsa.VerifyPKCS1v15(k, hash, digest, sig) == nil
	}
	t.Fatalf("public key %T", pub)
	return false
}

func TestCreateKeysAndSign(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.keyClient(t)
	msg := []byte("keyferry signs this")
	d256 := sha256.Sum256(msg)
	d384 := sha512.Sum384(msg)
	cases := []struct {
		name   string
		params azkeys.CreateKeyParameters
		algs   []azkeys.SignatureAlgorithm
		digest []byte
		ops    []string
	}{
		{"ec-p256", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC), Curve: ptr(azkeys.CurveNameP256)},
			[]azkeys.SignatureAlgorithm{azkeys.SignatureAlgorithmES256}, d256[:], []string{"sign", "verify"}},
		{"ec-p384", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC), Curve: ptr(azkeys.CurveNameP384)},
			[]azkeys.SignatureAlgorithm{azkeys.SignatureAlgorithmES384}, d384[:], []string{"sign", "verify"}},
		{"rsa-2048", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeRSA), KeySize: ptr(int32(2048))},
			[]azkeys.SignatureAlgorithm{azkeys.SignatureAlgorithmRS256, azkeys.SignatureAlgorithmPS256}, d256[:],
			[]string{"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"}},
		{"rsa-3072-sign-only", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeRSA), KeySize: ptr(int32(3072)),
			KeyOps: []*azkeys.KeyOperation{ptr(azkeys.KeyOperationSign)}, Tags: map[string]*string{"use": ptr("jws")}},
			[]azkeys.SignatureAlgorithm{azkeys.SignatureAlgorithmRS256}, d256[:], []string{"sign"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			created, err := c.CreateKey(ctxT(t), tc.name, tc.params, nil)
			if err != nil {
				t.Fatal(err)
			}
			ver := created.Key.KID.Version()
			if !versionID.MatchString(ver) || created.Key.KID.Name() != tc.name || *created.Key.Kty != *tc.params.Kty {
				t.Fatalf("kid %q kty %v", *created.Key.KID, *created.Key.Kty)
			}
			var ops []string
			for _, op := range created.Key.KeyOps {
				ops = append(ops, string(*op))
			}
			if !slices.Equal(ops, tc.ops) || !*created.Attributes.Enabled || created.Managed != nil {
				t.Fatalf("key_ops %v enabled %v managed %v", ops, *created.Attributes.Enabled, created.Managed)
			}
			got, err := c.GetKey(ctxT(t), tc.name, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			pub := jwkPublicKey(t, got.Key)
			if got.Key.KID.Version() != ver {
				t.Fatalf("GetKey version %q, want %q", got.Key.KID.Version(), ver)
			}
			if k, ok := pub.(*rsa.PublicKey); ok && (k.N.BitLen() != int(*tc.params.KeySize) || k.E != 65537) {
				t.Fatalf("RSA key of %d bits, e=%d", k.N.BitLen(), k.E)
			}
			for _, alg := range tc.algs {
				sig, err := c.Sign(ctxT(t), tc.name, ver, azkeys.SignParameters{Algorithm: ptr(alg), Value: tc.digest}, nil)
				if err != nil {
					t.Fatalf("%s: %v", alg, err)
				}
				if sig.KID.Version() != ver {
					t.Fatalf("sign answer kid %q", *sig.KID)
				}
				if !verifyJOSE(t, pub, string(alg), tc.digest, sig.Result) {
					t.Fatalf("%s: the signature does not verify with the returned public JWK", alg)
				}
				if !slices.Contains(tc.ops, "verify") {
					_, err := c.Verify(ctxT(t), tc.name, ver, azkeys.VerifyParameters{Algorithm: ptr(alg), Digest: tc.digest, Signature: sig.Result}, nil)
					respErr(t, err, 403, "Forbidden")
					continue
				}
				ok, err := c.Verify(ctxT(t), tc.name, "", azkeys.VerifyParameters{Algorithm: ptr(alg), Digest: tc.digest, Signature: sig.Result}, nil)
				if err != nil || !*ok.Value {
					t.Fatalf("%s: Verify: %v", alg, err)
				}
				tampered := slices.Clone(sig.Result)
				tampered[len(tampered)/3] ^= 1
				if ok, err := c.Verify(ctxT(t), tc.name, ver, azkeys.VerifyParameters{Algorithm: ptr(alg), Digest: tc.digest,
					Signature: tampered}, nil); err != nil || *ok.Value {
					t.Fatalf("%s: a tampered signature verified (%v)", alg, err)
				}
			}
		})
	}

	// The private key never leaves the vault, in any answer.
	resp, body := e.raw(t, http.MethodGet, "/keys/rsa-2048?api-version=7.6")
	if resp.StatusCode != 200 {
		t.Fatalf("HTTP %d", resp.StatusCode)
	}
	for _, field := range []string{`"d"`, `"p"`, `"q"`, `"dp"`, `"dq"`, `"qi"`} {
		if strings.Contains(string(body), field+":") {
			t.Fatalf("GetKey body carries %s: %s", field, body)
		}
	}
}

func TestKeyErrors(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.keyClient(t)
	rsaKey, err := c.CreateKey(ctxT(t), "rsa", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeRSA)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rsaKey.Key.N) * 8; n != 2048 {
		t.Fatalf("default RSA size %d, want 2048", n)
	}
	ec, err := c.CreateKey(ctxT(t), "ec", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *ec.Key.Crv != azkeys.CurveNameP256 {
		t.Fatalf("default curve %v, want P-256", *ec.Key.Crv)
	}
	digest := sha256.Sum256([]byte("x"))

	// Unknown versions and keys: 404 KeyNotFound.
	zero := strings.Repeat("0", 32)
	_, err = c.GetKey(ctxT(t), "rsa", zero, nil)
	respErr(t, err, 404, "KeyNotFound")
	if msg := errMessage(t, err); !strings.Contains(msg, "A key with (name/id) rsa/"+zero+" was not found in this key vault") {
		t.Fatalf("message %q", msg)
	}
	_, err = c.Sign(ctxT(t), "rsa", zero, azkeys.SignParameters{Algorithm: ptr(azkeys.SignatureAlgorithmRS256), Value: digest[:]}, nil)
	respErr(t, err, 404, "KeyNotFound")
	_, err = c.GetKey(ctxT(t), "absent", "", nil)
	respErr(t, err, 404, "KeyNotFound")
	_, err = c.DeleteKey(ctxT(t), "absent", nil)
	respErr(t, err, 404, "KeyNotFound")

	for label, p := range map[string]azkeys.CreateKeyParameters{
		"rsa 1024":        {Kty: ptr(azkeys.KeyTypeRSA), KeySize: ptr(int32(1024))},
		"curve P-256K":    {Kty: ptr(azkeys.KeyTypeEC), Curve: ptr(azkeys.CurveNameP256K)},
		"ec wrapKey":      {Kty: ptr(azkeys.KeyTypeEC), KeyOps: []*azkeys.KeyOperation{ptr(azkeys.KeyOperationWrapKey)}},
		"hsm on standard": {Kty: ptr(azkeys.KeyTypeRSAHSM)},
		"no kty":          {},
	} {
		_, err := c.CreateKey(ctxT(t), "refused", p, nil)
		if err == nil {
			t.Fatalf("%s: accepted", label)
		}
		respErr(t, err, 400, "BadParameter")
	}
	for label, p := range map[string]struct {
		key string
		azkeys.SignParameters
	}{
		"ES256 on an RSA key": {"rsa", azkeys.SignParameters{Algorithm: ptr(azkeys.SignatureAlgorithmES256), Value: digest[:]}},
		"ES384 on a P-256 key": {"ec", azkeys.SignParameters{Algorithm: ptr(azkeys.SignatureAlgorithmES384),
			Value: make([]byte, 48)}},
		"short digest": {"rsa", azkeys.SignParameters{Algorithm: ptr(azkeys.SignatureAlgorithmRS256), Value: digest[:20]}},
	} {
		_, err := c.Sign(ctxT(t), p.key, "", p.SignParameters, nil)
		if err == nil {
			t.Fatalf("%s: accepted", label)
		}
		respErr(t, err, 400, "BadParameter")
	}

	// A disabled key does not sign.
	if _, err := c.UpdateKey(ctxT(t), "ec", "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: ptr(false)}}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.Sign(ctxT(t), "ec", "", azkeys.SignParameters{Algorithm: ptr(azkeys.SignatureAlgorithmES256), Value: digest[:]}, nil)
	if inner := respErr(t, err, 403, "Forbidden"); inner != "KeyDisabled" {
		t.Fatalf("inner %q", inner)
	}
}

func TestKeysChallenge(t *testing.T) {
	e := newEnv(t, Options{})
	want := `Bearer authorization="` + e.iss.Authority() + `", resource="https://vault.azure.net"`
	for _, rq := range []struct{ method, path string }{
		{http.MethodGet, "/keys?api-version=7.6"},
		{http.MethodPost, "/keys/k/create?api-version=7.6"},
		{http.MethodPost, "/keys/k/0123/sign?api-version=7.5"},
	} {
		req, _ := http.NewRequestWithContext(ctxT(t), rq.method, e.srv.URL()+rq.path, nil)
		resp, err := e.srv.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != want {
			t.Fatalf("%s %s: HTTP %d, WWW-Authenticate %q", rq.method, rq.path, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	// The SDK answers the challenge once and then goes on with its token.
	c := e.keyClient(t)
	for i := 0; i < 2; i++ {
		if _, err := c.CreateKey(ctxT(t), "after-challenge", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.srv.StatusCount(http.StatusUnauthorized); got != 4 { // 3 bare requests + the client's first
		t.Fatalf("401s = %d, want 4", got)
	}
}

func TestKeyListVersionsAndSoftDelete(t *testing.T) {
	const delay = 150 * time.Millisecond
	e := newEnv(t, Options{TransitionDelay: delay})
	c := e.keyClient(t)
	var want []string
	for i := 0; i < 8; i++ {
		n := fmt.Sprintf("key-%02d", i)
		want = append(want, n)
		if _, err := c.CreateKey(ctxT(t), n, azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	var pages []int
	for pager := e.keyClient(t, maxResults(3)).NewListKeyPropertiesPager(nil); pager.More(); {
		pg, err := pager.NextPage(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, len(pg.Value))
		for _, p := range pg.Value {
			if p.KID.Version() != "" {
				t.Fatalf("list item kid %q carries a version", *p.KID)
			}
			names = append(names, p.KID.Name())
		}
	}
	if !slices.Equal(names, want) || !slices.Equal(pages, []int{3, 3, 2}) {
		t.Fatalf("pages %v names %v", pages, names)
	}

	v2, err := c.CreateKey(ctxT(t), "key-00", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC), Curve: ptr(azkeys.CurveNameP384)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var versions int
	for pager := c.NewListKeyPropertiesVersionsPager("key-00", nil); pager.More(); {
		pg, err := pager.NextPage(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		versions += len(pg.Value)
	}
	if versions != 2 {
		t.Fatalf("%d versions, want 2", versions)
	}
	if got, err := c.GetKey(ctxT(t), "key-00", "", nil); err != nil || got.Key.KID.Version() != v2.Key.KID.Version() ||
		*got.Key.Crv != azkeys.CurveNameP384 {
		t.Fatalf("latest: %v", err)
	}

	del, err := c.DeleteKey(ctxT(t), "key-00", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *del.RecoveryID != e.srv.URL()+"/deletedkeys/key-00" || del.Key.D != nil {
		t.Fatalf("delete answer recoveryId %v", *del.RecoveryID)
	}
	_, err = c.GetKey(ctxT(t), "key-00", "", nil)
	respErr(t, err, 404, "KeyNotFound")
	_, err = c.CreateKey(ctxT(t), "key-00", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC)}, nil)
	if inner := respErr(t, err, 409, "Conflict"); inner != "ObjectIsBeingDeleted" {
		t.Fatalf("inner %q", inner)
	}
	time.Sleep(delay)
	var deleted []string
	for pager := c.NewListDeletedKeyPropertiesPager(nil); pager.More(); {
		pg, err := pager.NextPage(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pg.Value {
			deleted = append(deleted, p.KID.Name())
		}
	}
	if !slices.Equal(deleted, []string{"key-00"}) {
		t.Fatalf("deleted %v", deleted)
	}
	if _, err := c.RecoverDeletedKey(ctxT(t), "key-00", nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(delay)
	if _, err := c.GetKey(ctxT(t), "key-00", "", nil); err != nil {
		t.Fatalf("after recover: %v", err)
	}
	if _, err := c.DeleteKey(ctxT(t), "key-00", nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(delay)
	if _, err := c.PurgeDeletedKey(ctxT(t), "key-00", nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(delay)
	_, err = c.GetDeletedKey(ctxT(t), "key-00", nil)
	respErr(t, err, 404, "KeyNotFound")
}
