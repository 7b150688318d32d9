package gcpkms

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"hash/crc32"
	"strings"
	"sync"
	"testing"
	"time"

	kms "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/keyferry/keyferry/localtest/fault"
)

const loc = "projects/kf-emu/locations/global"

func start(t *testing.T, opts Options) (*Server, *kms.KeyManagementClient) {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	c, err := kms.NewKeyManagementClient(context.Background(), s.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return s, c
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func wantCode(t *testing.T, what string, err error, c codes.Code) {
	t.Helper()
	if got := status.Code(err); got != c {
		t.Fatalf("%s: got %v (%v), want %v", what, got, err, c)
	}
}

func crc(b []byte) int64 { return int64(crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))) }

func mustRing(t *testing.T, c *kms.KeyManagementClient, id string) string {
	t.Helper()
	r, err := c.CreateKeyRing(tctx(t), &kmspb.CreateKeyRingRequest{Parent: loc, KeyRingId: id, KeyRing: &kmspb.KeyRing{}})
	if err != nil {
		t.Fatalf("CreateKeyRing(%s): %v", id, err)
	}
	return r.GetName()
}

func signKeyReq(ring, id string, alg kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm) *kmspb.CreateCryptoKeyRequest {
	return &kmspb.CreateCryptoKeyRequest{Parent: ring, CryptoKeyId: id, CryptoKey: &kmspb.CryptoKey{
		Purpose:         kmspb.CryptoKey_ASYMMETRIC_SIGN,
		VersionTemplate: &kmspb.CryptoKeyVersionTemplate{Algorithm: alg},
	}}
}

func mustKey(t *testing.T, c *kms.KeyManagementClient, ring, id string, alg kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm) *kmspb.CryptoKey {
	t.Helper()
	k, err := c.CreateCryptoKey(tctx(t), signKeyReq(ring, id, alg))
	if err != nil {
		t.Fatalf("CreateCryptoKey(%s): %v", id, err)
	}
	return k
}

// publicKey fetches and checks a version's public key.
func publicKey(t *testing.T, c *kms.KeyManagementClient, name string) crypto.PublicKey {
	t.Helper()
	pk, err := c.GetPublicKey(tctx(t), &kmspb.GetPublicKeyRequest{Name: name})
	if err != nil {
		t.Fatalf("GetPublicKey(%s): %v", name, err)
	}
	if pk.GetName() != name || pk.GetPemCrc32C().GetValue() != crc([]byte(pk.GetPem())) ||
		pk.GetProtectionLevel() != kmspb.ProtectionLevel_SOFTWARE {
		t.Fatalf("GetPublicKey(%s): %v", name, pk)
	}
	block, _ := pem.Decode([]byte(pk.GetPem()))
	if block == nil || block.Type != "PUBLIC KEY" {
		t.Fatalf("GetPublicKey(%s): PEM %q", name, pk.GetPem())
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func digestOf(h crypto.Hash, msg []byte) *kmspb.Digest {
	switch h {
	case crypto.SHA256:
		d := sha256.Sum256(msg)
		return &kmspb.Digest{Digest: &kmspb.Digest_Sha256{Sha256: d[:]}}
	case crypto.SHA384:
		d := sha512.Sum384(msg)
		return &kmspb.Digest{Digest: &kmspb.Digest_Sha384{Sha384: d[:]}}
	default:
		d := sha512.Sum512(msg)
		return &kmspb.Digest{Digest: &kmspb.Digest_Sha512{Sha512: d[:]}}
	}
}

func digestBytes(d *kmspb.Digest) []byte {
	return append(append(append([]byte(nil), d.GetSha256()...), d.GetSha384()...), d.GetSha512()...)
}

func verify(pub crypto.PublicKey, h crypto.Hash, pss bool, digest, sig []byte) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, digest, sig) {
			return fmt.Errorf("ECDSA signature does not verify")
		}
		return nil
	case *rsa.PublicKey:
		if pss {
			return rsa.VerifyPSS(k, h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: h})
		}
		return rsa.VerifyPKCS1v15(k, h, digest, sig)
	}
	return fmt.Errorf("unexpected public key %T", pub)
}

// TestSignAndVerify: every emulated algorithm signs a digest that verifies with the public key.
func TestSignAndVerify(t *testing.T) {
	_, c := start(t, Options{})
	ring := mustRing(t, c, "signing")
	algs := []struct {
		alg   kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm
		hash  crypto.Hash
		pss   bool
		check func(crypto.PublicKey) bool
	}{
		{kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256, crypto.SHA256, false, func(p crypto.PublicKey) bool {
			k, ok := p.(*ecdsa.PublicKey)
			return ok && k.Curve.Params().Name == "P-256"
		}},
		{kmspb.CryptoKeyVersion_EC_SIGN_P384_SHA384, crypto.SHA384, false, func(p crypto.PublicKey) bool {
			k, ok := p.(*ecdsa.PublicKey)
			return ok && k.Curve.Params().Name == "P-384"
		}},
		{kmspb.CryptoKeyVersion_RSA_SIGN_PKCS1_2048_SHA256, crypto.SHA256, false, rsaBits(2048)},
		{kmspb.CryptoKeyVersion_RSA_SIGN_PSS_2048_SHA256, crypto.SHA256, true, rsaBits(2048)},
		{kmspb.CryptoKeyVersion_RSA_SIGN_PKCS1_3072_SHA256, crypto.SHA256, false, rsaBits(3072)},
	}
	if !testing.Short() {
		algs = append(algs, []struct {
			alg   kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm
			hash  crypto.Hash
			pss   bool
			check func(crypto.PublicKey) bool
		}{
			{kmspb.CryptoKeyVersion_RSA_SIGN_PKCS1_4096_SHA256, crypto.SHA256, false, rsaBits(4096)},
			{kmspb.CryptoKeyVersion_RSA_SIGN_PSS_4096_SHA512, crypto.SHA512, true, rsaBits(4096)},
		}...)
	}
	msg := []byte("keyferry signs this")
	for _, a := range algs {
		t.Run(a.alg.String(), func(t *testing.T) {
			id := strings.ToLower(strings.ReplaceAll(a.alg.String(), "_", "-"))
			k := mustKey(t, c, ring, id, a.alg)
			if k.GetName() != ring+"/cryptoKeys/"+id || k.GetPurpose() != kmspb.CryptoKey_ASYMMETRIC_SIGN ||
				k.GetVersionTemplate().GetAlgorithm() != a.alg || k.GetPrimary() != nil || k.GetCreateTime() == nil {
				t.Fatalf("CreateCryptoKey returned %v", k)
			}
			v1 := k.GetName() + "/cryptoKeyVersions/1"
			v, err := c.GetCryptoKeyVersion(tctx(t), &kmspb.GetCryptoKeyVersionRequest{Name: v1})
			if err != nil {
				t.Fatal(err)
			}
			if v.GetState() != kmspb.CryptoKeyVersion_ENABLED || v.GetAlgorithm() != a.alg || v.GetGenerateTime() == nil {
				t.Fatalf("version 1: %v", v)
			}
			pub := publicKey(t, c, v1)
			if !a.check(pub) {
				t.Fatalf("public key %T does not fit %s", pub, a.alg)
			}
			d := digestOf(a.hash, msg)
			resp, err := c.AsymmetricSign(tctx(t), &kmspb.AsymmetricSignRequest{Name: v1, Digest: d,
				DigestCrc32C: wrapperspb.Int64(crc(digestBytes(d)))})
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetName() != v1 || !resp.GetVerifiedDigestCrc32C() || resp.GetSignatureCrc32C().GetValue() != crc(resp.GetSignature()) ||
				resp.GetProtectionLevel() != kmspb.ProtectionLevel_SOFTWARE {
				t.Fatalf("AsymmetricSign response: name %q verified %v crc %v", resp.GetName(), resp.GetVerifiedDigestCrc32C(), resp.GetSignatureCrc32C())
			}
			if err := verify(pub, a.hash, a.pss, digestBytes(d), resp.GetSignature()); err != nil {
				t.Fatal(err)
			}
			// Without a checksum the digest is signed but not reported as verified.
			resp, err = c.AsymmetricSign(tctx(t), &kmspb.AsymmetricSignRequest{Name: v1, Digest: d})
			if err != nil || resp.GetVerifiedDigestCrc32C() {
				t.Fatalf("AsymmetricSign without crc: verified %v, %v", resp.GetVerifiedDigestCrc32C(), err)
			}
			if err := verify(pub, a.hash, a.pss, digestBytes(d), resp.GetSignature()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func rsaBits(n int) func(crypto.PublicKey) bool {
	return func(p crypto.PublicKey) bool {
		k, ok := p.(*rsa.PublicKey)
		return ok && k.N.BitLen() == n
	}
}

// TestKeyAndVersionMetadata: GetCryptoKey, versions, lists, public key formats.
func TestKeyAndVersionMetadata(t *testing.T) {
	_, c := start(t, Options{})
	ring := mustRing(t, c, "meta")
	req := signKeyReq(ring, "jwt", kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256)
	req.CryptoKey.Labels = map[string]string{"team": "kf"}
	if _, err := c.CreateCryptoKey(tctx(t), req); err != nil {
		t.Fatal(err)
	}
	key := ring + "/cryptoKeys/jwt"
	k, err := c.GetCryptoKey(tctx(t), &kmspb.GetCryptoKeyRequest{Name: key})
	if err != nil {
		t.Fatal(err)
	}
	if k.GetLabels()["team"] != "kf" || k.GetDestroyScheduledDuration().AsDuration() != 30*24*time.Hour ||
		k.GetVersionTemplate().GetProtectionLevel() != kmspb.ProtectionLevel_SOFTWARE || k.GetPrimary() != nil {
		t.Fatalf("GetCryptoKey: %v", k)
	}
	r, err := c.GetKeyRing(tctx(t), &kmspb.GetKeyRingRequest{Name: ring})
	if err != nil || r.GetName() != ring || r.GetCreateTime() == nil {
		t.Fatalf("GetKeyRing: %v, %v", r, err)
	}

	// Rotation: versions 2 and 3 have keys of their own.
	for i := 2; i <= 3; i++ {
		v, err := c.CreateCryptoKeyVersion(tctx(t), &kmspb.CreateCryptoKeyVersionRequest{Parent: key, CryptoKeyVersion: &kmspb.CryptoKeyVersion{}})
		if err != nil {
			t.Fatal(err)
		}
		if v.GetName() != fmt.Sprintf("%s/cryptoKeyVersions/%d", key, i) || v.GetState() != kmspb.CryptoKeyVersion_ENABLED {
			t.Fatalf("CreateCryptoKeyVersion: %v", v)
		}
	}
	d := digestOf(crypto.SHA256, []byte("m"))
	sig, err := c.AsymmetricSign(tctx(t), &kmspb.AsymmetricSignRequest{Name: key + "/cryptoKeyVersions/2", Digest: d})
	if err != nil {
		t.Fatal(err)
	}
	if verify(publicKey(t, c, key+"/cryptoKeyVersions/2"), crypto.SHA256, false, digestBytes(d), sig.GetSignature()) != nil {
		t.Fatal("version 2 signature does not verify with version 2's key")
	}
	if verify(publicKey(t, c, key+"/cryptoKeyVersions/1"), crypto.SHA256, false, digestBytes(d), sig.GetSignature()) == nil {
		t.Fatal("version 2 signature verifies with version 1's key")
	}

	var pages [][]string
	token := ""
	for {
		it := c.ListCryptoKeyVersions(tctx(t), &kmspb.ListCryptoKeyVersionsRequest{Parent: key})
		var page []*kmspb.CryptoKeyVersion
		next, err := iterator.NewPager(it, 2, token).NextPage(&page)
		if err != nil {
			t.Fatal(err)
		}
		if it.Response.(*kmspb.ListCryptoKeyVersionsResponse).GetTotalSize() != 3 {
			t.Fatalf("total_size %d", it.Response.(*kmspb.ListCryptoKeyVersionsResponse).GetTotalSize())
		}
		var names []string
		for _, v := range page {
			names = append(names, v.GetName()[len(key)+1:])
		}
		pages = append(pages, names)
		if token = next; token == "" {
			break
		}
	}
	if fmt.Sprint(pages) != "[[cryptoKeyVersions/1 cryptoKeyVersions/2] [cryptoKeyVersions/3]]" {
		t.Fatalf("version pages %v", pages)
	}
	_, err = c.ListCryptoKeyVersions(tctx(t), &kmspb.ListCryptoKeyVersionsRequest{Parent: key, Filter: "state=ENABLED"}).Next()
	wantCode(t, "ListCryptoKeyVersions filter", err, codes.Unimplemented)
	_, err = c.ListCryptoKeyVersions(tctx(t), &kmspb.ListCryptoKeyVersionsRequest{Parent: ring + "/cryptoKeys/nope"}).Next()
	wantCode(t, "ListCryptoKeyVersions unknown key", err, codes.NotFound)

	mustKey(t, c, ring, "another", kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256)
	var keys []string
	it := c.ListCryptoKeys(tctx(t), &kmspb.ListCryptoKeysRequest{Parent: ring, PageSize: 1})
	for {
		k, err := it.Next()
		if err == iterator.Done {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.GetName()[len(ring)+1:])
	}
	if fmt.Sprint(keys) != "[cryptoKeys/another cryptoKeys/jwt]" {
		t.Fatalf("keys %v", keys)
	}
	rit := c.ListKeyRings(tctx(t), &kmspb.ListKeyRingsRequest{Parent: loc})
	if r, err := rit.Next(); err != nil || r.GetName() != ring {
		t.Fatalf("ListKeyRings: %v, %v", r, err)
	}

	// Public key formats.
	v1 := key + "/cryptoKeyVersions/1"
	der, err := c.GetPublicKey(tctx(t), &kmspb.GetPublicKeyRequest{Name: v1, PublicKeyFormat: kmspb.PublicKey_DER})
	if err != nil {
		t.Fatal(err)
	}
	if der.GetPublicKeyFormat() != kmspb.PublicKey_DER || der.GetPublicKey().GetCrc32CChecksum().GetValue() != crc(der.GetPublicKey().GetData()) {
		t.Fatalf("DER public key: %v", der)
	}
	if p, err := x509.ParsePKIXPublicKey(der.GetPublicKey().GetData()); err != nil || !p.(*ecdsa.PublicKey).Equal(publicKey(t, c, v1)) {
		t.Fatalf("DER public key does not match the PEM one: %v", err)
	}
	_, err = c.GetPublicKey(tctx(t), &kmspb.GetPublicKeyRequest{Name: v1, PublicKeyFormat: kmspb.PublicKey_NIST_PQC})
	wantCode(t, "NIST_PQC format", err, codes.InvalidArgument)
}

// TestErrors: the service's codes for bad requests.
func TestErrors(t *testing.T) {
	_, c := start(t, Options{})
	ring := mustRing(t, c, "errs")
	key := mustKey(t, c, ring, "ec", kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256).GetName()
	v1 := key + "/cryptoKeyVersions/1"
	sum := sha256.Sum256([]byte("x"))
	sum384 := sha512.Sum384([]byte("x"))

	_, err := c.CreateKeyRing(tctx(t), &kmspb.CreateKeyRingRequest{Parent: loc, KeyRingId: "errs", KeyRing: &kmspb.KeyRing{}})
	wantCode(t, "duplicate ring", err, codes.AlreadyExists)
	_, err = c.CreateKeyRing(tctx(t), &kmspb.CreateKeyRingRequest{Parent: loc, KeyRingId: "bad.id", KeyRing: &kmspb.KeyRing{}})
	wantCode(t, "bad ring id", err, codes.InvalidArgument)
	_, err = c.CreateKeyRing(tctx(t), &kmspb.CreateKeyRingRequest{Parent: "projects/kf-emu", KeyRingId: "r", KeyRing: &kmspb.KeyRing{}})
	wantCode(t, "bad ring parent", err, codes.InvalidArgument)

	for _, tc := range []struct {
		what string
		req  *kmspb.CreateCryptoKeyRequest
		want codes.Code
	}{
		{"duplicate key", signKeyReq(ring, "ec", kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256), codes.AlreadyExists},
		{"unknown ring", signKeyReq(loc+"/keyRings/nope", "k", kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256), codes.NotFound},
		{"bad key id", signKeyReq(ring, strings.Repeat("k", 64), kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256), codes.InvalidArgument},
		{"no algorithm", signKeyReq(ring, "k", kmspb.CryptoKeyVersion_CRYPTO_KEY_VERSION_ALGORITHM_UNSPECIFIED), codes.InvalidArgument},
		{"symmetric algorithm", signKeyReq(ring, "k", kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION), codes.InvalidArgument},
		{"Ed25519", signKeyReq(ring, "k", kmspb.CryptoKeyVersion_EC_SIGN_ED25519), codes.Unimplemented},
		{"encrypt purpose", &kmspb.CreateCryptoKeyRequest{Parent: ring, CryptoKeyId: "k", CryptoKey: &kmspb.CryptoKey{
			Purpose: kmspb.CryptoKey_ENCRYPT_DECRYPT}}, codes.Unimplemented},
		{"no purpose", &kmspb.CreateCryptoKeyRequest{Parent: ring, CryptoKeyId: "k", CryptoKey: &kmspb.CryptoKey{}}, codes.InvalidArgument},
		{"rotation", func() *kmspb.CreateCryptoKeyRequest {
			r := signKeyReq(ring, "k", kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256)
			r.CryptoKey.RotationSchedule = &kmspb.CryptoKey_RotationPeriod{RotationPeriod: durationpb.New(90 * 24 * time.Hour)}
			return r
		}(), codes.InvalidArgument},
	} {
		_, err := c.CreateCryptoKey(tctx(t), tc.req)
		wantCode(t, tc.what, err, tc.want)
	}

	for _, tc := range []struct {
		what string
		req  *kmspb.AsymmetricSignRequest
		want codes.Code
	}{
		{"short digest", &kmspb.AsymmetricSignRequest{Name: v1, Digest: &kmspb.Digest{Digest: &kmspb.Digest_Sha256{Sha256: sum[:31]}}}, codes.InvalidArgument},
		{"long digest", &kmspb.AsymmetricSignRequest{Name: v1, Digest: &kmspb.Digest{Digest: &kmspb.Digest_Sha256{Sha256: append(sum[:], 0)}}}, codes.InvalidArgument},
		{"digest of another hash", &kmspb.AsymmetricSignRequest{Name: v1, Digest: &kmspb.Digest{Digest: &kmspb.Digest_Sha384{Sha384: sum384[:]}}}, codes.InvalidArgument},
		{"no digest", &kmspb.AsymmetricSignRequest{Name: v1}, codes.InvalidArgument},
		{"data", &kmspb.AsymmetricSignRequest{Name: v1, Data: []byte("x")}, codes.InvalidArgument},
		{"bad digest crc", &kmspb.AsymmetricSignRequest{Name: v1, Digest: &kmspb.Digest{Digest: &kmspb.Digest_Sha256{Sha256: sum[:]}},
			DigestCrc32C: wrapperspb.Int64(crc(sum[:]) ^ 1)}, codes.InvalidArgument},
		{"unknown key", &kmspb.AsymmetricSignRequest{Name: ring + "/cryptoKeys/nope/cryptoKeyVersions/1",
			Digest: &kmspb.Digest{Digest: &kmspb.Digest_Sha256{Sha256: sum[:]}}}, codes.NotFound},
		{"unknown version", &kmspb.AsymmetricSignRequest{Name: key + "/cryptoKeyVersions/2",
			Digest: &kmspb.Digest{Digest: &kmspb.Digest_Sha256{Sha256: sum[:]}}}, codes.NotFound},
		{"key name, not version", &kmspb.AsymmetricSignRequest{Name: key,
			Digest: &kmspb.Digest{Digest: &kmspb.Digest_Sha256{Sha256: sum[:]}}}, codes.InvalidArgument},
	} {
		_, err := c.AsymmetricSign(tctx(t), tc.req)
		wantCode(t, tc.what, err, tc.want)
	}

	_, err = c.GetPublicKey(tctx(t), &kmspb.GetPublicKeyRequest{Name: ring + "/cryptoKeys/nope/cryptoKeyVersions/1"})
	wantCode(t, "GetPublicKey unknown key", err, codes.NotFound)
	_, err = c.GetCryptoKey(tctx(t), &kmspb.GetCryptoKeyRequest{Name: ring + "/cryptoKeys/nope"})
	wantCode(t, "GetCryptoKey unknown", err, codes.NotFound)
	_, err = c.GetCryptoKeyVersion(tctx(t), &kmspb.GetCryptoKeyVersionRequest{Name: key + "/cryptoKeyVersions/0"})
	wantCode(t, "GetCryptoKeyVersion 0", err, codes.InvalidArgument)
	_, err = c.GetKeyRing(tctx(t), &kmspb.GetKeyRingRequest{Name: loc + "/keyRings/nope"})
	wantCode(t, "GetKeyRing unknown", err, codes.NotFound)
	_, err = c.Encrypt(tctx(t), &kmspb.EncryptRequest{Name: key, Plaintext: []byte("x")})
	wantCode(t, "Encrypt", err, codes.Unimplemented)
}

// TestFaultLayerAndInterceptors: the fault layer counts and throttles, interceptors see what passes.
func TestFaultLayerAndInterceptors(t *testing.T) {
	layer := fault.New(1, 5)
	var mu sync.Mutex
	var seen []string
	record := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		mu.Lock()
		seen = append(seen, info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:])
		mu.Unlock()
		return h(ctx, req)
	}
	s, c := start(t, Options{Fault: layer, Interceptors: []grpc.UnaryServerInterceptor{record}})
	if s.Fault() != layer || !strings.HasPrefix(s.Addr(), "127.0.0.1:") {
		t.Fatalf("Fault/Addr: %p %q", s.Fault(), s.Addr())
	}
	ring := mustRing(t, c, "f")
	v1 := mustKey(t, c, ring, "k", kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256).GetName() + "/cryptoKeyVersions/1"
	d := digestOf(crypto.SHA256, []byte("f"))
	if _, err := c.AsymmetricSign(tctx(t), &kmspb.AsymmetricSignRequest{Name: v1, Digest: d}); err != nil {
		t.Fatal(err)
	}
	if n := layer.Count("kms:AsymmetricSign"); n != 1 {
		t.Fatalf("AsymmetricSign counted %d times: %v", n, layer.Calls())
	}
	layer.SetRules(fault.Rule{API: "kms:AsymmetricSign", Throttle: 1})
	_, err := c.AsymmetricSign(tctx(t), &kmspb.AsymmetricSignRequest{Name: v1, Digest: d})
	wantCode(t, "throttled sign", err, codes.ResourceExhausted)
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(seen) != "[CreateKeyRing CreateCryptoKey AsymmetricSign]" {
		t.Fatalf("interceptor saw %v", seen)
	}
}
