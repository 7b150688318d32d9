package certmgr_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	certificatemanager "cloud.google.com/go/certificatemanager/apiv1"
	"cloud.google.com/go/certificatemanager/apiv1/certificatemanagerpb"
	cloudkms "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/keyferry/keyferry/core/certmgr"
	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/pki"
	"github.com/keyferry/keyferry/core/pki/kmssigner"
	"github.com/keyferry/keyferry/localtest/azkv"
	"github.com/keyferry/keyferry/localtest/gcp"
	"github.com/keyferry/keyferry/localtest/gcpcert"
	"github.com/keyferry/keyferry/localtest/gcpkms"
	"github.com/keyferry/keyferry/localtest/moto"
	"github.com/keyferry/keyferry/localtest/oidc"
)

// localClouds are the emulators of the three clouds, shared by the subtests of TestKMSHeldIntermediate.
type localClouds struct {
	moto   *moto.Server
	iss    *oidc.Issuer
	kv     *azkv.Server
	kvCA   string // the Key Vault emulator's CA, as a file
	sm     *gcp.SecretManager
	cm     *gcpcert.Server
	gkms   *gcpkms.Server
	kmsCli *cloudkms.KeyManagementClient
}

func startLocalClouds(t *testing.T, ctx context.Context) *localClouds {
	t.Helper()
	lc := &localClouds{}
	var err error
	if lc.moto, err = moto.Start(ctx, moto.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lc.moto.Stop() })
	if lc.iss, err = oidc.Start(oidc.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lc.iss.Close() })
	if lc.kv, err = azkv.Start(azkv.Options{Issuer: lc.iss}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lc.kv.Close() })
	lc.kvCA = filepath.Join(t.TempDir(), "kv-ca.pem")
	if err := os.WriteFile(lc.kvCA, lc.kv.CACertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if lc.sm, err = gcp.StartSecretManager(gcp.SecretManagerOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lc.sm.Stop)
	if lc.cm, err = gcpcert.Start(gcpcert.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lc.cm.Stop)
	if lc.gkms, err = gcpkms.Start(gcpkms.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lc.gkms.Stop)
	if lc.kmsCli, err = cloudkms.NewKeyManagementClient(ctx, lc.gkms.ClientOptions()...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lc.kmsCli.Close() })

	// The default clients find the local cloud as the functions do: AWS through the SDK's environment
	// (moto takes any key), Azure through the managed-identity endpoint of the local issuer.
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": moto.AccessKeyID, "AWS_SECRET_ACCESS_KEY": moto.SecretAccessKey,
		"AWS_SESSION_TOKEN": "", "AWS_PROFILE": "", "AWS_CONFIG_FILE": os.DevNull, "AWS_SHARED_CREDENTIALS_FILE": os.DevNull,
		"AWS_EC2_METADATA_DISABLED": "true", "KEYFERRY_HOME": "local"} {
		t.Setenv(k, v)
	}
	for k, v := range lc.iss.ManagedIdentityEnv() {
		t.Setenv(k, v)
	}
	return lc
}

// kmsCA is a local root and an intermediate whose key is held by a KMS (signer), written to files.
func kmsCA(t *testing.T, dir string, signer crypto.Signer) (root *x509.Certificate, interFile, rootFile string) {
	t.Helper()
	ctx := context.Background()
	rootPEM, rootKeyPEM, err := pki.InitRoot(ctx, pki.RootOptions{CommonName: "keyferry kms test root", KeyType: pki.KeyECP256})
	if err != nil {
		t.Fatal(err)
	}
	root, _ = pki.ParseCertificatePEM(rootPEM)
	rootKey, _ := pki.ParsePrivateKeyPEM(rootKeyPEM)
	csr, err := pki.NewCSR(signer, "keyferry kms intermediate")
	if err != nil {
		t.Fatalf("the intermediate's request, signed by the KMS: %v", err)
	}
	interPEM, err := pki.SignIntermediate(ctx, root, rootKey, csr, pki.IntermediateOptions{PermittedDNSDomains: []string{"svc.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	interFile, rootFile = filepath.Join(dir, "intermediate.pem"), filepath.Join(dir, "root.pem")
	for f, data := range map[string][]byte{interFile: interPEM, rootFile: rootPEM} {
		if err := os.WriteFile(f, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root, interFile, rootFile
}

// verifyCopy checks one target's copy: the leaf is the one issued, it verifies to root through the
// chain it came with, and (when the target hands it back) its key matches it.
func verifyCopy(t *testing.T, where string, root *x509.Certificate, serial string, leaf *x509.Certificate, chain []*x509.Certificate, key crypto.PublicKey) {
	t.Helper()
	if got := pki.FormatSerial(leaf.SerialNumber); got != serial {
		t.Errorf("%s holds serial %s, want the one issued, %s", where, got, serial)
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	for _, c := range chain {
		inters.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: leaf.DNSNames[0], Roots: roots, Intermediates: inters}); err != nil {
		t.Errorf("%s: the certificate does not verify to the root: %v", where, err)
	}
	if key != nil && !leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(key) {
		t.Errorf("%s: the private key does not match the certificate", where)
	}
}

// TestKMSHeldIntermediate issues one certificate with the builtin CA whose intermediate key never leaves
// a KMS — AWS KMS on moto, an Azure Key Vault key on the emulator, a Cloud KMS key version on the
// emulator — through the configuration and the default clients, and checks that it lands in AWS Secrets
// Manager, ACM, Azure Key Vault certificates, GCP Secret Manager and GCP Certificate Manager, each copy
// verifying to the root with crypto/x509 and (where the target returns it) with its key matching.
func TestKMSHeldIntermediate(t *testing.T) {
	ctx := tctx(t)
	lc := startLocalClouds(t, ctx)

	kvAdmin, err := azkeys.NewClient(lc.kv.URL(), mintCred{lc.iss}, &azkeys.ClientOptions{
		ClientOptions: policy.ClientOptions{Transport: lc.kv.HTTPClient()}, DisableChallengeResourceVerification: true})
	if err != nil {
		t.Fatal(err)
	}
	awsKMS := kms.NewFromConfig(moto.Config(lc.moto.URL))

	cases := []struct {
		spec string
		// key creates the intermediate's key in its KMS and returns a signer for it (to sign the
		// intermediate's request) and the issuer key's YAML.
		key func(t *testing.T) (crypto.Signer, string)
	}{
		{"api-aws", func(t *testing.T) (crypto.Signer, string) {
			k, err := awsKMS.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: kmstypes.KeySpecEccNistP256, KeyUsage: kmstypes.KeyUsageTypeSignVerify})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := awsKMS.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/keyferry-ca"), TargetKeyId: k.KeyMetadata.KeyId}); err != nil {
				t.Fatal(err)
			}
			s, err := kmssigner.NewAWS(ctx, awsKMS, "alias/keyferry-ca")
			if err != nil {
				t.Fatal(err)
			}
			return s, fmt.Sprintf(`{aws_kms: {key_id: alias/keyferry-ca, region: us-east-1, local: true, endpoint: "%s"}}`, lc.moto.URL)
		}},
		{"api-azure", func(t *testing.T) (crypto.Signer, string) {
			if _, err := kvAdmin.CreateKey(ctx, "keyferry-ca", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeRSA), KeySize: ptr(int32(2048))}, nil); err != nil {
				t.Fatal(err)
			}
			s, err := kmssigner.NewAzure(ctx, kvAdmin, "keyferry-ca", "")
			if err != nil {
				t.Fatal(err)
			}
			return s, fmt.Sprintf(`{azure_key_vault: {vault: "%s", key: keyferry-ca, local: true, ca_file: %s}}`, lc.kv.URL(), lc.kvCA)
		}},
		{"api-gcp", func(t *testing.T) (crypto.Signer, string) {
			const loc = "projects/kf-test/locations/global"
			if _, err := lc.kmsCli.CreateKeyRing(ctx, &kmspb.CreateKeyRingRequest{Parent: loc, KeyRingId: "keyferry", KeyRing: &kmspb.KeyRing{}}); err != nil {
				t.Fatal(err)
			}
			key, err := lc.kmsCli.CreateCryptoKey(ctx, &kmspb.CreateCryptoKeyRequest{Parent: loc + "/keyRings/keyferry", CryptoKeyId: "ca",
				CryptoKey: &kmspb.CryptoKey{Purpose: kmspb.CryptoKey_ASYMMETRIC_SIGN,
					VersionTemplate: &kmspb.CryptoKeyVersionTemplate{Algorithm: kmspb.CryptoKeyVersion_EC_SIGN_P384_SHA384}}})
			if err != nil {
				t.Fatal(err)
			}
			version := key.GetName() + "/cryptoKeyVersions/1"
			s, err := kmssigner.NewGCP(ctx, lc.kmsCli, version)
			if err != nil {
				t.Fatal(err)
			}
			return s, fmt.Sprintf(`{gcp_kms: {key_version: %s, local: true, endpoint: "http://%s"}}`, version, lc.gkms.Addr())
		}},
	}
	for _, c := range cases {
		t.Run(c.spec, func(t *testing.T) {
			dir := t.TempDir()
			signer, keyYAML := c.key(t)
			root, interFile, rootFile := kmsCA(t, dir, signer)
			cfg, sts := loadConfig(t, dir, fmt.Sprintf(`stores:
  aws: {type: aws-secretsmanager, region: us-east-1, local: true, endpoint: "%[1]s"}
  gcp: {type: gcp-secretmanager, project: kf-test, local: true, endpoint: "http://%[2]s"}
certificates:
  issuer:
    builtin: {certificate: %[3]s, chain: %[4]s, key: %[5]s}
  policy: {allowed_domains: ["*.svc.example.com"], max_ttl: 720h, key_types: [ec-p256]}
  specs:
    - name: %[6]s
      common_name: %[6]s.svc.example.com # moto refuses an ACM import without a subject CN
      dns: [%[6]s.svc.example.com]
      ttl: 72h
      targets:
        - {store: aws, name: certs/%[6]s}
        - {acm: {region: us-east-1, local: true, endpoint: "%[1]s"}}
        - {keyvault: {vault: "%[7]s", local: true, ca_file: %[8]s}}
        - {store: gcp, name: certs-%[6]s}
        - {certificate_manager: {project: kf-test, local: true, endpoint: "http://%[9]s"}}
  inventory: {stores: []}
`, lc.moto.URL, lc.sm.Addr(), interFile, rootFile, keyYAML, c.spec, lc.kv.URL(), lc.kvCA, lc.cm.Addr()))
			logger, logs := logBuffer()
			m, err := certmgr.New(cfg, sts, certmgr.Options{Logger: logger, Backoff: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = m.Close() })
			res, err := m.Renew(ctx)
			if err != nil || len(res) != 1 || !res[0].Issued || res[0].Count(certmgr.ActWritten) != 5 {
				t.Fatalf("renewal: %v %+v", err, res)
			}
			serial := res[0].Serial

			// AWS Secrets Manager and GCP Secret Manager: the bundle JSON (bundleIn checks its key).
			for _, s := range []struct{ store, name string }{{"aws", "certs/" + c.spec}, {"gcp", "certs-" + c.spec}} {
				doc, _, leaf := bundleIn(t, sts[s.store], s.name)
				chain, err := pki.ParseCertificatesPEM([]byte(doc.Chain))
				if err != nil {
					t.Fatal(err)
				}
				verifyCopy(t, s.store+" "+s.name, root, serial, leaf, chain, nil)
			}

			// ACM: the certificate and chain it serves (moto appends a CA of its own to the chain; ACM
			// never hands an imported key back).
			acmc := acm.NewFromConfig(moto.Config(lc.moto.URL))
			arn := res[0].Targets[1].ID
			got, err := acmc.GetCertificate(ctx, &acm.GetCertificateInput{CertificateArn: aws.String(arn)})
			if err != nil {
				t.Fatal(err)
			}
			leaf, err := pki.ParseCertificatePEM([]byte(aws.ToString(got.Certificate)))
			if err != nil {
				t.Fatal(err)
			}
			chain, _ := pki.ParseCertificatesPEM([]byte(aws.ToString(got.CertificateChain)))
			verifyCopy(t, "acm "+arn, root, serial, leaf, chain, nil)

			// Azure Key Vault: the certificate, and the PKCS#12 in its backing secret (key, leaf, chain).
			kvCerts, err := azcertificates.NewClient(lc.kv.URL(), mintCred{lc.iss}, &azcertificates.ClientOptions{
				ClientOptions: policy.ClientOptions{Transport: lc.kv.HTTPClient()}, DisableChallengeResourceVerification: true})
			if err != nil {
				t.Fatal(err)
			}
			kvc, err := kvCerts.GetCertificate(ctx, c.spec, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			kvSecrets, err := azsecrets.NewClient(lc.kv.URL(), mintCred{lc.iss}, &azsecrets.ClientOptions{
				ClientOptions: policy.ClientOptions{Transport: lc.kv.HTTPClient()}, DisableChallengeResourceVerification: true})
			if err != nil {
				t.Fatal(err)
			}
			sec, err := kvSecrets.GetSecret(ctx, c.spec, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := base64.StdEncoding.DecodeString(*sec.Value)
			if err != nil {
				t.Fatal(err)
			}
			key, leaf, chain, err := pkcs12.DecodeChain(raw, "")
			if err != nil {
				t.Fatal(err)
			}
			if !leaf.Equal(mustCert(t, kvc.CER)) {
				t.Error("the Key Vault certificate and its backing secret hold different leaves")
			}
			verifyCopy(t, "keyvault "+c.spec, root, serial, leaf, chain, key.(crypto.Signer).Public())

			// GCP Certificate Manager: the PEM chain it serves, and the key it holds (the emulator's TLS
			// pair is built from both and refuses a key that does not match).
			cmc, err := certificatemanager.NewClient(ctx, lc.cm.ClientOptions()...)
			if err != nil {
				t.Fatal(err)
			}
			defer cmc.Close()
			name := "projects/kf-test/locations/global/certificates/" + c.spec
			cmCert, err := cmc.GetCertificate(ctx, &certificatemanagerpb.GetCertificateRequest{Name: name})
			if err != nil {
				t.Fatal(err)
			}
			certs, err := pki.ParseCertificatesPEM([]byte(cmCert.GetPemCertificate()))
			if err != nil || len(certs) < 2 {
				t.Fatalf("Certificate Manager PEM: %v (%d certificates)", err, len(certs))
			}
			pair, err := lc.cm.TLSCertificate(name)
			if err != nil {
				t.Fatalf("Certificate Manager key pair: %v", err)
			}
			verifyCopy(t, "certificate-manager "+name, root, serial, certs[0], certs[1:], pair.PrivateKey.(crypto.Signer).Public())

			// The leaf was signed by the KMS-held key: the intermediate's public key is the KMS key's.
			if !certs[1].PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(signer.Public()) {
				t.Error("the chain's intermediate is not the KMS-held key's")
			}
			noKeyMaterial(t, "the logs", logs.String())
			if strings.Contains(logs.String(), "level=ERROR") {
				t.Errorf("errors logged:\n%s", logs.String())
			}
		})
	}
}

// TestKMSIssuerKeyRefused: an issuer key the KMS cannot provide fails the run with a message
// naming the key and what the KMS answered.
func TestKMSIssuerKeyRefused(t *testing.T) {
	ctx := tctx(t)
	iss, err := oidc.Start(oidc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = iss.Close() })
	kv, err := azkv.Start(azkv.Options{Issuer: iss})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kv.Close() })
	gk, err := gcpkms.Start(gcpkms.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gk.Stop)
	kc, err := cloudkms.NewKeyManagementClient(ctx, gk.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kc.Close() })
	const loc = "projects/kf-test/locations/global"
	if _, err := kc.CreateKeyRing(ctx, &kmspb.CreateKeyRingRequest{Parent: loc, KeyRingId: "r", KeyRing: &kmspb.KeyRing{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.CreateCryptoKey(ctx, &kmspb.CreateCryptoKeyRequest{Parent: loc + "/keyRings/r", CryptoKeyId: "pss",
		CryptoKey: &kmspb.CryptoKey{Purpose: kmspb.CryptoKey_ASYMMETRIC_SIGN,
			VersionTemplate: &kmspb.CryptoKeyVersionTemplate{Algorithm: kmspb.CryptoKeyVersion_RSA_SIGN_PSS_2048_SHA256}}}); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(kv.URL(), "https://")
	for _, c := range []struct {
		name, key string
		want      []string
	}{
		{"key vault key missing", fmt.Sprintf(`{azure_key_vault: {vault: "%s", key: missing-key, local: true}}`, kv.URL()),
			[]string{"builtin issuer: kmssigner: Key Vault key missing-key in " + host, "GetKey: Key Vault answered HTTP 404 KeyNotFound"}},
		{"cloud kms pss key", fmt.Sprintf(`{gcp_kms: {key_version: %s/keyRings/r/cryptoKeys/pss/cryptoKeyVersions/1, local: true, endpoint: "http://%s"}}`, loc, gk.Addr()),
			[]string{"is RSA_SIGN_PSS_2048_SHA256: the builtin CA signs RSA certificates with PKCS #1 v1.5"}},
		{"cloud kms version missing", fmt.Sprintf(`{gcp_kms: {key_version: %s/keyRings/r/cryptoKeys/pss/cryptoKeyVersions/7, local: true, endpoint: "http://%s"}}`, loc, gk.Addr()),
			[]string{"Cloud KMS key version " + loc + "/keyRings/r/cryptoKeys/pss/cryptoKeyVersions/7: GetPublicKey: Cloud KMS answered NotFound"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			ca := newCA(t, dir)
			cfg, sts := loadConfig(t, dir, fmt.Sprintf(`stores:
  local: {type: file, path: secrets}
certificates:
  issuer:
    builtin: {certificate: %s, chain: %s, key: %s}
  policy: {allowed_domains: ["*.svc.example.com"], max_ttl: 720h, key_types: [ec-p256]}
  specs:
    - {name: api, dns: api.svc.example.com, targets: [local]}
`, ca.interFile, ca.rootFile, c.key))
			m, err := certmgr.New(cfg, sts, certmgr.Options{Backoff: time.Millisecond, Clients: certmgr.Clients{
				KeyVaultKeys: func(_ context.Context, k *config.KeyVaultKey) (*azkeys.Client, error) {
					return azkeys.NewClient(k.Vault, mintCred{iss}, &azkeys.ClientOptions{
						ClientOptions: policy.ClientOptions{Transport: kv.HTTPClient()}, DisableChallengeResourceVerification: true})
				}}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = m.Close() })
			res, err := m.Renew(ctx)
			if err == nil || len(res) != 1 || res[0].Issued || !res[0].Failed() {
				t.Fatalf("renewal with a bad issuer key: %v %+v", err, res)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v\nwant it to say %q", err, w)
				}
			}
		})
	}
}

func mustCert(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ptr[T any](v T) *T { return &v }
