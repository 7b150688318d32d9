package azkv

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"software.sslmate.com/src/go-pkcs12"
)

// certClient returns an azcertificates client for the vault, with tokens minted by the issuer.
func (e *env) certClient(t *testing.T, perCall ...policy.Policy) *azcertificates.Client {
	t.Helper()
	c, err := azcertificates.NewClient(e.srv.URL(), mintCred{e.iss, nil}, &azcertificates.ClientOptions{
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

// testCert is a certificate with its private key, and the chain above it (CA last).
type testCert struct {
	key   crypto.Signer
	leaf  *x509.Certificate
	chain []*x509.Certificate
}

// newTestCA returns a self-signed EC CA.
func newTestCA(t *testing.T) testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "keyferry test CA"},
		NotBefore: time.Now().Add(-time.Hour).Truncate(time.Second), NotAfter: time.Now().Add(24 * time.Hour).Truncate(time.Second),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return testCert{key: key, leaf: c}
}

// issue returns a leaf for key (nil: a new RSA 2048 key) signed by ca.
func (ca testCert) issue(t *testing.T, cn string, key crypto.Signer) testCert {
	t.Helper()
	if key == nil {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn, Organization: []string{"keyferry"}},
		DNSNames: []string{cn}, NotBefore: time.Now().Add(-time.Hour).Truncate(time.Second),
		NotAfter: time.Now().Add(365 * 24 * time.Hour).Truncate(time.Second),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.leaf, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return testCert{key: key, leaf: c, chain: []*x509.Certificate{ca.leaf}}
}

func (c testCert) pfx(t *testing.T, password string) string {
	t.Helper()
	der, err := pkcs12.Modern.Encode(c.key, c.leaf, c.chain, password)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

func (c testCert) pem(t *testing.T) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(c.key)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.leaf.Raw})
	for _, ca := range c.chain {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
	}
	_ = pem.Encode(&b, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	return b.String()
}

func pemPolicy() *azcertificates.CertificatePolicy {
	return &azcertificates.CertificatePolicy{SecretProperties: &azcertificates.SecretProperties{ContentType: ptr(ContentTypePEM)}}
}

func importCert(t *testing.T, c *azcertificates.Client, name string, p azcertificates.ImportCertificateParameters) azcertificates.Certificate {
	t.Helper()
	resp, err := c.ImportCertificate(ctxT(t), name, p, nil)
	if err != nil {
		t.Fatalf("ImportCertificate(%q): %v", name, err)
	}
	return resp.Certificate
}

func TestImportPFXAndGet(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.certClient(t)
	ca := newTestCA(t)
	tc := ca.issue(t, "app.example.test", nil)

	got := importCert(t, c, "app-tls", azcertificates.ImportCertificateParameters{
		Base64EncodedCertificate: ptr(tc.pfx(t, "hunter2")), Password: ptr("hunter2"),
		Tags: map[string]*string{"env": ptr("test")}})
	if e.srv.StatusCount(http.StatusUnauthorized) != 1 {
		t.Fatalf("401 challenges = %d, want 1", e.srv.StatusCount(http.StatusUnauthorized))
	}
	v1 := got.ID.Version()
	if !versionID.MatchString(v1) || got.ID.Name() != "app-tls" {
		t.Fatalf("id %q", *got.ID)
	}
	if !bytes.Equal(got.CER, tc.leaf.Raw) {
		t.Fatal("cer is not the DER of the imported leaf")
	}
	thumb := sha1.Sum(tc.leaf.Raw)
	if !bytes.Equal(got.X509Thumbprint, thumb[:]) {
		t.Fatal("x5t is not the SHA-1 thumbprint of the leaf")
	}
	if got.KID.Version() != v1 || got.SID.Version() != v1 || !strings.Contains(string(*got.KID), "/keys/app-tls/") ||
		!strings.Contains(string(*got.SID), "/secrets/app-tls/") {
		t.Fatalf("kid %q sid %q: want the key and secret of the same name and version", *got.KID, *got.SID)
	}
	a := got.Attributes
	if !*a.Enabled || !a.NotBefore.Equal(tc.leaf.NotBefore) || !a.Expires.Equal(tc.leaf.NotAfter) || a.Created == nil ||
		a.Updated == nil || *a.RecoveryLevel != "Recoverable+Purgeable" {
		t.Fatalf("attributes %+v", *a)
	}
	pol := got.Policy
	if pol == nil || *pol.SecretProperties.ContentType != ContentTypePKCS12 || *pol.KeyProperties.KeyType != azcertificates.KeyTypeRSA ||
		*pol.KeyProperties.KeySize != 2048 || *pol.X509CertificateProperties.Subject != tc.leaf.Subject.String() ||
		*pol.X509CertificateProperties.SubjectAlternativeNames.DNSNames[0] != "app.example.test" || *pol.IssuerParameters.Name != "Unknown" {
		t.Fatalf("policy %+v", pol)
	}
	if *got.Tags["env"] != "test" {
		t.Fatalf("tags %v", got.Tags)
	}

	// The same leaf comes back, latest and by version; the policy has its own endpoint.
	for _, ver := range []string{"", v1} {
		g, err := c.GetCertificate(ctxT(t), "APP-TLS", ver, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(g.CER, tc.leaf.Raw) || g.ID.Version() != v1 || *g.Tags["env"] != "test" {
			t.Fatalf("GetCertificate(%q): version %q", ver, g.ID.Version())
		}
	}
	gp, err := c.GetCertificatePolicy(ctxT(t), "app-tls", nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(*gp.ID) != e.srv.URL()+"/certificates/app-tls/policy" || *gp.SecretProperties.ContentType != ContentTypePKCS12 {
		t.Fatalf("policy id %q", *gp.ID)
	}

	// The managed secret: a password-less PKCS#12 with the private key and the chain.
	sc := e.client(t, mintCred{e.iss, nil})
	sec, err := sc.GetSecret(ctxT(t), "app-tls", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *sec.ContentType != ContentTypePKCS12 || sec.Managed == nil || !*sec.Managed || sec.KID == nil || sec.KID.Version() != v1 ||
		sec.ID.Version() != v1 {
		t.Fatalf("secret: contentType %v managed %v kid %v", sec.ContentType, sec.Managed, sec.KID)
	}
	raw, err := base64.StdEncoding.DecodeString(*sec.Value)
	if err != nil {
		t.Fatal(err)
	}
	key, leaf, cas, err := pkcs12.DecodeChain(raw, "")
	if err != nil {
		t.Fatalf("the secret is not a password-less PKCS#12: %v", err)
	}
	if !tc.key.(*rsa.PrivateKey).Equal(key) || !leaf.Equal(tc.leaf) || len(cas) != 1 || !cas[0].Equal(ca.leaf) {
		t.Fatal("the secret does not hold the certificate's private key, leaf and chain")
	}

	// The secret is the certificate's: it cannot be set or deleted directly.
	_, err = sc.SetSecret(ctxT(t), "app-tls", azsecrets.SetSecretParameters{Value: ptr("overwrite")}, nil)
	respErr(t, err, 409, "Conflict")
	if msg := errMessage(t, err); !strings.Contains(msg, "managed by the certificate app-tls") {
		t.Fatalf("message %q", msg)
	}
	_, err = sc.DeleteSecret(ctxT(t), "app-tls", nil)
	respErr(t, err, 409, "Conflict")

	// A second version from a password-less PFX; versions listed.
	v2 := importCert(t, c, "app-tls", azcertificates.ImportCertificateParameters{
		Base64EncodedCertificate: ptr(tc.pfx(t, ""))}).ID.Version()
	if v2 == v1 {
		t.Fatal("the second import did not create a new version")
	}
	var listed []string
	for pager := c.NewListCertificatePropertiesVersionsPager("app-tls", nil); pager.More(); {
		pg, err := pager.NextPage(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pg.Value {
			listed = append(listed, p.ID.Version())
			if !bytes.Equal(p.X509Thumbprint, thumb[:]) {
				t.Fatal("version item without the thumbprint")
			}
		}
	}
	if want := slices.Sorted(slices.Values([]string{v1, v2})); !slices.Equal(listed, want) {
		t.Fatalf("versions %v, want %v", listed, want)
	}
	if sec, err := sc.GetSecret(ctxT(t), "app-tls", "", nil); err != nil || sec.ID.Version() != v2 {
		t.Fatalf("the secret did not follow the certificate's new version: %v", err)
	}

	// A wrong password is refused.
	_, err = c.ImportCertificate(ctxT(t), "app-tls", azcertificates.ImportCertificateParameters{
		Base64EncodedCertificate: ptr(tc.pfx(t, "hunter2")), Password: ptr("wrong")}, nil)
	respErr(t, err, 400, "BadParameter")
	if msg := errMessage(t, err); !strings.Contains(msg, "password") {
		t.Fatalf("message %q", msg)
	}
}

func TestImportPEM(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.certClient(t)
	ca := newTestCA(t)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tc := ca.issue(t, "pem.example.test", ecKey)

	got := importCert(t, c, "pem-cert", azcertificates.ImportCertificateParameters{
		Base64EncodedCertificate: ptr(tc.pem(t)), CertificatePolicy: pemPolicy()})
	if !bytes.Equal(got.CER, tc.leaf.Raw) {
		t.Fatal("cer is not the DER of the imported leaf")
	}
	if *got.Policy.SecretProperties.ContentType != ContentTypePEM || *got.Policy.KeyProperties.KeyType != azcertificates.KeyTypeEC ||
		*got.Policy.KeyProperties.Curve != azcertificates.CurveNameP256 {
		t.Fatalf("policy key props %+v", *got.Policy.KeyProperties)
	}

	// The managed secret holds the PEM, private key first.
	sec, err := e.client(t, mintCred{e.iss, nil}).GetSecret(ctxT(t), "pem-cert", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *sec.ContentType != ContentTypePEM || !*sec.Managed {
		t.Fatalf("secret contentType %q", *sec.ContentType)
	}
	block, rest := pem.Decode([]byte(*sec.Value))
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("the secret does not start with the PKCS#8 private key:\n%s", *sec.Value)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil || !ecKey.Equal(key) {
		t.Fatalf("the secret's private key is not the certificate's: %v", err)
	}
	if block, _ = pem.Decode(rest); block == nil || !bytes.Equal(block.Bytes, tc.leaf.Raw) {
		t.Fatal("the secret's first certificate is not the leaf")
	}

	// The managed key signs with the certificate's key; only the public half is served.
	kc := e.keyClient(t)
	k, err := kc.GetKey(ctxT(t), "pem-cert", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if k.Managed == nil || !*k.Managed || k.Key.D != nil || k.Key.KID.Version() != got.ID.Version() {
		t.Fatalf("managed key: managed %v, private part %v", k.Managed, k.Key.D != nil)
	}
	digest := sha256.Sum256([]byte("signed by the certificate's key"))
	sig, err := kc.Sign(ctxT(t), "pem-cert", "", azkeys.SignParameters{Algorithm: ptr(azkeys.SignatureAlgorithmES256), Value: digest[:]}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !verifyJOSE(t, tc.leaf.PublicKey, "ES256", digest[:], sig.Result) {
		t.Fatal("the managed key's signature does not verify against the certificate's public key")
	}

	// The certificate's key is the certificate's: it cannot be re-created or deleted directly.
	_, err = kc.CreateKey(ctxT(t), "pem-cert", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC)}, nil)
	respErr(t, err, 409, "Conflict")
	_, err = kc.DeleteKey(ctxT(t), "pem-cert", nil)
	respErr(t, err, 409, "Conflict")

	// PEM content may also come base64-encoded (as the Python and .NET SDKs send it).
	v2 := importCert(t, c, "pem-cert", azcertificates.ImportCertificateParameters{
		Base64EncodedCertificate: ptr(base64.StdEncoding.EncodeToString([]byte(tc.pem(t)))), CertificatePolicy: pemPolicy()})
	if !bytes.Equal(v2.CER, tc.leaf.Raw) || v2.ID.Version() == got.ID.Version() {
		t.Fatal("base64-encoded PEM: not imported as a new version of the same certificate")
	}

	// Only PKCS#8 keys are accepted in PEM, as in the service.
	der, _ := x509.MarshalECPrivateKey(ecKey)
	sec1 := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tc.leaf.Raw})) +
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	_, err = c.ImportCertificate(ctxT(t), "sec1", azcertificates.ImportCertificateParameters{
		Base64EncodedCertificate: &sec1, CertificatePolicy: pemPolicy()}, nil)
	respErr(t, err, 400, "BadParameter")
	if msg := errMessage(t, err); !strings.Contains(msg, "PKCS#8") {
		t.Fatalf("message %q", msg)
	}
	// PEM content without the PEM content type is not base64 PKCS#12.
	_, err = c.ImportCertificate(ctxT(t), "no-content-type", azcertificates.ImportCertificateParameters{
		Base64EncodedCertificate: ptr(tc.pem(t))}, nil)
	respErr(t, err, 400, "BadParameter")
}

func TestImportKeyMismatch(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.certClient(t)
	ca := newTestCA(t)
	tc := ca.issue(t, "mismatch.example.test", nil)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	wrong := testCert{key: other, leaf: tc.leaf, chain: tc.chain}

	_, err = c.ImportCertificate(ctxT(t), "mismatch", azcertificates.ImportCertificateParameters{
		Base64EncodedCertificate: ptr(wrong.pem(t)), CertificatePolicy: pemPolicy()}, nil)
	respErr(t, err, 400, "BadParameter")
	if msg := errMessage(t, err); !strings.Contains(msg, "private key does not match the certificate") {
		t.Fatalf("message %q", msg)
	}
	_, err = c.ImportCertificate(ctxT(t), "mismatch", azcertificates.ImportCertificateParameters{
		Base64EncodedCertificate: ptr(wrong.pfx(t, ""))}, nil)
	respErr(t, err, 400, "BadParameter")
	if msg := errMessage(t, err); !strings.Contains(msg, "private key does not match the certificate") {
		t.Fatalf("message %q", msg)
	}
	// A PEM without any private key, and a policy naming another key type.
	_, err = c.ImportCertificate(ctxT(t), "mismatch", azcertificates.ImportCertificateParameters{
		Base64EncodedCertificate: ptr(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tc.leaf.Raw}))),
		CertificatePolicy:        pemPolicy()}, nil)
	respErr(t, err, 400, "BadParameter")
	pol := pemPolicy()
	pol.KeyProperties = &azcertificates.KeyProperties{KeyType: ptr(azcertificates.KeyTypeEC)}
	_, err = c.ImportCertificate(ctxT(t), "mismatch", azcertificates.ImportCertificateParameters{
		Base64EncodedCertificate: ptr(tc.pem(t)), CertificatePolicy: pol}, nil)
	respErr(t, err, 400, "BadParameter")

	// Nothing was stored by the refused imports.
	_, err = c.GetCertificate(ctxT(t), "mismatch", "", nil)
	respErr(t, err, 404, "CertificateNotFound")
	_, err = e.client(t, mintCred{e.iss, nil}).GetSecret(ctxT(t), "mismatch", "", nil)
	respErr(t, err, 404, "SecretNotFound")
}

func TestCertificateNotFound(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.certClient(t)
	tc := newTestCA(t).issue(t, "nf.example.test", nil)
	importCert(t, c, "present", azcertificates.ImportCertificateParameters{Base64EncodedCertificate: ptr(tc.pfx(t, ""))})

	_, err := c.GetCertificate(ctxT(t), "present", strings.Repeat("0", 32), nil)
	respErr(t, err, 404, "CertificateNotFound")
	if msg := errMessage(t, err); !strings.Contains(msg, "A certificate with (name/id) present/"+strings.Repeat("0", 32)+" was not found") {
		t.Fatalf("message %q", msg)
	}
	_, err = c.GetCertificate(ctxT(t), "absent", "", nil)
	respErr(t, err, 404, "CertificateNotFound")
	_, err = c.GetCertificatePolicy(ctxT(t), "absent", nil)
	respErr(t, err, 404, "CertificateNotFound")
	_, err = c.NewListCertificatePropertiesVersionsPager("absent", nil).NextPage(ctxT(t))
	respErr(t, err, 404, "CertificateNotFound")
	_, err = c.UpdateCertificate(ctxT(t), "present", strings.Repeat("1", 32), azcertificates.UpdateCertificateParameters{}, nil)
	respErr(t, err, 404, "CertificateNotFound")
	_, err = c.DeleteCertificate(ctxT(t), "absent", nil)
	respErr(t, err, 404, "CertificateNotFound")
	_, err = c.GetDeletedCertificate(ctxT(t), "present", nil)
	respErr(t, err, 404, "CertificateNotFound")
}

func TestCertificatesChallenge(t *testing.T) {
	e := newEnv(t, Options{})
	want := `Bearer authorization="` + e.iss.Authority() + `", resource="https://vault.azure.net"`
	for _, rq := range []struct{ method, path string }{
		{http.MethodGet, "/certificates?api-version=7.5"},
		{http.MethodPost, "/certificates/x/import?api-version=7.6"},
		{http.MethodGet, "/deletedcertificates/x?api-version=7.6"},
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
}

func TestCertificateUpdate(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.certClient(t)
	tc := newTestCA(t).issue(t, "upd.example.test", nil)
	v := importCert(t, c, "upd", azcertificates.ImportCertificateParameters{Base64EncodedCertificate: ptr(tc.pfx(t, ""))}).ID.Version()

	up, err := c.UpdateCertificate(ctxT(t), "upd", "", azcertificates.UpdateCertificateParameters{
		Tags: map[string]*string{"owner": ptr("sec")}, CertificateAttributes: &azcertificates.CertificateAttributes{Enabled: ptr(false)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if up.ID.Version() != v || *up.Attributes.Enabled || *up.Tags["owner"] != "sec" || !bytes.Equal(up.CER, tc.leaf.Raw) {
		t.Fatalf("update answer: version %q enabled %v tags %v", up.ID.Version(), *up.Attributes.Enabled, up.Tags)
	}
	// Disabling the certificate disables its secret and key.
	sc := e.client(t, mintCred{e.iss, nil})
	_, err = sc.GetSecret(ctxT(t), "upd", "", nil)
	if inner := respErr(t, err, 403, "Forbidden"); inner != "SecretDisabled" {
		t.Fatalf("inner %q", inner)
	}
	_, err = e.keyClient(t).GetKey(ctxT(t), "upd", "", nil)
	if inner := respErr(t, err, 403, "Forbidden"); inner != "KeyDisabled" {
		t.Fatalf("inner %q", inner)
	}
	if _, err := c.UpdateCertificate(ctxT(t), "upd", v, azcertificates.UpdateCertificateParameters{
		CertificateAttributes: &azcertificates.CertificateAttributes{Enabled: ptr(true)}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.GetSecret(ctxT(t), "upd", v, nil); err != nil {
		t.Fatalf("re-enabled: %v", err)
	}
	var items int
	for pager := c.NewListCertificatePropertiesPager(nil); pager.More(); {
		pg, err := pager.NextPage(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pg.Value {
			items++
			if *p.Tags["owner"] != "sec" || p.ID.Version() != "" || p.Attributes.RecoveryLevel != nil {
				t.Fatalf("list item %q: tags %v, recoveryLevel %v", *p.ID, p.Tags, p.Attributes.RecoveryLevel)
			}
		}
	}
	if items != 1 {
		t.Fatalf("%d list items", items)
	}
}

func TestCertificateListPaging(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.certClient(t)
	pfx := newTestCA(t).issue(t, "paging.example.test", nil).pfx(t, "")
	var want []string
	for i := 0; i < 30; i++ {
		n := fmt.Sprintf("cert-%02d", i)
		want = append(want, n)
		importCert(t, c, n, azcertificates.ImportCertificateParameters{Base64EncodedCertificate: &pfx})
	}
	collect := func(c *azcertificates.Client) (names []string, pages []int) {
		for pager := c.NewListCertificatePropertiesPager(nil); pager.More(); {
			pg, err := pager.NextPage(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			pages = append(pages, len(pg.Value))
			for _, p := range pg.Value {
				names = append(names, p.ID.Name())
			}
		}
		return names, pages
	}
	names, pages := collect(c)
	if !slices.Equal(names, want) || !slices.Equal(pages, []int{25, 5}) {
		t.Fatalf("default paging: pages %v names %v", pages, names)
	}
	names, pages = collect(e.certClient(t, maxResults(7)))
	if !slices.Equal(names, want) || !slices.Equal(pages, []int{7, 7, 7, 7, 2}) {
		t.Fatalf("maxresults=7: pages %v names %v", pages, names)
	}

	var created []string
	for i := 0; i < 3; i++ {
		created = append(created, importCert(t, c, "many", azcertificates.ImportCertificateParameters{Base64EncodedCertificate: &pfx}).ID.Version())
	}
	var listed []string
	var versionPages int
	for pager := e.certClient(t, maxResults(2)).NewListCertificatePropertiesVersionsPager("many", nil); pager.More(); {
		pg, err := pager.NextPage(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		versionPages++
		for _, p := range pg.Value {
			listed = append(listed, p.ID.Version())
		}
	}
	if !slices.Equal(listed, slices.Sorted(slices.Values(created))) || versionPages != 2 {
		t.Fatalf("versions %v in %d pages, want %v sorted in 2", listed, versionPages, created)
	}
	if resp, body := e.raw(t, http.MethodGet, "/certificates?api-version=7.5&maxresults=26"); resp.StatusCode != 400 {
		t.Fatalf("maxresults=26: HTTP %d %s", resp.StatusCode, body)
	}
}

// TestCertificateSoftDelete walks delete → recover → delete → purge; the certificate's secret and key
// follow it.
func TestCertificateSoftDelete(t *testing.T) {
	const delay = 200 * time.Millisecond
	e := newEnv(t, Options{TransitionDelay: delay, RecoverableDays: 7})
	c := e.certClient(t)
	sc := e.client(t, mintCred{e.iss, nil})
	kc := e.keyClient(t)
	pfx := newTestCA(t).issue(t, "doomed.example.test", nil).pfx(t, "")
	v1 := importCert(t, c, "doomed-cert", azcertificates.ImportCertificateParameters{Base64EncodedCertificate: &pfx}).ID.Version()

	del, err := c.DeleteCertificate(ctxT(t), "doomed-cert", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *del.RecoveryID != e.srv.URL()+"/deletedcertificates/doomed-cert" || del.ID.Version() != v1 ||
		del.ScheduledPurgeDate.Sub(*del.DeletedDate) != 7*24*time.Hour {
		t.Fatalf("delete answer: recoveryId %v id %v", *del.RecoveryID, *del.ID)
	}
	_, err = c.GetCertificate(ctxT(t), "doomed-cert", "", nil)
	respErr(t, err, 404, "CertificateNotFound")
	_, err = sc.GetSecret(ctxT(t), "doomed-cert", "", nil)
	respErr(t, err, 404, "SecretNotFound")
	_, err = kc.GetKey(ctxT(t), "doomed-cert", "", nil)
	respErr(t, err, 404, "KeyNotFound")
	_, err = c.ImportCertificate(ctxT(t), "doomed-cert", azcertificates.ImportCertificateParameters{Base64EncodedCertificate: &pfx}, nil)
	if inner := respErr(t, err, 409, "Conflict"); inner != "ObjectIsBeingDeleted" {
		t.Fatalf("import while deleting: inner %q", inner)
	}

	time.Sleep(delay)
	dc, err := c.GetDeletedCertificate(ctxT(t), "doomed-cert", nil)
	if err != nil || !bytes.Equal(dc.CER, del.CER) {
		t.Fatalf("GetDeletedCertificate: %v", err)
	}
	var deleted []string
	for pager := c.NewListDeletedCertificatePropertiesPager(nil); pager.More(); {
		pg, err := pager.NextPage(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pg.Value {
			deleted = append(deleted, p.ID.Name())
		}
	}
	if !slices.Equal(deleted, []string{"doomed-cert"}) {
		t.Fatalf("deleted list %v", deleted)
	}
	if _, err := sc.GetDeletedSecret(ctxT(t), "doomed-cert", nil); err != nil {
		t.Fatalf("the certificate's secret is not soft-deleted with it: %v", err)
	}
	_, err = c.ImportCertificate(ctxT(t), "doomed-cert", azcertificates.ImportCertificateParameters{Base64EncodedCertificate: &pfx}, nil)
	if inner := respErr(t, err, 409, "Conflict"); inner != "ObjectIsDeletedButRecoverable" {
		t.Fatalf("import to a soft-deleted name: inner %q", inner)
	}

	// Recover brings back the certificate, its secret and its key.
	if _, err := c.RecoverDeletedCertificate(ctxT(t), "doomed-cert", nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(delay)
	if g, err := c.GetCertificate(ctxT(t), "doomed-cert", "", nil); err != nil || g.ID.Version() != v1 {
		t.Fatalf("after recover: %v", err)
	}
	if _, err := sc.GetSecret(ctxT(t), "doomed-cert", "", nil); err != nil {
		t.Fatalf("secret after recover: %v", err)
	}
	if _, err := kc.GetKey(ctxT(t), "doomed-cert", "", nil); err != nil {
		t.Fatalf("key after recover: %v", err)
	}

	// Delete again and purge: everything goes.
	if _, err := c.DeleteCertificate(ctxT(t), "doomed-cert", nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(delay)
	if _, err := c.PurgeDeletedCertificate(ctxT(t), "doomed-cert", nil); err != nil {
		t.Fatalf("purge: %v", err)
	}
	time.Sleep(delay)
	_, err = c.GetDeletedCertificate(ctxT(t), "doomed-cert", nil)
	respErr(t, err, 404, "CertificateNotFound")
	_, err = sc.GetDeletedSecret(ctxT(t), "doomed-cert", nil)
	respErr(t, err, 404, "SecretNotFound")
	_, err = kc.GetDeletedKey(ctxT(t), "doomed-cert", nil)
	respErr(t, err, 404, "KeyNotFound")
	reborn := importCert(t, c, "doomed-cert", azcertificates.ImportCertificateParameters{Base64EncodedCertificate: &pfx})
	if reborn.ID.Version() == v1 {
		t.Fatal("the purged certificate came back")
	}
	_, err = c.GetCertificate(ctxT(t), "doomed-cert", v1, nil)
	respErr(t, err, 404, "CertificateNotFound")
}

func TestImportOverUnmanagedSecret(t *testing.T) {
	e := newEnv(t, Options{})
	set(t, e.client(t, mintCred{e.iss, nil}), "taken", "plain secret", azsecrets.SetSecretParameters{})
	pfx := newTestCA(t).issue(t, "taken.example.test", nil).pfx(t, "")
	_, err := e.certClient(t).ImportCertificate(ctxT(t), "taken", azcertificates.ImportCertificateParameters{Base64EncodedCertificate: &pfx}, nil)
	respErr(t, err, 409, "Conflict")
}

func TestCertificateRBAC(t *testing.T) {
	e := newEnv(t, Options{Authorize: func(p Principal, action string) bool { return action != ActionImportCertificate }})
	pfx := newTestCA(t).issue(t, "rbac.example.test", nil).pfx(t, "")
	_, err := e.certClient(t).ImportCertificate(ctxT(t), "rbac", azcertificates.ImportCertificateParameters{Base64EncodedCertificate: &pfx}, nil)
	if inner := respErr(t, err, 403, "Forbidden"); inner != "ForbiddenByRbac" {
		t.Fatalf("inner %q", inner)
	}
	if msg := errMessage(t, err); !strings.Contains(msg, "Action: '"+ActionImportCertificate+"'") {
		t.Fatalf("message %q", msg)
	}
}
