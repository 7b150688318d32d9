package kmssigner

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"strings"
	"testing"
)

func TestECDSARawToDER(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("x"))
	r, s, err := ecdsa.Sign(rand.Reader, priv, d[:])
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 64)
	r.FillBytes(raw[:32])
	s.FillBytes(raw[32:])
	small := make([]byte, 64) // r = 1, s = 1: leading zero bytes stay numbers, not padding
	small[31], small[63] = 1, 1
	cases := []struct {
		name   string
		sig    []byte
		size   int
		verify bool
		want   string
	}{
		{"valid", raw, 32, true, ""},
		{"leading zeros", small, 32, false, ""},
		{"short", raw[:63], 32, false, "63 bytes, want r||s of 64"},
		{"other curve size", raw, 48, false, "want r||s of 96"},
		{"zero", make([]byte, 64), 32, false, "r or s zero"},
	}
	for _, c := range cases {
		der, err := ecdsaRawToDER(c.sig, c.size)
		if c.want != "" {
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: %v, want %q", c.name, err, c.want)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if c.verify && !ecdsa.VerifyASN1(&priv.PublicKey, d[:], der) {
			t.Errorf("%s: the DER signature does not verify", c.name)
		}
		if c.name == "leading zeros" && string(der) != "\x30\x06\x02\x01\x01\x02\x01\x01" { // SEQUENCE { INTEGER 1, INTEGER 1 }
			t.Errorf("%s: DER %x", c.name, der)
		}
	}
}

func TestPSSOptions(t *testing.T) {
	cases := []struct {
		opts    crypto.SignerOpts
		wantPSS bool
		wantErr string
	}{
		{crypto.SHA256, false, ""},
		{&rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: rsa.PSSSaltLengthEqualsHash}, true, ""},
		{&rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: 32}, true, ""},
		{&rsa.PSSOptions{Hash: crypto.SHA384, SaltLength: 32}, true, "(48 bytes), not 32 bytes"},
		{&rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: rsa.PSSSaltLengthAuto}, true, "longest possible salt"},
	}
	for i, c := range cases {
		pss, err := pssOptions(c.opts, c.opts.HashFunc(), "KMS")
		if pss != c.wantPSS || (c.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.wantErr)) {
			t.Errorf("case %d: %v %v, want %v %q", i, pss, err, c.wantPSS, c.wantErr)
		}
	}
}
