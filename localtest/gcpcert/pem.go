package gcpcert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"

	"cloud.google.com/go/certificatemanager/apiv1/certificatemanagerpb"
)

// material is a validated self-managed certificate: the chain (leaf first), the chain re-encoded as PEM
// (CERTIFICATE blocks only) and the leaf's private key re-encoded as PKCS#8 PEM.
type material struct {
	chain    []*x509.Certificate
	chainPEM string
	keyPEM   string
}

// parseSelfManaged checks an uploaded certificate the way the emulator documents (see the package doc):
// PEM certificates, leaf first, each signed by the next; one unencrypted RSA (2048 to 4096 bits) or ECDSA
// (P-256, P-384) private key matching the leaf.
func parseSelfManaged(sm *certificatemanagerpb.Certificate_SelfManagedCertificate) (*material, error) {
	if strings.TrimSpace(sm.GetPemCertificate()) == "" {
		return nil, invalid("self_managed.pem_certificate is required")
	}
	if strings.TrimSpace(sm.GetPemPrivateKey()) == "" {
		return nil, invalid("self_managed.pem_private_key is required")
	}
	chain, err := parseChain(sm.GetPemCertificate())
	if err != nil {
		return nil, err
	}
	key, err := parseKey(sm.GetPemPrivateKey())
	if err != nil {
		return nil, err
	}
	leaf := chain[0]
	pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return nil, invalid("self_managed.pem_private_key does not match the leaf certificate (the first certificate of pem_certificate)")
	}
	for i := 0; i+1 < len(chain); i++ {
		if err := chain[i].CheckSignatureFrom(chain[i+1]); err != nil {
			return nil, invalid("self_managed.pem_certificate: certificate %d (%s) is not issued by certificate %d (%s): "+
				"the chain must be in order, leaf first, then each issuer: %v",
				i+1, chain[i].Subject, i+2, chain[i+1].Subject, err)
		}
	}

	var b strings.Builder
	for _, c := range chain {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, invalid("self_managed.pem_private_key: %v", err)
	}
	return &material{
		chain:    chain,
		chainPEM: b.String(),
		keyPEM:   string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
	}, nil
}

func parseChain(s string) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	rest := []byte(s)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, invalid("self_managed.pem_certificate: unexpected PEM block %q: only CERTIFICATE blocks are allowed", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, invalid("self_managed.pem_certificate: certificate %d cannot be parsed: %v", len(chain)+1, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, invalid("self_managed.pem_certificate holds no PEM-encoded certificate")
	}
	return chain, nil
}

func parseKey(s string) (crypto.Signer, error) {
	var key crypto.Signer
	rest := []byte(s)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type == "EC PARAMETERS" { // openssl ecparam -genkey writes them before the key
			continue
		}
		if key != nil {
			return nil, invalid("self_managed.pem_private_key must hold exactly one private key")
		}
		if block.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") {
			return nil, invalid("self_managed.pem_private_key is encrypted: upload it unencrypted")
		}
		var parsed any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			parsed, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			parsed, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			parsed, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			return nil, invalid("self_managed.pem_private_key: unexpected PEM block %q: want PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY", block.Type)
		}
		if err != nil {
			return nil, invalid("self_managed.pem_private_key cannot be parsed: %v", err)
		}
		switch k := parsed.(type) {
		case *rsa.PrivateKey:
			if bits := k.N.BitLen(); bits < 2048 || bits > 4096 {
				return nil, invalid("self_managed.pem_private_key: RSA keys must have 2048 to 4096 bits, this one has %d", bits)
			}
			key = k
		case *ecdsa.PrivateKey:
			if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
				return nil, invalid("self_managed.pem_private_key: ECDSA keys must be on P-256 or P-384, this one is on %s", k.Curve.Params().Name)
			}
			key = k
		default:
			return nil, invalid("self_managed.pem_private_key: unsupported key type %T: want RSA or ECDSA", parsed)
		}
	}
	if key == nil {
		return nil, invalid("self_managed.pem_private_key holds no PEM-encoded private key")
	}
	return key, nil
}
