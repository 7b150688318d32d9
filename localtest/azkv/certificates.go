package azkv

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// The certificates API: certificates are imported (PKCS#12 or PEM, with their private key) and, as in the
// service, each version of a certificate is backed by a secret and a key of the same name and version
// id. The secret holds the certificate with its private key (a password-less PKCS#12 in base64, or PEM)
// and answers GetSecret with managed=true; the key (keys.go) signs with the certificate's private key.
// Both are written only through the certificate: setting or deleting the secret directly is refused with
// 409 Conflict, and deleting, recovering or purging the certificate does the same to them.
//
// Certificate creation through an issuer (create, pending operations), issuers, contacts, policy updates
// and backup/restore answer 501.

// Content types of a certificate's secret.
const (
	ContentTypePKCS12 = "application/x-pkcs12"
	ContentTypePEM    = "application/x-pem-file"
)

// certPayload is what a certificate version holds beyond the common attributes and tags.
type certPayload struct {
	Leaf              *x509.Certificate
	Chain             []*x509.Certificate // as stored in the secret: the leaf first unless PreserveCertOrder
	PreserveCertOrder bool
	ContentType       string // of the backing secret
	Policy            certPolicy
}

// certPolicy is the management policy recorded with a version; the X.509 properties are the leaf's.
type certPolicy struct {
	Exportable, ReuseKey bool
	Kty                  string
	KeySize              int
	Curve                string
	IssuerName           string
	IssuerCertType       string
	LifetimeActions      []lifetimeActionJSON
	Created, Updated     int64
}

func (s *Server) certs() *collection[certPayload] { return s.store().certs }

// itemAttributesOut are a certificate list item's attributes: the service leaves the recovery level
// and days out of certificate listings.
type itemAttributesOut struct {
	Enabled   bool   `json:"enabled"`
	NotBefore *int64 `json:"nbf,omitempty"`
	Expires   *int64 `json:"exp,omitempty"`
	Created   int64  `json:"created"`
	Updated   int64  `json:"updated"`
}

// certJSON is a CertificateBundle, a CertificateItem, a DeletedCertificateBundle or a
// DeletedCertificateItem, depending on which fields are set.
type certJSON struct {
	ID                 string            `json:"id"`
	KID                string            `json:"kid,omitempty"`
	SID                string            `json:"sid,omitempty"`
	X5T                string            `json:"x5t"`
	CER                string            `json:"cer,omitempty"`
	Attributes         any               `json:"attributes"`
	Tags               map[string]string `json:"tags,omitempty"`
	Policy             *certPolicyJSON   `json:"policy,omitempty"`
	PreserveCertOrder  *bool             `json:"preserveCertOrder,omitempty"`
	RecoveryID         string            `json:"recoveryId,omitempty"`
	DeletedDate        int64             `json:"deletedDate,omitempty"`
	ScheduledPurgeDate int64             `json:"scheduledPurgeDate,omitempty"`
}

type certListJSON struct {
	Value    []certJSON `json:"value"`
	NextLink *string    `json:"nextLink"`
}

type certPolicyJSON struct {
	ID              string               `json:"id"`
	KeyProps        keyPropsJSON         `json:"key_props"`
	SecretProps     secretPropsJSON      `json:"secret_props"`
	X509Props       x509PropsJSON        `json:"x509_props"`
	LifetimeActions []lifetimeActionJSON `json:"lifetime_actions"`
	Issuer          issuerJSON           `json:"issuer"`
	Attributes      policyAttributesJSON `json:"attributes"`
}

type keyPropsJSON struct {
	Exportable bool   `json:"exportable"`
	Kty        string `json:"kty"`
	KeySize    int    `json:"key_size,omitempty"`
	Curve      string `json:"crv,omitempty"`
	ReuseKey   bool   `json:"reuse_key"`
}

type secretPropsJSON struct {
	ContentType string `json:"contentType"`
}

type x509PropsJSON struct {
	Subject        string   `json:"subject"`
	SANs           sansJSON `json:"sans"`
	EKUs           []string `json:"ekus,omitempty"`
	KeyUsage       []string `json:"key_usage,omitempty"`
	ValidityMonths int      `json:"validity_months"`
}

type sansJSON struct {
	DNSNames    []string `json:"dns_names"`
	Emails      []string `json:"emails,omitempty"`
	IPAddresses []string `json:"ipAddresses,omitempty"`
	URIs        []string `json:"uris,omitempty"`
}

type lifetimeActionJSON struct {
	Trigger struct {
		LifetimePercentage *int `json:"lifetime_percentage,omitempty"`
		DaysBeforeExpiry   *int `json:"days_before_expiry,omitempty"`
	} `json:"trigger"`
	Action struct {
		ActionType string `json:"action_type"`
	} `json:"action"`
}

type issuerJSON struct {
	Name     string `json:"name"`
	CertType string `json:"cty,omitempty"`
}

type policyAttributesJSON struct {
	Enabled bool  `json:"enabled"`
	Created int64 `json:"created"`
	Updated int64 `json:"updated"`
}

// certJSON renders a version: a bundle (id with the version, kid, sid, cer, policy) or a list item
// (id with the version when withVersion is set).
func (s *Server) certJSON(o *object[certPayload], v *version[certPayload], withVersion, bundle bool) certJSON {
	p := v.Payload
	thumb := sha1.Sum(p.Leaf.Raw)
	out := certJSON{ID: s.baseURL + "/certificates/" + o.Name, X5T: b64url(thumb[:]), Tags: copyTags(v.Tags)}
	if bundle {
		out.ID += "/" + v.ID
		out.KID = s.baseURL + "/keys/" + o.Name + "/" + v.ID
		out.SID = s.baseURL + "/secrets/" + o.Name + "/" + v.ID
		out.CER = base64.StdEncoding.EncodeToString(p.Leaf.Raw)
		out.Attributes = s.attrsOut(v.Attrs)
		out.Policy = s.policyJSON(o, v)
		if p.PreserveCertOrder {
			out.PreserveCertOrder = ptrTo(true)
		}
	} else {
		if withVersion {
			out.ID += "/" + v.ID
		}
		a := v.Attrs
		out.Attributes = itemAttributesOut{Enabled: a.Enabled, NotBefore: a.NotBefore, Expires: a.Expires, Created: a.Created, Updated: a.Updated}
	}
	if d := o.Deleted; d != nil {
		out.RecoveryID = s.baseURL + "/deletedcertificates/" + o.Name
		out.DeletedDate, out.ScheduledPurgeDate = d.Date, d.ScheduledPurge
	}
	return out
}

func ptrTo[T any](v T) *T { return &v }

func (s *Server) policyJSON(o *object[certPayload], v *version[certPayload]) *certPolicyJSON {
	p := v.Payload.Policy
	actions := p.LifetimeActions
	if actions == nil {
		actions = []lifetimeActionJSON{}
	}
	return &certPolicyJSON{
		ID:              s.baseURL + "/certificates/" + o.Name + "/policy",
		KeyProps:        keyPropsJSON{Exportable: p.Exportable, Kty: p.Kty, KeySize: p.KeySize, Curve: p.Curve, ReuseKey: p.ReuseKey},
		SecretProps:     secretPropsJSON{ContentType: v.Payload.ContentType},
		X509Props:       x509Props(v.Payload.Leaf),
		LifetimeActions: actions,
		Issuer:          issuerJSON{Name: p.IssuerName, CertType: p.IssuerCertType},
		Attributes:      policyAttributesJSON{Enabled: true, Created: p.Created, Updated: p.Updated},
	}
}

var ekuOIDs = map[x509.ExtKeyUsage]string{
	x509.ExtKeyUsageAny:             "2.5.29.37.0",
	x509.ExtKeyUsageServerAuth:      "1.3.6.1.5.5.7.3.1",
	x509.ExtKeyUsageClientAuth:      "1.3.6.1.5.5.7.3.2",
	x509.ExtKeyUsageCodeSigning:     "1.3.6.1.5.5.7.3.3",
	x509.ExtKeyUsageEmailProtection: "1.3.6.1.5.5.7.3.4",
	x509.ExtKeyUsageTimeStamping:    "1.3.6.1.5.5.7.3.8",
	x509.ExtKeyUsageOCSPSigning:     "1.3.6.1.5.5.7.3.9",
}

// keyUsageNames are the policy's key_usage names, in the bit order of x509.KeyUsage.
var keyUsageNames = []string{"digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment",
	"keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly"}

// x509Props describes the leaf as the policy's x509_props.
func x509Props(leaf *x509.Certificate) x509PropsJSON {
	out := x509PropsJSON{Subject: leaf.Subject.String(), SANs: sansJSON{DNSNames: slices.Clone(leaf.DNSNames),
		Emails: slices.Clone(leaf.EmailAddresses)}}
	if out.SANs.DNSNames == nil {
		out.SANs.DNSNames = []string{}
	}
	for _, ip := range leaf.IPAddresses {
		out.SANs.IPAddresses = append(out.SANs.IPAddresses, ip.String())
	}
	for _, u := range leaf.URIs {
		out.SANs.URIs = append(out.SANs.URIs, u.String())
	}
	for _, eku := range leaf.ExtKeyUsage {
		if oid, ok := ekuOIDs[eku]; ok {
			out.EKUs = append(out.EKUs, oid)
		}
	}
	for _, oid := range leaf.UnknownExtKeyUsage {
		out.EKUs = append(out.EKUs, oid.String())
	}
	for i, name := range keyUsageNames {
		if leaf.KeyUsage&(1<<i) != 0 {
			out.KeyUsage = append(out.KeyUsage, name)
		}
	}
	days := leaf.NotAfter.Sub(leaf.NotBefore).Hours() / 24
	out.ValidityMonths = int(math.Round(days / 30.4375))
	return out
}

func certNotFound(w http.ResponseWriter, nameOrID string) { kindNotFound(w, "Certificate", nameOrID) }

func (s *Server) routeCertificates(w http.ResponseWriter, r *http.Request, rest []string) {
	if len(rest) == 0 || len(rest) == 1 && rest[0] == "" {
		if r.Method != http.MethodGet {
			methodNotAllowed(w, r)
			return
		}
		if s.authorize(w, r, ActionReadCertificate) {
			s.listCertificates(w, r)
		}
		return
	}
	name := rest[0]
	switch strings.ToLower(name) {
	case "contacts", "issuers":
		notImplemented(w, "certificate "+strings.ToLower(name))
		return
	case "restore":
		if r.Method == http.MethodPost {
			notImplemented(w, "backup and restore")
			return
		}
	}
	if !validName(name) {
		badName(w, name)
		return
	}
	switch {
	case len(rest) == 1:
		switch r.Method {
		case http.MethodGet:
			if s.authorize(w, r, ActionReadCertificate) {
				s.getCertificate(w, name, "")
			}
		case http.MethodPatch:
			if s.authorize(w, r, ActionUpdateCertificate) {
				s.updateCertificate(w, r, name, "")
			}
		case http.MethodDelete:
			if s.authorize(w, r, ActionDeleteCertificate) {
				s.deleteCertificate(w, name)
			}
		default:
			methodNotAllowed(w, r)
		}
	case len(rest) == 2 && rest[1] == "import":
		if r.Method != http.MethodPost {
			methodNotAllowed(w, r)
			return
		}
		if s.authorize(w, r, ActionImportCertificate) {
			s.importCertificate(w, r, name)
		}
	case len(rest) == 2 && rest[1] == "create":
		notImplemented(w, "certificate creation through an issuer (import the certificate instead)")
	case len(rest) >= 2 && rest[1] == "pending":
		notImplemented(w, "certificate operations")
	case len(rest) == 2 && strings.EqualFold(rest[1], "backup"):
		notImplemented(w, "backup and restore")
	case len(rest) == 2 && rest[1] == "versions" && r.Method == http.MethodGet:
		if s.authorize(w, r, ActionReadCertificate) {
			s.listCertificateVersions(w, r, name)
		}
	case len(rest) == 2 && rest[1] == "policy":
		switch r.Method {
		case http.MethodGet:
			if s.authorize(w, r, ActionReadCertificate) {
				s.getCertificatePolicy(w, name)
			}
		case http.MethodPatch:
			notImplemented(w, "certificate policy updates")
		default:
			methodNotAllowed(w, r)
		}
	case len(rest) == 2:
		switch r.Method {
		case http.MethodGet:
			if s.authorize(w, r, ActionReadCertificate) {
				s.getCertificate(w, name, rest[1])
			}
		case http.MethodPatch:
			if s.authorize(w, r, ActionUpdateCertificate) {
				s.updateCertificate(w, r, name, rest[1])
			}
		default:
			methodNotAllowed(w, r)
		}
	default:
		certNotFound(w, strings.Join(rest, "/"))
	}
}

func (s *Server) routeDeletedCertificates(w http.ResponseWriter, r *http.Request, rest []string) {
	s.routeDeleted(w, r, rest, deletedRoutes{
		read: ActionReadCertificate, purge: ActionPurgeCertificate, recover: ActionRecoverCertificate,
		list: s.listDeletedCertificates, get: s.getDeletedCertificate, doPurge: s.purgeCertificate, doRecover: s.recoverCertificate,
		notFound: func(w http.ResponseWriter, name string) { deletedKindNotFound(w, "Certificate", name) },
	})
}

type importCertRequest struct {
	Value             *string           `json:"value"`
	Password          *string           `json:"pwd"`
	Policy            *certPolicyIn     `json:"policy"`
	Attributes        *attributesIn     `json:"attributes"`
	Tags              map[string]string `json:"tags"`
	PreserveCertOrder *bool             `json:"preserveCertOrder"`
}

// certPolicyIn is the part of a request's policy an import honours.
type certPolicyIn struct {
	KeyProps *struct {
		Exportable *bool   `json:"exportable"`
		Kty        *string `json:"kty"`
		KeySize    *int    `json:"key_size"`
		Curve      *string `json:"crv"`
		ReuseKey   *bool   `json:"reuse_key"`
	} `json:"key_props"`
	SecretProps *struct {
		ContentType *string `json:"contentType"`
	} `json:"secret_props"`
	Issuer *struct {
		Name     *string `json:"name"`
		CertType *string `json:"cty"`
	} `json:"issuer"`
	LifetimeActions []lifetimeActionJSON `json:"lifetime_actions"`
}

type updateCertRequest struct {
	Attributes *attributesIn     `json:"attributes"`
	Tags       map[string]string `json:"tags"`
	Policy     json.RawMessage   `json:"policy"`
}

// importedCert is a parsed import: the chain in the order the secret keeps it, the leaf, and its key.
type importedCert struct {
	leaf  *x509.Certificate
	chain []*x509.Certificate
	key   crypto.Signer
}

// badImport is a 400 BadParameter answer to an import, with its message.
type badImport string

func (e badImport) Error() string { return string(e) }

// parsePFX reads a base64 PKCS#12 file.
func parsePFX(value, password string) (*importedCert, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(value), ""))
	if err != nil {
		return nil, badImport("The specified PKCS#12 X.509 certificate content is not valid base64. To import PEM " +
			"content, set the policy's secret_props.contentType to " + ContentTypePEM + ".")
	}
	key, leaf, cas, err := pkcs12.DecodeChain(raw, password)
	switch {
	case errors.Is(err, pkcs12.ErrIncorrectPassword), errors.Is(err, pkcs12.ErrDecryption):
		return nil, badImport("The specified PKCS#12 X.509 certificate content could not be decrypted: the password " +
			"(pwd) is missing or incorrect.")
	case err != nil && strings.Contains(err.Error(), "private key missing"):
		return nil, badImport("No private key found in the specified PKCS#12 X.509 certificate content. The " +
			"certificate to import must contain its private key.")
	case err != nil:
		return nil, badImport(fmt.Sprintf("The specified PKCS#12 X.509 certificate content can not be read (%v).", err))
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, badImport(fmt.Sprintf("The private key type %T is not supported; use an RSA or EC key.", key))
	}
	return &importedCert{chain: append([]*x509.Certificate{leaf}, cas...), key: signer}, nil
}

// parsePEM reads PEM certificates and one PKCS#8 private key ("PRIVATE KEY"), the only key form the service
// accepts in PEM. The PEM text may itself be base64-encoded, as some SDKs (Python, .NET) send it.
func parsePEM(value string) (*importedCert, error) {
	if !strings.Contains(value, "-----BEGIN") {
		if raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(value), "")); err == nil {
			value = string(raw)
		}
	}
	var out importedCert
	rest := []byte(value)
	for {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		switch block.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, badImport(fmt.Sprintf("The specified PEM X.509 certificate content has an invalid certificate (%v).", err))
			}
			out.chain = append(out.chain, c)
		case "PRIVATE KEY":
			if out.key != nil {
				return nil, badImport("The specified PEM X.509 certificate content has more than one private key.")
			}
			key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, badImport(fmt.Sprintf("The specified PEM private key is not a valid PKCS#8 key (%v).", err))
			}
			signer, ok := key.(crypto.Signer)
			if !ok {
				return nil, badImport(fmt.Sprintf("The private key type %T is not supported; use an RSA or EC key.", key))
			}
			out.key = signer
		case "RSA PRIVATE KEY", "EC PRIVATE KEY":
			return nil, badImport(fmt.Sprintf("The PEM private key is a %q block; Key Vault accepts PEM private keys in "+
				"PKCS#8 form only (\"PRIVATE KEY\", e.g. from openssl pkcs8 -topk8 -nocrypt).", block.Type))
		case "ENCRYPTED PRIVATE KEY":
			return nil, badImport("Encrypted PEM private keys are not supported; import an unencrypted PKCS#8 key, " +
				"or a password-protected PKCS#12 file.")
		}
	}
	if len(out.chain) == 0 {
		return nil, badImport("No X.509 certificate found in the specified PEM content.")
	}
	if out.key == nil {
		return nil, badImport("Private key is not specified in the specified X.509 PEM certificate content. The PEM " +
			"content must contain the certificate's private key.")
	}
	return &out, nil
}

// checkKeyMatch finds the leaf, the certificate whose public key is the private key's, and checks the
// key is one the vault supports. The leaf is put first unless preserveOrder.
func (c *importedCert) checkKeyMatch(preserveOrder bool) error {
	switch k := c.key.(type) {
	case *rsa.PrivateKey:
	case *ecdsa.PrivateKey:
		if curves[k.Curve.Params().Name] == nil {
			return badImport(fmt.Sprintf("The EC curve %s is not supported; use P-256, P-384 or P-521.", k.Curve.Params().Name))
		}
	default:
		return badImport(fmt.Sprintf("The private key type %T is not supported; use an RSA or EC key.", c.key))
	}
	pub, ok := c.key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok {
		return badImport("The private key's public key cannot be compared.")
	}
	i := slices.IndexFunc(c.chain, func(cert *x509.Certificate) bool { return pub.Equal(cert.PublicKey) })
	if i < 0 {
		return badImport(fmt.Sprintf("The private key does not match the certificate: no certificate in the specified "+
			"X.509 content (leaf %q) has the private key's public key.", c.chain[0].Subject.String()))
	}
	c.leaf = c.chain[i]
	if !preserveOrder && i != 0 {
		rest := slices.Delete(slices.Clone(c.chain), i, i+1)
		c.chain = append([]*x509.Certificate{c.leaf}, rest...)
	}
	return nil
}

// secretValue is the backing secret's value: a password-less PKCS#12 file in base64, or PEM with the
// PKCS#8 private key first and then the chain.
func (c *importedCert) secretValue(contentType string) (string, error) {
	if contentType == ContentTypePEM {
		der, err := x509.MarshalPKCS8PrivateKey(c.key)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		if err := pem.Encode(&b, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
			return "", err
		}
		for _, cert := range c.chain {
			if err := pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}); err != nil {
				return "", err
			}
		}
		return b.String(), nil
	}
	var cas []*x509.Certificate
	for _, cert := range c.chain {
		if cert != c.leaf {
			cas = append(cas, cert)
		}
	}
	pfx, err := pkcs12.Modern.Encode(c.key, c.leaf, cas, "")
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(pfx), nil
}

// keyPayloadFor is the certificate's key as a managed key.
func (c *importedCert) keyPayloadFor() keyPayload {
	p := keyPayload{Private: c.key, Managed: true}
	switch k := c.key.(type) {
	case *rsa.PrivateKey:
		p.Kty, p.Ops = "RSA", slices.Clone(rsaKeyOps)
	case *ecdsa.PrivateKey:
		p.Kty, p.Curve, p.Ops = "EC", k.Curve.Params().Name, slices.Clone(ecKeyOps)
	}
	return p
}

// importPolicy is the policy recorded for an import: the request's, where given, checked against the key.
func importPolicy(in *certPolicyIn, kp keyPayload, now time.Time) (certPolicy, error) {
	pol := certPolicy{Exportable: true, Kty: kp.Kty, Curve: kp.Curve, IssuerName: "Unknown",
		Created: now.Unix(), Updated: now.Unix()}
	if k, ok := kp.Private.(*rsa.PrivateKey); ok {
		pol.KeySize = k.N.BitLen()
	}
	pct := 80
	def := lifetimeActionJSON{}
	def.Trigger.LifetimePercentage = &pct
	def.Action.ActionType = "EmailContacts"
	pol.LifetimeActions = []lifetimeActionJSON{def}
	if in == nil {
		return pol, nil
	}
	if kpIn := in.KeyProps; kpIn != nil {
		if kpIn.Kty != nil && *kpIn.Kty != "" && *kpIn.Kty != kp.Kty {
			return pol, badImport(fmt.Sprintf("The policy's key type %s does not match the certificate's %s key.", *kpIn.Kty, kp.Kty))
		}
		if kpIn.KeySize != nil && kp.Kty == "RSA" && *kpIn.KeySize != pol.KeySize {
			return pol, badImport(fmt.Sprintf("The policy's key size %d does not match the certificate's %d-bit key.", *kpIn.KeySize, pol.KeySize))
		}
		if kpIn.Curve != nil && *kpIn.Curve != "" && *kpIn.Curve != kp.Curve {
			return pol, badImport(fmt.Sprintf("The policy's curve %s does not match the certificate's key (%s).", *kpIn.Curve, kp.Kty+" "+kp.Curve))
		}
		if kpIn.Exportable != nil {
			pol.Exportable = *kpIn.Exportable
		}
		if kpIn.ReuseKey != nil {
			pol.ReuseKey = *kpIn.ReuseKey
		}
	}
	if is := in.Issuer; is != nil {
		if is.Name != nil && *is.Name != "" {
			pol.IssuerName = *is.Name
		}
		if is.CertType != nil {
			pol.IssuerCertType = *is.CertType
		}
	}
	if in.LifetimeActions != nil {
		for _, a := range in.LifetimeActions {
			t := a.Trigger
			switch {
			case a.Action.ActionType != "EmailContacts" && a.Action.ActionType != "AutoRenew":
				return pol, badImport(fmt.Sprintf("The lifetime action type %q is invalid; use EmailContacts or AutoRenew.", a.Action.ActionType))
			case a.Action.ActionType == "AutoRenew" && strings.EqualFold(pol.IssuerName, "Unknown"):
				return pol, badImport("The lifetime action AutoRenew is not supported for a certificate whose issuer is Unknown.")
			case (t.LifetimePercentage == nil) == (t.DaysBeforeExpiry == nil):
				return pol, badImport("A lifetime action's trigger must have exactly one of lifetime_percentage and days_before_expiry.")
			case t.LifetimePercentage != nil && (*t.LifetimePercentage < 1 || *t.LifetimePercentage > 99):
				return pol, badImport("A lifetime action's lifetime_percentage must be between 1 and 99.")
			case t.DaysBeforeExpiry != nil && *t.DaysBeforeExpiry < 1:
				return pol, badImport("A lifetime action's days_before_expiry must be at least 1.")
			}
		}
		pol.LifetimeActions = slices.Clone(in.LifetimeActions)
	}
	return pol, nil
}

func (s *Server) importCertificate(w http.ResponseWriter, r *http.Request, name string) {
	var req importCertRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Value == nil || strings.TrimSpace(*req.Value) == "" {
		writeError(w, http.StatusBadRequest, "BadParameter", "", "The certificate content (value) is required.")
		return
	}
	if !checkTagsAndContentType(w, req.Tags, nil) {
		return
	}
	contentType := ContentTypePKCS12
	if p := req.Policy; p != nil && p.SecretProps != nil && p.SecretProps.ContentType != nil && *p.SecretProps.ContentType != "" {
		contentType = *p.SecretProps.ContentType
	}
	var (
		cert *importedCert
		err  error
	)
	switch contentType {
	case ContentTypePKCS12:
		password := ""
		if req.Password != nil {
			password = *req.Password
		}
		cert, err = parsePFX(*req.Value, password)
	case ContentTypePEM:
		cert, err = parsePEM(*req.Value)
	default:
		err = badImport(fmt.Sprintf("The content type %q is not supported; use %s or %s.", contentType, ContentTypePKCS12, ContentTypePEM))
	}
	preserve := req.PreserveCertOrder != nil && *req.PreserveCertOrder
	if err == nil {
		err = cert.checkKeyMatch(preserve)
	}
	now := time.Now()
	var (
		kp     keyPayload
		policy certPolicy
		value  string
	)
	if err == nil {
		kp = cert.keyPayloadFor()
		policy, err = importPolicy(req.Policy, kp, now)
	}
	if err == nil {
		value, err = cert.secretValue(contentType)
	}
	if err != nil {
		var bad badImport
		if errors.As(err, &bad) {
			writeError(w, http.StatusBadRequest, "BadParameter", "", "%s", string(bad))
		} else {
			writeError(w, http.StatusInternalServerError, "InternalError", "", "The certificate's secret could not be encoded.")
		}
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	o, st := s.certs().get(name, now)
	if kindConflict(w, "Certificate", st, name) {
		return
	}
	// The secret and key of the name are the certificate's own, or absent.
	so, sst := s.secrets.get(name, now)
	ko, kst := s.keys().get(name, now)
	if o == nil && (so != nil || ko != nil) {
		kind, existing := "secret", ""
		if so != nil {
			existing = so.Name
		} else {
			kind, existing = "key", ko.Name
		}
		writeError(w, http.StatusConflict, "Conflict", "",
			"A %s named %s already exists in this key vault (possibly deleted); a certificate's secret and key take the "+
				"certificate's name, so the certificate %s cannot be imported.", kind, existing, name)
		return
	}
	if kindConflict(w, "Secret", sst, name) || kindConflict(w, "Key", kst, name) {
		return
	}

	attrs := func() attributes {
		nbf, exp := cert.leaf.NotBefore.Unix(), cert.leaf.NotAfter.Unix()
		a := attributes{Enabled: true, NotBefore: &nbf, Expires: &exp, Created: now.Unix(), Updated: now.Unix()}
		if req.Attributes != nil && req.Attributes.Enabled != nil {
			a.Enabled = *req.Attributes.Enabled
		}
		return a
	}
	id := newVersionID()
	v := &version[certPayload]{ID: id, Attrs: attrs(), Tags: copyTags(req.Tags), Payload: certPayload{
		Leaf: cert.leaf, Chain: cert.chain, PreserveCertOrder: preserve, ContentType: contentType, Policy: policy}}
	if o != nil {
		policy.Created = o.latest().Payload.Policy.Created // the policy is the certificate's, updated by the import
		v.Payload.Policy = policy
	}
	o = s.certs().addVersion(name, v)
	s.secrets.addVersion(o.Name, &version[secretPayload]{ID: id, Attrs: attrs(),
		Payload: secretPayload{Value: value, ContentType: contentType}})
	s.keys().addVersion(o.Name, &version[keyPayload]{ID: id, Attrs: attrs(), Payload: kp})
	writeJSON(w, http.StatusOK, s.certJSON(o, v, true, true))
}

// activeCertVersion finds an active certificate's version (the latest for ""), answering 404 and
// returning nil when there is none. The caller holds s.mu.
func (s *Server) activeCertVersion(w http.ResponseWriter, name, ver string) (*object[certPayload], *version[certPayload]) {
	o, st := s.certs().get(name, time.Now())
	if st != stateActive {
		certNotFound(w, name)
		return nil, nil
	}
	v := o.latest()
	if ver != "" {
		if v = o.Versions[strings.ToLower(ver)]; v == nil {
			certNotFound(w, name+"/"+ver)
			return nil, nil
		}
	}
	return o, v
}

func (s *Server) getCertificate(w http.ResponseWriter, name, ver string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o, v := s.activeCertVersion(w, name, ver); v != nil {
		writeJSON(w, http.StatusOK, s.certJSON(o, v, true, true))
	}
}

func (s *Server) getCertificatePolicy(w http.ResponseWriter, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o, v := s.activeCertVersion(w, name, ""); v != nil {
		writeJSON(w, http.StatusOK, s.policyJSON(o, v))
	}
}

// updateCertificate updates a version's tags and enabled flag; the enabled flag carries over to the
// version's secret and key. (A certificate's nbf and exp are its validity and cannot be set.)
func (s *Server) updateCertificate(w http.ResponseWriter, r *http.Request, name, ver string) {
	var req updateCertRequest
	if !decodeBody(w, r, &req) || !checkTagsAndContentType(w, req.Tags, nil) {
		return
	}
	if len(req.Policy) > 0 && string(req.Policy) != "null" {
		notImplemented(w, "certificate policy updates")
		return
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	o, v := s.activeCertVersion(w, name, ver)
	if v == nil {
		return
	}
	if req.Tags != nil {
		v.Tags = copyTags(req.Tags)
	}
	if a := req.Attributes; a != nil && a.Enabled != nil {
		v.Attrs.Enabled = *a.Enabled
		if so, st := s.secrets.get(name, now); st == stateActive && so.Versions[v.ID] != nil {
			so.Versions[v.ID].Attrs.Enabled, so.Versions[v.ID].Attrs.Updated = *a.Enabled, now.Unix()
		}
		if ko, st := s.keys().get(name, now); st == stateActive && ko.Versions[v.ID] != nil {
			ko.Versions[v.ID].Attrs.Enabled, ko.Versions[v.ID].Attrs.Updated = *a.Enabled, now.Unix()
		}
	}
	v.Attrs.Updated = now.Unix()
	writeJSON(w, http.StatusOK, s.certJSON(o, v, true, true))
}

// deleteCertificate soft-deletes the certificate with its secret and key.
func (s *Server) deleteCertificate(w http.ResponseWriter, name string) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	o, st := s.certs().get(name, now)
	switch st {
	case stateActive:
	case stateRecovering:
		kindConflict(w, "Certificate", st, o.Name)
		return
	default:
		certNotFound(w, name)
		return
	}
	d := s.newDeletion(now)
	o.Deleted = d
	if so, st := s.secrets.get(name, now); st == stateActive {
		sd := *d
		so.Deleted = &sd
	}
	if ko, st := s.keys().get(name, now); st == stateActive {
		kd := *d
		ko.Deleted = &kd
	}
	writeJSON(w, http.StatusOK, s.certJSON(o, o.latest(), true, true))
}

func (s *Server) getDeletedCertificate(w http.ResponseWriter, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, st := s.certs().get(name, time.Now())
	if st != stateDeleted {
		deletedKindNotFound(w, "Certificate", name)
		return
	}
	writeJSON(w, http.StatusOK, s.certJSON(o, o.latest(), true, true))
}

// deletedCertFor finds a soft-deleted certificate to purge or recover.
func (s *Server) deletedCertFor(w http.ResponseWriter, name string, now time.Time) *object[certPayload] {
	o, st := s.certs().get(name, now)
	switch st {
	case stateDeleted:
		return o
	case stateDeleting:
		kindConflict(w, "Certificate", st, name)
	default:
		deletedKindNotFound(w, "Certificate", name)
	}
	return nil
}

// purgeCertificate purges the certificate with its secret and key.
func (s *Server) purgeCertificate(w http.ResponseWriter, name string) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.deletedCertFor(w, name, now)
	if o == nil || s.purgeRefused(w) {
		return
	}
	purgeObject(s, s.certs(), o, now)
	if so, st := s.secrets.get(name, now); st == stateDeleted {
		purgeObject(s, s.secrets, so, now)
	}
	if ko, st := s.keys().get(name, now); st == stateDeleted {
		purgeObject(s, s.keys(), ko, now)
	}
	w.WriteHeader(http.StatusNoContent)
}

// recoverCertificate recovers the certificate with its secret and key.
func (s *Server) recoverCertificate(w http.ResponseWriter, name string) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.deletedCertFor(w, name, now)
	if o == nil {
		return
	}
	recoverObject(s, o, now)
	if so, st := s.secrets.get(name, now); st == stateDeleted {
		recoverObject(s, so, now)
	}
	if ko, st := s.keys().get(name, now); st == stateDeleted {
		recoverObject(s, ko, now)
	}
	writeJSON(w, http.StatusOK, s.certJSON(o, o.latest(), true, true))
}

func (s *Server) listCertificates(w http.ResponseWriter, r *http.Request) {
	s.listCertsInState(w, r, stateActive)
}

func (s *Server) listDeletedCertificates(w http.ResponseWriter, r *http.Request) {
	s.listCertsInState(w, r, stateDeleted)
}

func (s *Server) listCertsInState(w http.ResponseWriter, r *http.Request, st state) {
	pg, ok := readPage(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	objs := s.certs().inState(st, time.Now())
	var out certListJSON
	out.Value, out.NextLink = pageOf(s, r, pg, len(objs),
		func(i int) string { return strings.ToLower(objs[i].Name) },
		func(i int) certJSON { return s.certJSON(objs[i], objs[i].latest(), false, false) })
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) listCertificateVersions(w http.ResponseWriter, r *http.Request, name string) {
	pg, ok := readPage(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, st := s.certs().get(name, time.Now())
	if st != stateActive {
		certNotFound(w, name)
		return
	}
	vs := sortedVersions(o)
	var out certListJSON
	out.Value, out.NextLink = pageOf(s, r, pg, len(vs),
		func(i int) string { return vs[i].ID },
		func(i int) certJSON { return s.certJSON(o, vs[i], true, false) })
	writeJSON(w, http.StatusOK, out)
}

// managedSecretJSON is a SecretBundle of a secret that backs a certificate.
type managedSecretJSON struct {
	secretJSON
	KID     string `json:"kid"`
	Managed bool   `json:"managed"`
}

// managedSecretRequest answers the requests on a secret backing an active certificate that the secrets
// API answers differently for such a secret: setting or deleting it is refused (409 Conflict), and
// reading it answers with managed=true and the kid of the certificate's key. It reports whether it
// answered; every other request is the secrets API's.
func (s *Server) managedSecretRequest(w http.ResponseWriter, r *http.Request, rest []string) bool {
	if len(rest) == 0 || len(rest) > 2 || !validName(rest[0]) {
		return false
	}
	name := rest[0]
	s.mu.Lock()
	_, st := s.certs().get(name, time.Now())
	s.mu.Unlock()
	if st != stateActive {
		return false
	}
	switch {
	case len(rest) == 1 && r.Method == http.MethodPut:
		if s.authorize(w, r, ActionSetSecret) {
			conflictManaged(w, "secret", name)
		}
	case len(rest) == 1 && r.Method == http.MethodDelete:
		if s.authorize(w, r, ActionDeleteSecret) {
			conflictManaged(w, "secret", name)
		}
	case r.Method == http.MethodGet && (len(rest) == 1 || rest[1] != "versions"):
		if s.authorize(w, r, ActionGetSecret) {
			ver := ""
			if len(rest) == 2 {
				ver = rest[1]
			}
			s.getManagedSecret(w, name, ver)
		}
	default:
		return false
	}
	return true
}

func (s *Server) getManagedSecret(w http.ResponseWriter, name, ver string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, st := s.secrets.get(name, time.Now())
	if st != stateActive {
		secretNotFound(w, name)
		return
	}
	v := o.latest()
	if ver != "" {
		if v = o.Versions[strings.ToLower(ver)]; v == nil {
			secretNotFound(w, name+"/"+ver)
			return
		}
	}
	if !v.Attrs.Enabled {
		writeError(w, http.StatusForbidden, "Forbidden", "SecretDisabled", "Operation get is not allowed on a disabled secret.")
		return
	}
	writeJSON(w, http.StatusOK, managedSecretJSON{secretJSON: s.secretJSON(o, v, true, true),
		KID: s.baseURL + "/keys/" + o.Name + "/" + v.ID, Managed: true})
}
