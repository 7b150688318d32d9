package azkv

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"time"
)

// The keys API: software-protected EC (P-256, P-384, P-521) and RSA (2048, 3072, 4096) keys created in
// the emulator, with sign and verify. Only the public half of a key is ever rendered (as a JWK): like the
// service's keys, private keys never leave the vault. A certificate's key (certificates.go) is a key of
// this collection too, marked managed.

// keyPayload is what a key version holds beyond the common attributes and tags.
type keyPayload struct {
	Kty     string        // "EC" or "RSA"
	Curve   string        // P-256, P-384 or P-521 (EC keys)
	Ops     []string      // the JWK key_ops the key allows
	Private crypto.Signer // *ecdsa.PrivateKey or *rsa.PrivateKey; never rendered
	Managed bool          // the key backs a certificate and is written only through it
}

// kindStore holds a Server's key and certificate collections, guarded by s.mu like the secrets.
type kindStore struct {
	keys  *collection[keyPayload]
	certs *collection[certPayload]
}

func (s *Server) store() *kindStore { return s.kinds }

func (s *Server) keys() *collection[keyPayload] { return s.store().keys }

// jwkJSON is the public JSON Web Key the service returns (key_ops and the public parameters only).
type jwkJSON struct {
	KID    string   `json:"kid"`
	Kty    string   `json:"kty"`
	KeyOps []string `json:"key_ops"`
	N      string   `json:"n,omitempty"`
	E      string   `json:"e,omitempty"`
	Crv    string   `json:"crv,omitempty"`
	X      string   `json:"x,omitempty"`
	Y      string   `json:"y,omitempty"`
}

// keyJSON is a KeyBundle, a KeyItem, a DeletedKeyBundle or a DeletedKeyItem, depending on which fields
// are set.
type keyJSON struct {
	Key                *jwkJSON          `json:"key,omitempty"`
	KID                string            `json:"kid,omitempty"`
	Attributes         attributesOut     `json:"attributes"`
	Tags               map[string]string `json:"tags,omitempty"`
	Managed            bool              `json:"managed,omitempty"`
	RecoveryID         string            `json:"recoveryId,omitempty"`
	DeletedDate        int64             `json:"deletedDate,omitempty"`
	ScheduledPurgeDate int64             `json:"scheduledPurgeDate,omitempty"`
}

type keyListJSON struct {
	Value    []keyJSON `json:"value"`
	NextLink *string   `json:"nextLink"`
}

// keyJSON renders a version: bundle renders the public JWK (whose kid always carries the version),
// otherwise an item whose kid carries the version when withVersion is set.
func (s *Server) keyJSON(o *object[keyPayload], v *version[keyPayload], withVersion, bundle bool) keyJSON {
	out := keyJSON{Attributes: s.attrsOut(v.Attrs), Tags: copyTags(v.Tags), Managed: v.Payload.Managed}
	kid := s.baseURL + "/keys/" + o.Name
	if bundle {
		out.Key = publicJWK(kid+"/"+v.ID, v.Payload)
	} else {
		out.KID = kid
		if withVersion {
			out.KID += "/" + v.ID
		}
	}
	if d := o.Deleted; d != nil {
		out.RecoveryID = s.baseURL + "/deletedkeys/" + o.Name
		out.DeletedDate, out.ScheduledPurgeDate = d.Date, d.ScheduledPurge
	}
	return out
}

// publicJWK is the public half of a key as a JWK (base64url without padding, EC coordinates at the
// curve's full size).
func publicJWK(kid string, p keyPayload) *jwkJSON {
	j := &jwkJSON{KID: kid, Kty: p.Kty, KeyOps: slices.Clone(p.Ops)}
	if j.KeyOps == nil {
		j.KeyOps = []string{}
	}
	switch pub := p.Private.Public().(type) {
	case *rsa.PublicKey:
		j.N = b64url(pub.N.Bytes())
		j.E = b64url(big.NewInt(int64(pub.E)).Bytes())
	case *ecdsa.PublicKey:
		raw, err := pub.Bytes() // 0x04 || X || Y
		if err == nil {
			n := (len(raw) - 1) / 2
			j.Crv, j.X, j.Y = p.Curve, b64url(raw[1:1+n]), b64url(raw[1+n:])
		}
	}
	return j
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// decodeB64URL decodes base64url with or without padding, as the service accepts it.
func decodeB64URL(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// The not-found and conflict answers for keys and certificates, in the shape of the secrets' (whose
// wording was verified); the key and certificate wording follows it and is not itself verified.
func kindNotFound(w http.ResponseWriter, kind, nameOrID string) {
	lower := strings.ToLower(kind)
	writeError(w, http.StatusNotFound, kind+"NotFound", "",
		"A %s with (name/id) %s was not found in this key vault. If you recently deleted this %s you may be able "+
			"to recover it using the correct recovery command. For help resolving this issue, please see "+
			"https://go.microsoft.com/fwlink/?linkid=2125182", lower, nameOrID, lower)
}

func deletedKindNotFound(w http.ResponseWriter, kind, name string) {
	writeError(w, http.StatusNotFound, kind+"NotFound", "", "Deleted %s not found: %s", kind, name)
}

// kindConflict answers a write to a name whose object is not active (being recovered, being deleted or
// purged, or soft-deleted) and reports whether it did.
func kindConflict(w http.ResponseWriter, kind string, st state, name string) bool {
	switch st {
	case stateRecovering:
		writeError(w, http.StatusConflict, "Conflict", "ObjectIsBeingRecovered",
			"%s %s is currently being recovered and cannot be re-created; retry later.", kind, name)
	case stateDeleting, statePurging:
		writeError(w, http.StatusConflict, "Conflict", "ObjectIsBeingDeleted", "%s is currently being deleted.", kind)
	case stateDeleted:
		writeError(w, http.StatusConflict, "Conflict", "ObjectIsDeletedButRecoverable",
			"%s %s is currently in a deleted but recoverable state, and its name cannot be reused; in this state, "+
				"the %s can only be recovered or purged.", kind, name, strings.ToLower(kind))
	default:
		return false
	}
	return true
}

// purgeRefused answers a purge in a vault with purge protection and reports whether it did.
func (s *Server) purgeRefused(w http.ResponseWriter) bool {
	if !s.opts.PurgeProtection {
		return false
	}
	writeError(w, http.StatusForbidden, "Forbidden", "",
		"Operation \"purge\" is not allowed because purge protection is enabled for this vault. Key Vault service will "+
			"automatically purge it after the retention period has passed.")
	return true
}

// newDeletion is the soft-delete record of an object deleted now.
func (s *Server) newDeletion(now time.Time) *deletion {
	return &deletion{Date: now.Unix(), ScheduledPurge: now.Add(time.Duration(s.opts.RecoverableDays) * 24 * time.Hour).Unix(),
		ReadyAt: now.Add(s.opts.TransitionDelay)}
}

// purgeObject starts (or, without a transition delay, completes) the purge of a soft-deleted object.
func purgeObject[P any](s *Server, c *collection[P], o *object[P], now time.Time) {
	if s.opts.TransitionDelay <= 0 {
		delete(c.objects, strings.ToLower(o.Name))
		return
	}
	o.Deleted.PurgeDoneAt = now.Add(s.opts.TransitionDelay)
}

// recoverObject starts the recovery of a soft-deleted object.
func recoverObject[P any](s *Server, o *object[P], now time.Time) {
	o.Deleted = nil
	o.RecoverDoneAt = now.Add(s.opts.TransitionDelay)
}

// pageOf renders, of n items sorted by key, the page after pg.marker, and the nextLink when more remain.
func pageOf[T any](s *Server, r *http.Request, pg page, n int, key func(int) string, render func(int) T) ([]T, *string) {
	out := []T{}
	var last string
	for i := 0; i < n; i++ {
		k := key(i)
		if k <= pg.marker {
			continue
		}
		if len(out) == pg.max {
			return out, s.nextLink(r, pg, last)
		}
		out = append(out, render(i))
		last = k
	}
	return out, nil
}

func notImplemented(w http.ResponseWriter, what string) {
	writeError(w, http.StatusNotImplemented, "NotImplemented", "", "The local Key Vault emulator does not implement %s.", what)
}

func (s *Server) routeKeys(w http.ResponseWriter, r *http.Request, rest []string) {
	if len(rest) == 0 || len(rest) == 1 && rest[0] == "" {
		if r.Method != http.MethodGet {
			methodNotAllowed(w, r)
			return
		}
		if s.authorize(w, r, ActionReadKey) {
			s.listKeys(w, r)
		}
		return
	}
	name := rest[0]
	if strings.EqualFold(name, "restore") && r.Method == http.MethodPost {
		notImplemented(w, "backup and restore")
		return
	}
	if !validName(name) {
		badName(w, name)
		return
	}
	switch {
	case len(rest) == 1:
		switch r.Method {
		case http.MethodGet:
			if s.authorize(w, r, ActionReadKey) {
				s.getKey(w, name, "")
			}
		case http.MethodPatch:
			if s.authorize(w, r, ActionUpdateKey) {
				s.updateKey(w, r, name, "")
			}
		case http.MethodDelete:
			if s.authorize(w, r, ActionDeleteKey) {
				s.deleteKey(w, name)
			}
		case http.MethodPut:
			notImplemented(w, "key import")
		default:
			methodNotAllowed(w, r)
		}
	case len(rest) == 2 && rest[1] == "create":
		if r.Method != http.MethodPost {
			methodNotAllowed(w, r)
			return
		}
		if s.authorize(w, r, ActionCreateKey) {
			s.createKey(w, r, name)
		}
	case len(rest) == 2 && rest[1] == "versions" && r.Method == http.MethodGet:
		if s.authorize(w, r, ActionReadKey) {
			s.listKeyVersions(w, r, name)
		}
	case len(rest) == 2 && r.Method == http.MethodPost && keyOperations[strings.ToLower(rest[1])]:
		// keys/{name}/{op}: the SDK drops an empty version from keys/{name}/{version}/{op}; the latest
		s.keyOperation(w, r, name, "", rest[1])
	case len(rest) == 2 && slices.Contains([]string{"backup", "rotate", "rotationpolicy"}, strings.ToLower(rest[1])):
		notImplemented(w, "key "+strings.ToLower(rest[1]))
	case len(rest) == 2:
		switch r.Method {
		case http.MethodGet:
			if s.authorize(w, r, ActionReadKey) {
				s.getKey(w, name, rest[1])
			}
		case http.MethodPatch:
			if s.authorize(w, r, ActionUpdateKey) {
				s.updateKey(w, r, name, rest[1])
			}
		default:
			methodNotAllowed(w, r)
		}
	case len(rest) == 3 && r.Method == http.MethodPost:
		s.keyOperation(w, r, name, rest[1], rest[2])
	case len(rest) == 3 && r.Method == http.MethodGet && strings.EqualFold(rest[2], "attestation"):
		notImplemented(w, "key attestation")
	default:
		kindNotFound(w, "Key", strings.Join(rest, "/"))
	}
}

func (s *Server) routeDeletedKeys(w http.ResponseWriter, r *http.Request, rest []string) {
	s.routeDeleted(w, r, rest, deletedRoutes{
		read: ActionReadKey, purge: ActionPurgeKey, recover: ActionRecoverKey,
		list: s.listDeletedKeys, get: s.getDeletedKey, doPurge: s.purgeKey, doRecover: s.recoverKey,
		notFound: func(w http.ResponseWriter, name string) { deletedKindNotFound(w, "Key", name) },
	})
}

// keyOperations are the cryptographic operations POSTed to keys/{name}/{version}/{op}.
var keyOperations = map[string]bool{"sign": true, "verify": true, "encrypt": true, "decrypt": true,
	"wrapkey": true, "unwrapkey": true, "release": true}

func (s *Server) keyOperation(w http.ResponseWriter, r *http.Request, name, ver, op string) {
	switch op = strings.ToLower(op); op {
	case "sign":
		if s.authorize(w, r, ActionSignKey) {
			s.signOrVerify(w, r, name, ver, false)
		}
	case "verify":
		if s.authorize(w, r, ActionVerifyKey) {
			s.signOrVerify(w, r, name, ver, true)
		}
	case "encrypt", "decrypt", "wrapkey", "unwrapkey", "release":
		notImplemented(w, "the key operation "+op)
	default:
		kindNotFound(w, "Key", name+"/"+ver+"/"+op)
	}
}

type createKeyRequest struct {
	Kty            *string           `json:"kty"`
	KeySize        *int              `json:"key_size"`
	Curve          *string           `json:"crv"`
	PublicExponent *int              `json:"public_exponent"`
	KeyOps         []string          `json:"key_ops"`
	Attributes     *attributesIn     `json:"attributes"`
	Tags           map[string]string `json:"tags"`
	ReleasePolicy  *struct{}         `json:"release_policy"`
}

type updateKeyRequest struct {
	KeyOps     []string          `json:"key_ops"`
	Attributes *attributesIn     `json:"attributes"`
	Tags       map[string]string `json:"tags"`
}

// The JWK key operations, and those an EC key supports.
var (
	rsaKeyOps = []string{"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"}
	ecKeyOps  = []string{"sign", "verify"}
)

// curves are the EC curves a software-protected key can use (the service's P-256K has no Go
// implementation in the standard library and is refused).
var curves = map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()}

// checkKeyOps validates requested key_ops against the key type; nil or empty asks for the type's default.
func checkKeyOps(w http.ResponseWriter, kty string, ops []string) ([]string, bool) {
	allowed := rsaKeyOps
	if kty == "EC" {
		allowed = ecKeyOps
	}
	if len(ops) == 0 {
		return slices.Clone(allowed), true
	}
	var bad []string
	for _, op := range ops {
		if !slices.Contains(allowed, op) {
			bad = append(bad, fmt.Sprintf("%q", op))
		}
	}
	if len(bad) > 0 {
		quoted := make([]string, len(allowed))
		for i, op := range allowed {
			quoted[i] = fmt.Sprintf("%q", op)
		}
		writeError(w, http.StatusBadRequest, "BadParameter", "",
			"Unsupported key operation(s): %s. Supported values for a %s key are %s.", strings.Join(bad, ", "), kty,
			strings.Join(quoted, ", "))
		return nil, false
	}
	var out []string
	for _, op := range ops {
		if !slices.Contains(out, op) {
			out = append(out, op)
		}
	}
	return out, true
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request, name string) {
	var req createKeyRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Kty == nil || *req.Kty == "" {
		writeError(w, http.StatusBadRequest, "BadParameter", "", "The key type (kty) is required.")
		return
	}
	if req.ReleasePolicy != nil {
		notImplemented(w, "key release policies")
		return
	}
	p := keyPayload{Kty: *req.Kty}
	switch p.Kty {
	case "EC":
		p.Curve = "P-256"
		if req.Curve != nil && *req.Curve != "" {
			p.Curve = *req.Curve
		}
		curve := curves[p.Curve]
		if curve == nil {
			writeError(w, http.StatusBadRequest, "BadParameter", "",
				"The curve %q is not supported; use P-256, P-384 or P-521.", p.Curve)
			return
		}
		priv, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "InternalError", "", "Key generation failed.")
			return
		}
		p.Private = priv
	case "RSA":
		size := 2048
		if req.KeySize != nil {
			size = *req.KeySize
		}
		if size != 2048 && size != 3072 && size != 4096 {
			writeError(w, http.StatusBadRequest, "BadParameter", "",
				"The RSA key size %d is not supported; use 2048, 3072 or 4096.", size)
			return
		}
		if req.PublicExponent != nil && *req.PublicExponent != 65537 {
			writeError(w, http.StatusBadRequest, "BadParameter", "",
				"The public exponent %d is not supported; RSA keys use 65537.", *req.PublicExponent)
			return
		}
		priv, err := rsa.GenerateKey(rand.Reader, size)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "InternalError", "", "Key generation failed.")
			return
		}
		p.Private = priv
	case "EC-HSM", "RSA-HSM", "oct", "oct-HSM":
		writeError(w, http.StatusBadRequest, "BadParameter", "",
			"The key type %s is not supported by this vault (a standard vault without HSM); use EC or RSA.", p.Kty)
		return
	default:
		writeError(w, http.StatusBadRequest, "BadParameter", "", "The key type %q is invalid; use EC or RSA.", p.Kty)
		return
	}
	ops, ok := checkKeyOps(w, p.Kty, req.KeyOps)
	if !ok || !checkTagsAndContentType(w, req.Tags, nil) {
		return
	}
	p.Ops = ops

	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	o, st := s.keys().get(name, now)
	if kindConflict(w, "Key", st, name) {
		return
	}
	if o != nil && o.latest().Payload.Managed {
		conflictManaged(w, "key", o.Name)
		return
	}
	v := &version[keyPayload]{ID: newVersionID(), Tags: copyTags(req.Tags),
		Attrs: attributes{Enabled: true, Created: now.Unix(), Updated: now.Unix()}, Payload: p}
	if a := req.Attributes; a != nil {
		if a.Enabled != nil {
			v.Attrs.Enabled = *a.Enabled
		}
		v.Attrs.NotBefore, v.Attrs.Expires = a.NotBefore, a.Expires
	}
	o = s.keys().addVersion(name, v)
	writeJSON(w, http.StatusOK, s.keyJSON(o, v, true, true))
}

// conflictManaged refuses a direct write to a secret or key that backs a certificate.
func conflictManaged(w http.ResponseWriter, kind, name string) {
	writeError(w, http.StatusConflict, "Conflict", "",
		"The %s %s is managed by the certificate %s and cannot be changed directly; import a new version of "+
			"the certificate, or delete the certificate, instead.", kind, name, name)
}

// activeKeyVersion finds an active key's version (the latest for ""), answering 404 and returning nil
// when there is none. The caller holds s.mu.
func (s *Server) activeKeyVersion(w http.ResponseWriter, name, ver string) (*object[keyPayload], *version[keyPayload]) {
	o, st := s.keys().get(name, time.Now())
	if st != stateActive {
		kindNotFound(w, "Key", name)
		return nil, nil
	}
	v := o.latest()
	if ver != "" {
		if v = o.Versions[strings.ToLower(ver)]; v == nil {
			kindNotFound(w, "Key", name+"/"+ver)
			return nil, nil
		}
	}
	return o, v
}

func keyDisabled(w http.ResponseWriter, op string) {
	writeError(w, http.StatusForbidden, "Forbidden", "KeyDisabled", "Operation %s is not allowed on a disabled key.", op)
}

func (s *Server) getKey(w http.ResponseWriter, name, ver string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, v := s.activeKeyVersion(w, name, ver)
	if v == nil {
		return
	}
	if !v.Attrs.Enabled {
		keyDisabled(w, "get")
		return
	}
	writeJSON(w, http.StatusOK, s.keyJSON(o, v, true, true))
}

func (s *Server) updateKey(w http.ResponseWriter, r *http.Request, name, ver string) {
	var req updateKeyRequest
	if !decodeBody(w, r, &req) || !checkTagsAndContentType(w, req.Tags, nil) {
		return
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	o, v := s.activeKeyVersion(w, name, ver)
	if v == nil {
		return
	}
	if req.KeyOps != nil {
		ops, ok := checkKeyOps(w, v.Payload.Kty, req.KeyOps)
		if !ok {
			return
		}
		v.Payload.Ops = ops
	}
	if req.Tags != nil {
		v.Tags = copyTags(req.Tags)
	}
	if a := req.Attributes; a != nil {
		if a.Enabled != nil {
			v.Attrs.Enabled = *a.Enabled
		}
		if a.NotBefore != nil {
			v.Attrs.NotBefore = a.NotBefore
		}
		if a.Expires != nil {
			v.Attrs.Expires = a.Expires
		}
	}
	v.Attrs.Updated = now.Unix()
	writeJSON(w, http.StatusOK, s.keyJSON(o, v, true, true))
}

func (s *Server) deleteKey(w http.ResponseWriter, name string) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	o, st := s.keys().get(name, now)
	switch st {
	case stateActive:
	case stateRecovering:
		kindConflict(w, "Key", st, o.Name)
		return
	default:
		kindNotFound(w, "Key", name)
		return
	}
	if o.latest().Payload.Managed {
		conflictManaged(w, "key", o.Name)
		return
	}
	o.Deleted = s.newDeletion(now)
	writeJSON(w, http.StatusOK, s.keyJSON(o, o.latest(), true, true))
}

func (s *Server) getDeletedKey(w http.ResponseWriter, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, st := s.keys().get(name, time.Now())
	if st != stateDeleted {
		deletedKindNotFound(w, "Key", name)
		return
	}
	writeJSON(w, http.StatusOK, s.keyJSON(o, o.latest(), true, true))
}

// deletedKeyFor finds a soft-deleted key to purge or recover; a certificate's key is purged and
// recovered only with its certificate.
func (s *Server) deletedKeyFor(w http.ResponseWriter, name string, now time.Time) *object[keyPayload] {
	o, st := s.keys().get(name, now)
	switch st {
	case stateDeleted:
	case stateDeleting:
		kindConflict(w, "Key", st, name)
		return nil
	default:
		deletedKindNotFound(w, "Key", name)
		return nil
	}
	if o.latest().Payload.Managed {
		conflictManaged(w, "key", o.Name)
		return nil
	}
	return o
}

func (s *Server) purgeKey(w http.ResponseWriter, name string) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.deletedKeyFor(w, name, now)
	if o == nil || s.purgeRefused(w) {
		return
	}
	purgeObject(s, s.keys(), o, now)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) recoverKey(w http.ResponseWriter, name string) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.deletedKeyFor(w, name, now)
	if o == nil {
		return
	}
	recoverObject(s, o, now)
	writeJSON(w, http.StatusOK, s.keyJSON(o, o.latest(), true, true))
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	pg, ok := readPage(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	objs := s.keys().inState(stateActive, time.Now())
	var out keyListJSON
	out.Value, out.NextLink = pageOf(s, r, pg, len(objs),
		func(i int) string { return strings.ToLower(objs[i].Name) },
		func(i int) keyJSON { return s.keyJSON(objs[i], objs[i].latest(), false, false) })
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) listKeyVersions(w http.ResponseWriter, r *http.Request, name string) {
	pg, ok := readPage(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, st := s.keys().get(name, time.Now())
	if st != stateActive {
		kindNotFound(w, "Key", name)
		return
	}
	vs := sortedVersions(o)
	var out keyListJSON
	out.Value, out.NextLink = pageOf(s, r, pg, len(vs),
		func(i int) string { return vs[i].ID },
		func(i int) keyJSON { return s.keyJSON(o, vs[i], true, false) })
	writeJSON(w, http.StatusOK, out)
}

// listDeletedKeys lists the soft-deleted keys; as in the service, the keys of deleted certificates are
// not listed (GET deletedkeys/{name} still answers for them).
func (s *Server) listDeletedKeys(w http.ResponseWriter, r *http.Request) {
	pg, ok := readPage(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var objs []*object[keyPayload]
	for _, o := range s.keys().inState(stateDeleted, time.Now()) {
		if !o.latest().Payload.Managed {
			objs = append(objs, o)
		}
	}
	var out keyListJSON
	out.Value, out.NextLink = pageOf(s, r, pg, len(objs),
		func(i int) string { return strings.ToLower(objs[i].Name) },
		func(i int) keyJSON { return s.keyJSON(objs[i], objs[i].latest(), false, false) })
	writeJSON(w, http.StatusOK, out)
}

// signAlg is what a JWS signature algorithm requires of the key and the digest.
type signAlg struct {
	kty   string
	curve string // EC algorithms: the key's curve
	hash  crypto.Hash
	pss   bool
}

var signAlgs = map[string]signAlg{
	"ES256": {"EC", "P-256", crypto.SHA256, false},
	"ES384": {"EC", "P-384", crypto.SHA384, false},
	"ES512": {"EC", "P-521", crypto.SHA512, false},
	"RS256": {"RSA", "", crypto.SHA256, false},
	"RS384": {"RSA", "", crypto.SHA384, false},
	"RS512": {"RSA", "", crypto.SHA512, false},
	"PS256": {"RSA", "", crypto.SHA256, true},
	"PS384": {"RSA", "", crypto.SHA384, true},
	"PS512": {"RSA", "", crypto.SHA512, true},
}

type signRequest struct {
	Alg    *string `json:"alg"`
	Value  *string `json:"value"`  // sign: the digest; verify: the signature
	Digest *string `json:"digest"` // verify
}

type keyOperationResult struct {
	KID   string `json:"kid"`
	Value string `json:"value"`
}

type keyVerifyResult struct {
	Value bool `json:"value"`
}

// signOrVerify is POST keys/{name}/{version}/sign (the digest in "value"; the answer's value is the
// signature, ECDSA in the JOSE r||s form) or .../verify (the digest in "digest", the signature in "value").
func (s *Server) signOrVerify(w http.ResponseWriter, r *http.Request, name, ver string, verify bool) {
	var req signRequest
	if !decodeBody(w, r, &req) {
		return
	}
	op := "sign"
	if verify {
		op = "verify"
	}
	if req.Alg == nil || *req.Alg == "" {
		writeError(w, http.StatusBadRequest, "BadParameter", "", "The algorithm (alg) is required.")
		return
	}
	alg, known := signAlgs[*req.Alg]
	if !known {
		writeError(w, http.StatusBadRequest, "BadParameter", "", "The algorithm %q is not supported for %s.", *req.Alg, op)
		return
	}
	digestField, sigField := req.Value, (*string)(nil)
	if verify {
		digestField, sigField = req.Digest, req.Value
	}
	if digestField == nil || (verify && sigField == nil) {
		writeError(w, http.StatusBadRequest, "BadParameter", "", "The digest and the signature are required.")
		return
	}
	digest, err := decodeB64URL(*digestField)
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadParameter", "", "The digest is not valid base64url.")
		return
	}
	if len(digest) != alg.hash.Size() {
		writeError(w, http.StatusBadRequest, "BadParameter", "",
			"Invalid digest length %d for algorithm %s: the digest must be %d bytes.", len(digest), *req.Alg, alg.hash.Size())
		return
	}
	var sig []byte
	if verify {
		if sig, err = decodeB64URL(*sigField); err != nil {
			writeError(w, http.StatusBadRequest, "BadParameter", "", "The signature is not valid base64url.")
			return
		}
	}

	s.mu.Lock()
	o, v := s.activeKeyVersion(w, name, ver)
	if v == nil {
		s.mu.Unlock()
		return
	}
	p, enabled, kid := v.Payload, v.Attrs.Enabled, s.baseURL+"/keys/"+o.Name+"/"+v.ID
	s.mu.Unlock()

	switch {
	case !enabled:
		keyDisabled(w, op)
		return
	case !slices.Contains(p.Ops, op):
		writeError(w, http.StatusForbidden, "Forbidden", "", "Operation %s is not permitted by the key's key_ops.", op)
		return
	case alg.kty != p.Kty:
		writeError(w, http.StatusBadRequest, "BadParameter", "",
			"The algorithm %s cannot be used with a key of type %s.", *req.Alg, p.Kty)
		return
	case alg.curve != "" && alg.curve != p.Curve:
		writeError(w, http.StatusBadRequest, "BadParameter", "",
			"The algorithm %s requires a %s key; this key's curve is %s.", *req.Alg, alg.curve, p.Curve)
		return
	}
	if verify {
		writeJSON(w, http.StatusOK, keyVerifyResult{Value: verifySignature(p.Private.Public(), alg, digest, sig)})
		return
	}
	sig, err = signDigest(p.Private, alg, digest)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "InternalError", "", "The signing operation failed.")
		return
	}
	writeJSON(w, http.StatusOK, keyOperationResult{KID: kid, Value: b64url(sig)})
}

// signDigest signs as the service does: RSASSA-PKCS1-v1_5, RSASSA-PSS with a salt as long as the hash,
// or ECDSA returned as r||s, each at the curve's size (JWS form, not ASN.1).
func signDigest(priv crypto.Signer, alg signAlg, digest []byte) ([]byte, error) {
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		if alg.pss {
			return rsa.SignPSS(rand.Reader, k, alg.hash, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		}
		return rsa.SignPKCS1v15(rand.Reader, k, alg.hash, digest)
	case *ecdsa.PrivateKey:
		der, err := ecdsa.SignASN1(rand.Reader, k, digest)
		if err != nil {
			return nil, err
		}
		var rs struct{ R, S *big.Int }
		if _, err := asn1.Unmarshal(der, &rs); err != nil {
			return nil, err
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		rs.R.FillBytes(out[:size])
		rs.S.FillBytes(out[size:])
		return out, nil
	}
	return nil, errors.New("azkv: unsupported key type")
}

func verifySignature(pub crypto.PublicKey, alg signAlg, digest, sig []byte) bool {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if alg.pss {
			return rsa.VerifyPSS(k, alg.hash, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
		}
		return rsa.VerifyPKCS1v15(k, alg.hash, digest, sig) == nil
	case *ecdsa.PublicKey:
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return false
		}
		der, err := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])})
		return err == nil && ecdsa.VerifyASN1(k, digest, der)
	}
	return false
}
