package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestGenerateKey(t *testing.T) {
	for _, kt := range KeyTypes {
		t.Run(kt, func(t *testing.T) {
			k, err := GenerateKey(kt)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := KeyTypeOf(k.Public()); got != kt {
				t.Errorf("KeyTypeOf = %q, %v", got, err)
			}
		})
	}
	for _, bad := range []string{"", "ed25519", "rsa-1024", "EC-P256"} {
		if _, err := GenerateKey(bad); err == nil || !strings.Contains(err.Error(), "supported: ec-p256") {
			t.Errorf("GenerateKey(%q): err = %v", bad, err)
		}
	}
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if _, err := KeyTypeOf(p521.Public()); err == nil {
		t.Error("KeyTypeOf accepted P-521")
	}
}

func TestLoadFileSigner(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	dir := t.TempDir()
	ecKey, _ := GenerateKey(KeyECP256)
	pkcs8, err := MarshalPrivateKeyPEM(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	ecRaw, _ := x509.MarshalECPrivateKey(ecKey.(*ecdsa.PrivateKey))
	sec1 := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecRaw})
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})
	rsaPKCS8, _ := MarshalPrivateKeyPEM(rsaKey)
	corrupt := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("definitely not DER")})

	cases := []struct {
		name    string
		data    []byte
		mode    os.FileMode
		wantErr string
	}{
		{"pkcs8 ec 0600", pkcs8, 0o600, ""},
		{"pkcs8 rsa 0400", rsaPKCS8, 0o400, ""},
		{"group readable", pkcs8, 0o640, "has mode 0640: group/others can read or modify it"},
		{"world readable", pkcs8, 0o644, "has mode 0644"},
		{"others only", pkcs8, 0o604, "has mode 0604"},
		{"group writable", pkcs8, 0o620, "has mode 0620"},
		{"sec1 refused", sec1, 0o600, `"EC PRIVATE KEY" PEM block; keyferry expects PKCS#8`},
		{"pkcs1 refused", pkcs1, 0o600, "openssl pkcs8 -topk8 -nocrypt"},
		{"encrypted", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}), 0o600, "is encrypted"},
		{"certificate", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), 0o600, `"CERTIFICATE" is not a private key`},
		{"not PEM", []byte("hello"), 0o600, "no PEM block"},
		{"corrupt DER", corrupt, 0o600, "parse PRIVATE KEY"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, "key"+string(rune('a'+i))+".pem")
			if err := os.WriteFile(path, c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, c.mode); err != nil {
				t.Fatal(err)
			}
			s, err := LoadFileSigner(path)
			if c.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if s.Public() == nil {
					t.Fatal("no public key")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v, want %q", err, c.wantErr)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error does not name the file: %v", err)
			}
			assertNoKeyMaterial(t, err, c.data)
		})
	}
	if _, err := LoadFileSigner(filepath.Join(dir, "missing.pem")); err == nil {
		t.Error("missing file accepted")
	}
	if _, err := LoadFileSigner(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: err = %v", err)
	}
}

// assertNoKeyMaterial fails if err quotes any line of the PEM body of key (or the whole DER in hex).
func assertNoKeyMaterial(t *testing.T, err error, keyPEM []byte) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	rest := keyPEM
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		body := pem.EncodeToMemory(&pem.Block{Type: "X", Bytes: blk.Bytes})
		for _, line := range strings.Split(string(body), "\n") {
			if len(line) >= 16 && !strings.HasPrefix(line, "-----") && strings.Contains(msg, line) {
				t.Fatalf("error contains key material %q: %v", line, err)
			}
		}
		if len(blk.Bytes) >= 8 && strings.Contains(msg, string(blk.Bytes)) {
			t.Fatalf("error contains raw key bytes: %v", err)
		}
	}
}
