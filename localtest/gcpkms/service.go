package gcpkms

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"hash/crc32"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/keyferry/keyferry/localtest/gcp"
)

// The service's naming and label rules.
var (
	locationRule   = regexp.MustCompile(`^projects/[^/]+/locations/[^/]+$`)
	ringNameRule   = regexp.MustCompile(`^projects/[^/]+/locations/[^/]+/keyRings/[^/]+$`)
	keyNameRule    = regexp.MustCompile(`^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$`)
	versionRule    = regexp.MustCompile(`^(projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+)/cryptoKeyVersions/([1-9][0-9]{0,9})$`)
	idRule         = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,63}$`)
	labelKeyRule   = regexp.MustCompile(`^[\p{Ll}\p{Lo}][\p{Ll}\p{Lo}\p{N}_-]{0,62}$`)
	labelValueRule = regexp.MustCompile(`^[\p{Ll}\p{Lo}\p{N}_-]{0,63}$`)
	castagnoli     = crc32.MakeTable(crc32.Castagnoli)
)

const (
	maxLabels              = 64
	defaultDestroySchedule = 30 * 24 * time.Hour
	minDestroySchedule     = 24 * time.Hour
	maxDestroySchedule     = 120 * 24 * time.Hour
)

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

func notFound(name string) error { return status.Errorf(codes.NotFound, "%s not found.", name) }

func crc32c(b []byte) int64 { return int64(crc32.Checksum(b, castagnoli)) }

// algorithm is what the emulator needs to know about a signing algorithm it emulates.
type algorithm struct {
	hash     crypto.Hash
	pss      bool
	generate func() (crypto.Signer, error)
}

func ecGen(c elliptic.Curve) func() (crypto.Signer, error) {
	return func() (crypto.Signer, error) { return ecdsa.GenerateKey(c, rand.Reader) }
}

func rsaGen(bits int) func() (crypto.Signer, error) {
	return func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, bits) }
}

var algorithms = map[kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm]algorithm{
	kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256:        {hash: crypto.SHA256, generate: ecGen(elliptic.P256())},
	kmspb.CryptoKeyVersion_EC_SIGN_P384_SHA384:        {hash: crypto.SHA384, generate: ecGen(elliptic.P384())},
	kmspb.CryptoKeyVersion_RSA_SIGN_PKCS1_2048_SHA256: {hash: crypto.SHA256, generate: rsaGen(2048)},
	kmspb.CryptoKeyVersion_RSA_SIGN_PKCS1_3072_SHA256: {hash: crypto.SHA256, generate: rsaGen(3072)},
	kmspb.CryptoKeyVersion_RSA_SIGN_PKCS1_4096_SHA256: {hash: crypto.SHA256, generate: rsaGen(4096)},
	kmspb.CryptoKeyVersion_RSA_SIGN_PKCS1_4096_SHA512: {hash: crypto.SHA512, generate: rsaGen(4096)},
	kmspb.CryptoKeyVersion_RSA_SIGN_PSS_2048_SHA256:   {hash: crypto.SHA256, pss: true, generate: rsaGen(2048)},
	kmspb.CryptoKeyVersion_RSA_SIGN_PSS_3072_SHA256:   {hash: crypto.SHA256, pss: true, generate: rsaGen(3072)},
	kmspb.CryptoKeyVersion_RSA_SIGN_PSS_4096_SHA256:   {hash: crypto.SHA256, pss: true, generate: rsaGen(4096)},
	kmspb.CryptoKeyVersion_RSA_SIGN_PSS_4096_SHA512:   {hash: crypto.SHA512, pss: true, generate: rsaGen(4096)},
}

// isSigning tells whether alg is an ASYMMETRIC_SIGN algorithm of the service (emulated or not).
func isSigning(alg kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm) bool {
	n := alg.String()
	return strings.HasPrefix(n, "RSA_SIGN_") || strings.HasPrefix(n, "EC_SIGN_") || strings.HasPrefix(n, "PQ_SIGN_")
}

// version is one key version: its output view and its private key, which never leaves the emulator.
type version struct {
	pb     *kmspb.CryptoKeyVersion
	signer crypto.Signer
	alg    algorithm
	pem    string // the public key, PKIX PEM
	der    []byte // the public key, PKIX DER
}

type cryptoKey struct {
	pb       *kmspb.CryptoKey
	versions []*version // versions[i] is version i+1
}

type service struct {
	kmspb.UnimplementedKeyManagementServiceServer
	now func() time.Time

	mu    sync.Mutex
	rings map[string]*kmspb.KeyRing
	keys  map[string]*cryptoKey
}

func newService(now func() time.Time) *service {
	return &service{now: now, rings: map[string]*kmspb.KeyRing{}, keys: map[string]*cryptoKey{}}
}

func validateLabels(labels map[string]string) error {
	if len(labels) > maxLabels {
		return invalid("a crypto key can have at most %d labels, got %d", maxLabels, len(labels))
	}
	for k, v := range labels {
		if !labelKeyRule.MatchString(k) {
			return invalid("label key %q is invalid: it must start with a lowercase letter and hold at most 63 lowercase letters, digits, underscores and hyphens", k)
		}
		if !labelValueRule.MatchString(v) {
			return invalid("label value %q (key %q) is invalid: at most 63 lowercase letters, digits, underscores and hyphens", v, k)
		}
	}
	return nil
}

// newVersion generates a key for the template. It runs without the lock: RSA generation takes a while.
func newVersion(tmpl *kmspb.CryptoKeyVersionTemplate, now time.Time) (*version, error) {
	alg := algorithms[tmpl.GetAlgorithm()]
	signer, err := alg.generate()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "generating the key: %v", err)
	}
	der, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "encoding the public key: %v", err)
	}
	ts := timestamppb.New(now)
	return &version{
		pb: &kmspb.CryptoKeyVersion{
			State:           kmspb.CryptoKeyVersion_ENABLED,
			ProtectionLevel: tmpl.GetProtectionLevel(),
			Algorithm:       tmpl.GetAlgorithm(),
			CreateTime:      ts,
			GenerateTime:    ts,
		},
		signer: signer,
		alg:    alg,
		pem:    string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
		der:    der,
	}, nil
}

// ---- key rings

func (s *service) CreateKeyRing(_ context.Context, req *kmspb.CreateKeyRingRequest) (*kmspb.KeyRing, error) {
	parent, id := req.GetParent(), req.GetKeyRingId()
	if !locationRule.MatchString(parent) {
		return nil, invalid("parent %q is invalid: want projects/{project}/locations/{location}", parent)
	}
	if !idRule.MatchString(id) {
		return nil, invalid("key_ring_id %q is invalid: it must be 1 to 63 letters, digits, underscores or hyphens", id)
	}
	name := parent + "/keyRings/" + id
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.rings[name]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "KeyRing %s already exists.", name)
	}
	r := &kmspb.KeyRing{Name: name, CreateTime: timestamppb.New(s.now())}
	s.rings[name] = r
	return proto.Clone(r).(*kmspb.KeyRing), nil
}

func (s *service) GetKeyRing(_ context.Context, req *kmspb.GetKeyRingRequest) (*kmspb.KeyRing, error) {
	name := req.GetName()
	if !ringNameRule.MatchString(name) {
		return nil, invalid("name %q is invalid: want projects/{project}/locations/{location}/keyRings/{key_ring}", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.rings[name]
	if !ok {
		return nil, notFound(name)
	}
	return proto.Clone(r).(*kmspb.KeyRing), nil
}

func (s *service) ListKeyRings(_ context.Context, req *kmspb.ListKeyRingsRequest) (*kmspb.ListKeyRingsResponse, error) {
	parent := req.GetParent()
	if !locationRule.MatchString(parent) {
		return nil, invalid("parent %q is invalid: want projects/{project}/locations/{location}", parent)
	}
	if err := noFilter(req.GetFilter(), req.GetOrderBy()); err != nil {
		return nil, err
	}
	prefix := parent + "/keyRings/"
	size, after, err := gcp.Paging(req.GetPageSize(), req.GetPageToken(), prefix)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	names, total := page(s.rings, prefix, after)
	out := &kmspb.ListKeyRingsResponse{TotalSize: int32(total)}
	for i, n := range names {
		if i == size {
			out.NextPageToken = gcp.PageToken(names[i-1])
			break
		}
		out.KeyRings = append(out.KeyRings, proto.Clone(s.rings[n]).(*kmspb.KeyRing))
	}
	return out, nil
}

// ---- crypto keys

func (s *service) CreateCryptoKey(_ context.Context, req *kmspb.CreateCryptoKeyRequest) (*kmspb.CryptoKey, error) {
	parent, id := req.GetParent(), req.GetCryptoKeyId()
	if !ringNameRule.MatchString(parent) {
		return nil, invalid("parent %q is invalid: want projects/{project}/locations/{location}/keyRings/{key_ring}", parent)
	}
	if !idRule.MatchString(id) {
		return nil, invalid("crypto_key_id %q is invalid: it must be 1 to 63 letters, digits, underscores or hyphens", id)
	}
	in := req.GetCryptoKey()
	if in == nil {
		return nil, invalid("crypto_key is required")
	}
	switch p := in.GetPurpose(); p {
	case kmspb.CryptoKey_ASYMMETRIC_SIGN:
	case kmspb.CryptoKey_CRYPTO_KEY_PURPOSE_UNSPECIFIED:
		return nil, invalid("crypto_key.purpose is required")
	default:
		return nil, status.Errorf(codes.Unimplemented, "purpose %s is not emulated: this KMS emulator does ASYMMETRIC_SIGN only", p)
	}
	tmpl := proto.Clone(in.GetVersionTemplate()).(*kmspb.CryptoKeyVersionTemplate)
	if tmpl == nil || tmpl.GetAlgorithm() == kmspb.CryptoKeyVersion_CRYPTO_KEY_VERSION_ALGORITHM_UNSPECIFIED {
		return nil, invalid("crypto_key.version_template.algorithm is required for purpose ASYMMETRIC_SIGN")
	}
	alg := tmpl.GetAlgorithm()
	if !isSigning(alg) {
		return nil, invalid("algorithm %s is not compatible with purpose ASYMMETRIC_SIGN", alg)
	}
	if _, ok := algorithms[alg]; !ok {
		return nil, status.Errorf(codes.Unimplemented, "algorithm %s is not emulated", alg)
	}
	switch tmpl.GetProtectionLevel() {
	case kmspb.ProtectionLevel_PROTECTION_LEVEL_UNSPECIFIED:
		tmpl.ProtectionLevel = kmspb.ProtectionLevel_SOFTWARE
	case kmspb.ProtectionLevel_SOFTWARE, kmspb.ProtectionLevel_HSM:
	default:
		return nil, status.Errorf(codes.Unimplemented, "protection level %s is not emulated", tmpl.GetProtectionLevel())
	}
	if in.GetRotationPeriod() != nil || in.GetNextRotationTime() != nil {
		return nil, invalid("automatic rotation (rotation_period, next_rotation_time) is not supported for ASYMMETRIC_SIGN keys")
	}
	if in.GetImportOnly() {
		return nil, status.Error(codes.Unimplemented, "import_only keys are not emulated")
	}
	if in.GetCryptoKeyBackend() != "" {
		return nil, status.Error(codes.Unimplemented, "crypto_key_backend is not emulated")
	}
	destroy := defaultDestroySchedule
	if d := in.GetDestroyScheduledDuration(); d != nil {
		destroy = d.AsDuration()
		if destroy < minDestroySchedule || destroy > maxDestroySchedule {
			return nil, invalid("destroy_scheduled_duration must be between 24 hours and 120 days, got %v", destroy)
		}
	}
	if err := validateLabels(in.GetLabels()); err != nil {
		return nil, err
	}

	name := parent + "/cryptoKeys/" + id
	s.mu.Lock()
	_, ringOK := s.rings[parent]
	_, exists := s.keys[name]
	s.mu.Unlock()
	if !ringOK {
		return nil, notFound(parent)
	}
	if exists {
		return nil, status.Errorf(codes.AlreadyExists, "CryptoKey %s already exists.", name)
	}

	now := s.now()
	k := &cryptoKey{pb: &kmspb.CryptoKey{
		Name:                     name,
		Purpose:                  kmspb.CryptoKey_ASYMMETRIC_SIGN,
		CreateTime:               timestamppb.New(now),
		VersionTemplate:          tmpl,
		Labels:                   cloneLabels(in.GetLabels()),
		DestroyScheduledDuration: durationpb.New(destroy),
	}}
	if !req.GetSkipInitialVersionCreation() {
		v, err := newVersion(tmpl, now)
		if err != nil {
			return nil, err
		}
		v.pb.Name = name + "/cryptoKeyVersions/1"
		k.versions = append(k.versions, v)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[name]; ok { // created concurrently while this one generated its key
		return nil, status.Errorf(codes.AlreadyExists, "CryptoKey %s already exists.", name)
	}
	s.keys[name] = k
	return proto.Clone(k.pb).(*kmspb.CryptoKey), nil
}

func cloneLabels(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (s *service) GetCryptoKey(_ context.Context, req *kmspb.GetCryptoKeyRequest) (*kmspb.CryptoKey, error) {
	name := req.GetName()
	if !keyNameRule.MatchString(name) {
		return nil, invalid("name %q is invalid: want projects/{project}/locations/{location}/keyRings/{key_ring}/cryptoKeys/{crypto_key}", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[name]
	if !ok {
		return nil, notFound(name)
	}
	return proto.Clone(k.pb).(*kmspb.CryptoKey), nil
}

func (s *service) ListCryptoKeys(_ context.Context, req *kmspb.ListCryptoKeysRequest) (*kmspb.ListCryptoKeysResponse, error) {
	parent := req.GetParent()
	if !ringNameRule.MatchString(parent) {
		return nil, invalid("parent %q is invalid: want projects/{project}/locations/{location}/keyRings/{key_ring}", parent)
	}
	if err := noFilter(req.GetFilter(), req.GetOrderBy()); err != nil {
		return nil, err
	}
	prefix := parent + "/cryptoKeys/"
	size, after, err := gcp.Paging(req.GetPageSize(), req.GetPageToken(), prefix)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.rings[parent]; !ok {
		return nil, notFound(parent)
	}
	names, total := page(s.keys, prefix, after)
	out := &kmspb.ListCryptoKeysResponse{TotalSize: int32(total)}
	for i, n := range names {
		if i == size {
			out.NextPageToken = gcp.PageToken(names[i-1])
			break
		}
		out.CryptoKeys = append(out.CryptoKeys, proto.Clone(s.keys[n].pb).(*kmspb.CryptoKey))
	}
	return out, nil
}

// ---- versions

func (s *service) CreateCryptoKeyVersion(_ context.Context, req *kmspb.CreateCryptoKeyVersionRequest) (*kmspb.CryptoKeyVersion, error) {
	parent := req.GetParent()
	if !keyNameRule.MatchString(parent) {
		return nil, invalid("parent %q is invalid: want projects/{project}/locations/{location}/keyRings/{key_ring}/cryptoKeys/{crypto_key}", parent)
	}
	s.mu.Lock()
	k, ok := s.keys[parent]
	var tmpl *kmspb.CryptoKeyVersionTemplate
	if ok {
		tmpl = proto.Clone(k.pb.GetVersionTemplate()).(*kmspb.CryptoKeyVersionTemplate)
	}
	s.mu.Unlock()
	if !ok {
		return nil, notFound(parent)
	}
	v, err := newVersion(tmpl, s.now())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v.pb.Name = fmt.Sprintf("%s/cryptoKeyVersions/%d", parent, len(k.versions)+1)
	k.versions = append(k.versions, v)
	return proto.Clone(v.pb).(*kmspb.CryptoKeyVersion), nil
}

// lookupVersion finds a version by name. Call with mu held.
func (s *service) lookupVersion(name string) (*version, error) {
	sub := versionRule.FindStringSubmatch(name)
	if sub == nil {
		return nil, invalid("name %q is invalid: want projects/{project}/locations/{location}/keyRings/{key_ring}/cryptoKeys/{crypto_key}/cryptoKeyVersions/{version}", name)
	}
	k, ok := s.keys[sub[1]]
	if !ok {
		return nil, notFound(name)
	}
	n, _ := strconv.Atoi(sub[2])
	if n > len(k.versions) {
		return nil, notFound(name)
	}
	return k.versions[n-1], nil
}

func (s *service) GetCryptoKeyVersion(_ context.Context, req *kmspb.GetCryptoKeyVersionRequest) (*kmspb.CryptoKeyVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.lookupVersion(req.GetName())
	if err != nil {
		return nil, err
	}
	return proto.Clone(v.pb).(*kmspb.CryptoKeyVersion), nil
}

func (s *service) ListCryptoKeyVersions(_ context.Context, req *kmspb.ListCryptoKeyVersionsRequest) (*kmspb.ListCryptoKeyVersionsResponse, error) {
	parent := req.GetParent()
	if !keyNameRule.MatchString(parent) {
		return nil, invalid("parent %q is invalid: want projects/{project}/locations/{location}/keyRings/{key_ring}/cryptoKeys/{crypto_key}", parent)
	}
	if err := noFilter(req.GetFilter(), req.GetOrderBy()); err != nil {
		return nil, err
	}
	// Versions are listed by number; the token is the last version name of the previous page.
	size, after, err := gcp.Paging(req.GetPageSize(), req.GetPageToken(), parent+"/cryptoKeyVersions/")
	if err != nil {
		return nil, err
	}
	start := 0
	if after != "" {
		sub := versionRule.FindStringSubmatch(after)
		if sub == nil || sub[1] != parent {
			return nil, invalid("page_token is not valid for this request")
		}
		start, _ = strconv.Atoi(sub[2])
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[parent]
	if !ok {
		return nil, notFound(parent)
	}
	out := &kmspb.ListCryptoKeyVersionsResponse{TotalSize: int32(len(k.versions))}
	for i := start; i < len(k.versions); i++ {
		if len(out.CryptoKeyVersions) == size {
			out.NextPageToken = gcp.PageToken(k.versions[i-1].pb.GetName())
			break
		}
		out.CryptoKeyVersions = append(out.CryptoKeyVersions, proto.Clone(k.versions[i].pb).(*kmspb.CryptoKeyVersion))
	}
	return out, nil
}

// ---- public key and signing

func (s *service) GetPublicKey(_ context.Context, req *kmspb.GetPublicKeyRequest) (*kmspb.PublicKey, error) {
	s.mu.Lock()
	v, err := s.lookupVersion(req.GetName())
	var pb *kmspb.CryptoKeyVersion
	if err == nil {
		pb = proto.Clone(v.pb).(*kmspb.CryptoKeyVersion)
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if st := pb.GetState(); st != kmspb.CryptoKeyVersion_ENABLED && st != kmspb.CryptoKeyVersion_DISABLED {
		return nil, status.Errorf(codes.FailedPrecondition, "%s is not enabled, current state is: %s.", pb.GetName(), st)
	}
	out := &kmspb.PublicKey{
		Pem:             v.pem,
		Algorithm:       pb.GetAlgorithm(),
		PemCrc32C:       wrapperspb.Int64(crc32c([]byte(v.pem))),
		Name:            pb.GetName(),
		ProtectionLevel: pb.GetProtectionLevel(),
	}
	switch f := req.GetPublicKeyFormat(); f {
	case kmspb.PublicKey_PUBLIC_KEY_FORMAT_UNSPECIFIED:
	case kmspb.PublicKey_PEM:
		out.PublicKeyFormat = f
		out.PublicKey = &kmspb.ChecksummedData{Data: []byte(v.pem), Crc32CChecksum: wrapperspb.Int64(crc32c([]byte(v.pem)))}
	case kmspb.PublicKey_DER:
		out.PublicKeyFormat = f
		out.PublicKey = &kmspb.ChecksummedData{Data: v.der, Crc32CChecksum: wrapperspb.Int64(crc32c(v.der))}
	default:
		return nil, invalid("public_key_format %s is not valid for algorithm %s", f, pb.GetAlgorithm())
	}
	return out, nil
}

func (s *service) AsymmetricSign(_ context.Context, req *kmspb.AsymmetricSignRequest) (*kmspb.AsymmetricSignResponse, error) {
	s.mu.Lock()
	v, err := s.lookupVersion(req.GetName())
	var pb *kmspb.CryptoKeyVersion
	if err == nil {
		pb = proto.Clone(v.pb).(*kmspb.CryptoKeyVersion)
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if st := pb.GetState(); st != kmspb.CryptoKeyVersion_ENABLED {
		return nil, status.Errorf(codes.FailedPrecondition, "%s is not enabled, current state is: %s.", pb.GetName(), st)
	}
	if len(req.GetData()) > 0 || req.GetDataCrc32C() != nil {
		if req.GetDigest() != nil {
			return nil, invalid("digest and data cannot both be set")
		}
		return nil, invalid("data can only be signed with algorithms that do not pre-hash; %s signs a digest: set digest", pb.GetAlgorithm())
	}
	if req.GetDigest() == nil {
		return nil, invalid("digest is required")
	}
	var digest []byte
	var hash crypto.Hash
	switch d := req.GetDigest().GetDigest().(type) {
	case *kmspb.Digest_Sha256:
		digest, hash = d.Sha256, crypto.SHA256
	case *kmspb.Digest_Sha384:
		digest, hash = d.Sha384, crypto.SHA384
	case *kmspb.Digest_Sha512:
		digest, hash = d.Sha512, crypto.SHA512
	case nil:
		return nil, invalid("digest is required")
	default:
		return nil, invalid("digest type %T is not valid for algorithm %s", d, pb.GetAlgorithm())
	}
	if c := req.GetDigestCrc32C(); c != nil && c.GetValue() != crc32c(digest) {
		return nil, invalid("The checksum in field digest_crc32c did not match the data in field digest.")
	}
	if hash != v.alg.hash {
		return nil, invalid("The requested digest type %s is not compatible with the algorithm %s, which needs %s.", hash, pb.GetAlgorithm(), v.alg.hash)
	}
	if len(digest) != hash.Size() {
		return nil, invalid("The digest length %d is invalid: a %s digest is %d bytes.", len(digest), hash, hash.Size())
	}
	var opts crypto.SignerOpts = hash
	if v.alg.pss {
		opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: hash}
	}
	sig, err := v.signer.Sign(rand.Reader, digest, opts) // ECDSA: ASN.1 DER, as the service returns it
	if err != nil {
		return nil, status.Errorf(codes.Internal, "signing: %v", err)
	}
	return &kmspb.AsymmetricSignResponse{
		Signature:            sig,
		SignatureCrc32C:      wrapperspb.Int64(crc32c(sig)),
		VerifiedDigestCrc32C: req.GetDigestCrc32C() != nil,
		Name:                 pb.GetName(),
		ProtectionLevel:      pb.GetProtectionLevel(),
	}, nil
}

// ---- listing helpers

func noFilter(filter, orderBy string) error {
	if filter != "" {
		return status.Error(codes.Unimplemented, "list filters are not emulated")
	}
	if orderBy != "" {
		return status.Error(codes.Unimplemented, "order_by is not emulated (lists are sorted by name)")
	}
	return nil
}

// page returns the sorted names under prefix (one level: no further '/') after after, and how many
// names are under prefix in all.
func page[V any](m map[string]V, prefix, after string) (names []string, total int) {
	for n := range m {
		if rest, ok := strings.CutPrefix(n, prefix); ok && !strings.Contains(rest, "/") {
			total++
			if n > after {
				names = append(names, n)
			}
		}
	}
	sort.Strings(names)
	return names, total
}
