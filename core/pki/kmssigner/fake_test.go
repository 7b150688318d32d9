package kmssigner

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/keyferry/keyferry/core/pki"
)

// kmsFake is an in-process AWS KMS (JSON 1.1 protocol, GetPublicKey and Sign only) that implements
// MessageType DIGEST as AWS does: it signs the digest it is given, and RSA-PSS uses a salt as long as
// the hash. It refuses RAW messages, so a signer that does not send DIGEST fails.
type kmsFake struct {
	mu   sync.Mutex
	keys map[string]fakeKey // by key ARN and alias
}

type fakeKey struct {
	arn  string
	spec types.KeySpec
	priv crypto.Signer
	algs []types.SigningAlgorithmSpec
}

func newKMSFake(t *testing.T) (*kmsFake, string) {
	f := &kmsFake{keys: map[string]fakeKey{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func (f *kmsFake) addKey(t *testing.T, alias string, spec types.KeySpec) {
	t.Helper()
	var (
		priv crypto.Signer
		err  error
		algs []types.SigningAlgorithmSpec
	)
	switch spec {
	case types.KeySpecEccNistP256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		algs = []types.SigningAlgorithmSpec{types.SigningAlgorithmSpecEcdsaSha256}
	case types.KeySpecEccNistP384:
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		algs = []types.SigningAlgorithmSpec{types.SigningAlgorithmSpecEcdsaSha384}
	case types.KeySpecEccNistP521:
		priv, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
		algs = []types.SigningAlgorithmSpec{types.SigningAlgorithmSpecEcdsaSha512}
	case types.KeySpecRsa2048, types.KeySpecRsa3072:
		priv, err = rsa.GenerateKey(rand.Reader, rsaBits(spec))
		algs = []types.SigningAlgorithmSpec{
			types.SigningAlgorithmSpecRsassaPssSha256, types.SigningAlgorithmSpecRsassaPssSha384, types.SigningAlgorithmSpecRsassaPssSha512,
			types.SigningAlgorithmSpecRsassaPkcs1V15Sha256, types.SigningAlgorithmSpecRsassaPkcs1V15Sha384, types.SigningAlgorithmSpecRsassaPkcs1V15Sha512,
		}
	default:
		t.Fatalf("fake: unsupported spec %s", spec)
	}
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	arn := fmt.Sprintf("arn:aws:kms:us-east-1:123456789012:key/%08d-fake", len(f.keys))
	k := fakeKey{arn: arn, spec: spec, priv: priv, algs: algs}
	f.keys[arn], f.keys[alias] = k, k
}

func (f *kmsFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var in struct {
		KeyId            string
		Message          []byte
		MessageType      string
		SigningAlgorithm string
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		fakeErr(w, "ValidationException", err.Error())
		return
	}
	f.mu.Lock()
	k, ok := f.keys[in.KeyId]
	f.mu.Unlock()
	if !ok {
		fakeErr(w, "NotFoundException", "Key '"+in.KeyId+"' does not exist")
		return
	}
	switch op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "TrentService."); op {
	case "GetPublicKey":
		der, _ := x509.MarshalPKIXPublicKey(k.priv.Public())
		fakeOK(w, map[string]any{"KeyId": k.arn, "KeySpec": k.spec, "KeyUsage": "SIGN_VERIFY", "PublicKey": der, "SigningAlgorithms": k.algs})
	case "Sign":
		if in.MessageType != "DIGEST" {
			fakeErr(w, "ValidationException", "fake: only MessageType DIGEST is implemented")
			return
		}
		alg := types.SigningAlgorithmSpec(in.SigningAlgorithm)
		if !slices.Contains(k.algs, alg) {
			fakeErr(w, "InvalidKeyUsageException", "algorithm "+in.SigningAlgorithm+" is not valid for "+string(k.spec))
			return
		}
		h := map[string]crypto.Hash{"256": crypto.SHA256, "384": crypto.SHA384, "512": crypto.SHA512}[in.SigningAlgorithm[len(in.SigningAlgorithm)-3:]]
		if len(in.Message) != h.Size() {
			fakeErr(w, "ValidationException", "digest length does not match the signing algorithm")
			return
		}
		var opts crypto.SignerOpts = h
		if strings.HasPrefix(in.SigningAlgorithm, "RSASSA_PSS") {
			opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: h}
		}
		sig, err := k.priv.Sign(rand.Reader, in.Message, opts)
		if err != nil {
			fakeErr(w, "KMSInternalException", err.Error())
			return
		}
		fakeOK(w, map[string]any{"KeyId": k.arn, "Signature": sig, "SigningAlgorithm": alg})
	default:
		fakeErr(w, "UnsupportedOperationException", op)
	}
}

func fakeOK(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(v)
}

func fakeErr(w http.ResponseWriter, typ, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
}

// TestAWSIssuesThroughKMSFake runs the full CA path with the intermediate key held by KMS (the real SDK
// client, talking to a fake with AWS's DIGEST semantics): CSR, intermediate under a local root, leaf,
// crypto/x509 verification with name constraints.
func TestAWSIssuesThroughKMSFake(t *testing.T) {
	ctx := context.Background()
	fake, url := newKMSFake(t)
	for _, spec := range []types.KeySpec{types.KeySpecEccNistP256, types.KeySpecEccNistP384, types.KeySpecEccNistP521, types.KeySpecRsa2048} {
		t.Run(string(spec), func(t *testing.T) {
			alias := "alias/inter-" + strings.ToLower(string(spec))
			fake.addKey(t, alias, spec)
			client, rec := newClient(url)
			signer, err := NewAWS(ctx, client, alias)
			if err != nil {
				t.Fatal(err)
			}
			csr, err := pki.NewCSR(signer, "kms intermediate")
			issueThroughSigner(t, signer, csr, err)
			if n := rec.count("GetPublicKey"); n != 1 {
				t.Errorf("GetPublicKey called %d times, want once", n)
			}
			if n := rec.count("Sign"); n != 3 { // CSR, leaf, and nothing for the refused leaf
				t.Errorf("Sign called %d times, want 3", n)
			}
			if in := rec.lastSign(); in.MessageType != types.MessageTypeDigest || !strings.HasPrefix(*in.KeyId, "arn:") {
				t.Errorf("last Sign: %s on %s", in.MessageType, *in.KeyId)
			}
		})
	}

	// RSA-PSS: a certificate whose template asks for SHA256WithRSAPSS is signed with RSASSA_PSS_SHA_256.
	t.Run("RSA_2048 PSS", func(t *testing.T) {
		fake.addKey(t, "alias/pss", types.KeySpecRsa2048)
		client, rec := newClient(url)
		signer, err := NewAWS(ctx, client, "alias/pss")
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pss"},
			NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
			SignatureAlgorithm: x509.SHA256WithRSAPSS,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
		if err != nil {
			t.Fatal(err)
		}
		cert, _ := x509.ParseCertificate(der)
		if err := cert.CheckSignatureFrom(cert); err != nil || cert.SignatureAlgorithm != x509.SHA256WithRSAPSS {
			t.Fatalf("%s: %v", cert.SignatureAlgorithm, err)
		}
		if in := rec.lastSign(); in.SigningAlgorithm != types.SigningAlgorithmSpecRsassaPssSha256 {
			t.Errorf("SigningAlgorithm %s", in.SigningAlgorithm)
		}
	})
}

func TestAlgorithm(t *testing.T) {
	ec256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	pss := func(h crypto.Hash, salt int) *rsa.PSSOptions { return &rsa.PSSOptions{Hash: h, SaltLength: salt} }
	cases := []struct {
		spec    types.KeySpec
		pub     crypto.PublicKey
		algs    []types.SigningAlgorithmSpec
		opts    crypto.SignerOpts
		want    types.SigningAlgorithmSpec
		wantErr string
	}{
		{types.KeySpecEccNistP256, ec256.Public(), nil, crypto.SHA256, types.SigningAlgorithmSpecEcdsaSha256, ""},
		{types.KeySpecEccNistP256, ec256.Public(), nil, crypto.SHA384, "", "signs SHA-256 digests only, not SHA-384"},
		{types.KeySpecEccNistP384, ec384.Public(), nil, crypto.SHA384, types.SigningAlgorithmSpecEcdsaSha384, ""},
		{types.KeySpecEccNistP256, ec256.Public(), nil, crypto.Hash(0), "", "not unhashed messages"},
		{types.KeySpecEccNistP256, ec256.Public(), nil, nil, "", "nil SignerOpts"},
		{types.KeySpecRsa2048, rsaKey.Public(), nil, crypto.SHA256, types.SigningAlgorithmSpecRsassaPkcs1V15Sha256, ""},
		{types.KeySpecRsa2048, rsaKey.Public(), nil, crypto.SHA384, types.SigningAlgorithmSpecRsassaPkcs1V15Sha384, ""},
		{types.KeySpecRsa2048, rsaKey.Public(), nil, crypto.SHA512, types.SigningAlgorithmSpecRsassaPkcs1V15Sha512, ""},
		{types.KeySpecRsa2048, rsaKey.Public(), nil, pss(crypto.SHA256, rsa.PSSSaltLengthEqualsHash), types.SigningAlgorithmSpecRsassaPssSha256, ""},
		{types.KeySpecRsa2048, rsaKey.Public(), nil, pss(crypto.SHA256, rsa.PSSSaltLengthAuto), "", "not the longest possible salt"},
		{types.KeySpecRsa2048, rsaKey.Public(), nil, pss(crypto.SHA384, 48), types.SigningAlgorithmSpecRsassaPssSha384, ""},
		{types.KeySpecRsa2048, rsaKey.Public(), nil, pss(crypto.SHA256, 20), "", "salt as long as the hash"},
		{types.KeySpecRsa2048, rsaKey.Public(), nil, pss(crypto.Hash(0), 0), "", "not unhashed messages"},
		{types.KeySpecRsa2048, rsaKey.Public(), nil, crypto.SHA1, "", "not SHA-1"},
		{types.KeySpecRsa2048, rsaKey.Public(), []types.SigningAlgorithmSpec{types.SigningAlgorithmSpecRsassaPssSha256}, crypto.SHA256, "", "does not support RSASSA_PKCS1_V1_5_SHA_256"},
	}
	for _, c := range cases {
		s := &AWSSigner{keyID: "k", spec: c.spec, pub: c.pub, algs: c.algs}
		got, err := s.Algorithm(c.opts)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s %v: err = %v, want %q", c.spec, c.opts, err, c.wantErr)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s %v: %s, %v; want %s", c.spec, c.opts, got, err, c.want)
		}
	}
}
