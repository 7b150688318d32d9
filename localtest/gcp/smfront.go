package gcp

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"regexp"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"cloud.google.com/go/iam/apiv1/iampb"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

// The service's rules, as the v1 API documents them.
var (
	secretIDRule      = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)
	labelKeyRule      = regexp.MustCompile(`^[\p{Ll}\p{Lo}][\p{Ll}\p{Lo}\p{N}_-]{0,62}$`)
	labelValueRule    = regexp.MustCompile(`^[\p{Ll}\p{Lo}\p{N}_-]{0,63}$`)
	annotationKeyRule = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$`)
	topicNameRule     = regexp.MustCompile(`^projects/[^/]+/topics/[^/]+$`)
)

const (
	maxPayloadBytes     = 65536
	maxLabels           = 64
	maxLabelBytes       = 128
	maxAnnotationsBytes = 16 * 1024 // total size must be less than this
	maxTopics           = 10
	defaultListPageSize = 100
	maxListPageSize     = 25000
)

// Change is what a successful mutating call did, for interceptors (SecretManagerOptions.Interceptors)
// that react to changes, such as one publishing Secret Manager notifications.
type Change struct {
	Method string // "CreateSecret", "UpdateSecret", "DeleteSecret", "AddSecretVersion", "EnableSecretVersion", ...
	// Secret as stored after the call (for DeleteSecret: just before it), topics and rotation included.
	Secret *secretmanagerpb.Secret
	// Version for the version calls.
	Version *secretmanagerpb.SecretVersion
	// TopicsChanged is true when the call set or changed the secret's topics (CreateSecret with topics,
	// UpdateSecret with "topics" in its mask).
	TopicsChanged bool
}

type changeSlotKey struct{}

type changeSlot struct {
	mu sync.Mutex
	c  *Change
}

// changeSlotInterceptor gives each call a slot the front server fills in with its Change.
func changeSlotInterceptor(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	return h(context.WithValue(ctx, changeSlotKey{}, &changeSlot{}), req)
}

// ChangeFrom returns, inside an interceptor and after its handler returned, what the call changed; nil
// for calls that changed nothing (reads, failures).
func ChangeFrom(ctx context.Context) *Change {
	s, _ := ctx.Value(changeSlotKey{}).(*changeSlot)
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.c
}

func wantsChange(ctx context.Context) bool { return ctx.Value(changeSlotKey{}) != nil }

func setChange(ctx context.Context, c *Change) {
	if s, _ := ctx.Value(changeSlotKey{}).(*changeSlot); s != nil {
		s.mu.Lock()
		s.c = c
		s.mu.Unlock()
	}
}

// secretExtra is what the front server keeps per secret itself, rather than trust the emulator with.
type secretExtra struct {
	etag        string
	labels      map[string]string
	annotations map[string]string
	topics      []*secretmanagerpb.Topic
	rotation    *secretmanagerpb.Rotation
}

// frontServer forwards every call to the emulator and adds what it lacks (see the package doc).
type frontServer struct {
	secretmanagerpb.UnimplementedSecretManagerServiceServer
	inner secretmanagerpb.SecretManagerServiceClient

	// mu serialises metadata mutations against each other and against reads of metadata, so that an etag
	// check and the update it guards are atomic and a read returns labels and etag of the same state.
	mu    sync.RWMutex
	extra map[string]*secretExtra // by secret resource name
}

func newFrontServer(inner secretmanagerpb.SecretManagerServiceClient) *frontServer {
	return &frontServer{inner: inner, extra: map[string]*secretExtra{}}
}

func newEtag() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return `"` + hex.EncodeToString(b) + `"`
}

func quoteEtag(e string) string {
	if e == "" || strings.HasPrefix(e, `"`) {
		return e
	}
	return `"` + e + `"`
}

func cloneMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// decorate returns a copy of the emulator's secret with what the front server keeps. Call with mu held.
func (f *frontServer) decorate(s *secretmanagerpb.Secret) *secretmanagerpb.Secret {
	out := proto.Clone(s).(*secretmanagerpb.Secret)
	x := f.extra[s.GetName()]
	if x == nil {
		out.Etag = quoteEtag(out.GetEtag())
		return out
	}
	out.Etag = x.etag
	out.Labels = cloneMap(x.labels)
	out.Annotations = cloneMap(x.annotations)
	out.Topics = nil
	for _, t := range x.topics {
		out.Topics = append(out.Topics, proto.Clone(t).(*secretmanagerpb.Topic))
	}
	if x.rotation != nil {
		out.Rotation = proto.Clone(x.rotation).(*secretmanagerpb.Rotation)
	}
	return out
}

func decorateVersion(v *secretmanagerpb.SecretVersion) *secretmanagerpb.SecretVersion {
	if v == nil {
		return nil
	}
	out := proto.Clone(v).(*secretmanagerpb.SecretVersion)
	out.Etag = quoteEtag(out.GetEtag())
	return out
}

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

func checkLabels(labels map[string]string) error {
	if len(labels) > maxLabels {
		return invalid("A resource may have at most %d labels, got %d.", maxLabels, len(labels))
	}
	for k, v := range labels {
		if !labelKeyRule.MatchString(k) || len(k) > maxLabelBytes {
			return invalid("Label key %q is invalid: keys start with a lowercase letter, contain only lowercase letters, digits, '_' and '-', and are at most 63 characters and %d bytes.", k, maxLabelBytes)
		}
		if !labelValueRule.MatchString(v) || len(v) > maxLabelBytes {
			return invalid("Label value for key %q is invalid: values contain only lowercase letters, digits, '_' and '-', and are at most 63 characters and %d bytes.", k, maxLabelBytes)
		}
	}
	return nil
}

func checkAnnotations(annotations map[string]string) error {
	total := 0
	for k, v := range annotations {
		if !annotationKeyRule.MatchString(k) || len(k) > maxLabelBytes {
			return invalid("Annotation key %q is invalid: 1-63 characters, alphanumeric at both ends, '-', '_' and '.' inside.", k)
		}
		total += len(k) + len(v)
	}
	if total >= maxAnnotationsBytes {
		return invalid("The total size of annotation keys and values must be less than 16KiB, got %d bytes.", total)
	}
	return nil
}

func checkTopics(topics []*secretmanagerpb.Topic) error {
	if len(topics) > maxTopics {
		return invalid("A secret may have at most %d topics, got %d.", maxTopics, len(topics))
	}
	for _, t := range topics {
		if !topicNameRule.MatchString(t.GetName()) {
			return invalid("Topic name %q must have the form projects/*/topics/*.", t.GetName())
		}
	}
	return nil
}

func checkReplication(r *secretmanagerpb.Replication) error {
	if um := r.GetUserManaged(); um != nil {
		if len(um.GetReplicas()) == 0 {
			return invalid("Replication.user_managed must have at least one replica.")
		}
		for _, rep := range um.GetReplicas() {
			if rep.GetLocation() == "" {
				return invalid("Every user-managed replica needs a location.")
			}
		}
	}
	return nil
}

// CreateSecret validates as the service does, keeps labels, annotations, topics and rotation itself and
// gives the secret a fresh etag.
func (f *frontServer) CreateSecret(ctx context.Context, req *secretmanagerpb.CreateSecretRequest) (*secretmanagerpb.Secret, error) {
	if req.GetSecretId() != "" && !secretIDRule.MatchString(req.GetSecretId()) {
		return nil, invalid("Secret ID must match [A-Za-z0-9_-]{1,255}.")
	}
	s := req.GetSecret()
	if err := checkLabels(s.GetLabels()); err != nil {
		return nil, err
	}
	if err := checkAnnotations(s.GetAnnotations()); err != nil {
		return nil, err
	}
	if err := checkTopics(s.GetTopics()); err != nil {
		return nil, err
	}
	if err := checkReplication(s.GetReplication()); err != nil {
		return nil, err
	}
	if s.GetRotation() != nil && len(s.GetTopics()) == 0 {
		return nil, invalid("A rotation policy requires at least one topic.")
	}
	if s.GetExpiration() != nil {
		return nil, status.Error(codes.Unimplemented, "expiration (expire_time, ttl) is not emulated locally")
	}
	fwd := proto.Clone(req).(*secretmanagerpb.CreateSecretRequest)
	if fwd.Secret != nil {
		fwd.Secret.Labels, fwd.Secret.Annotations, fwd.Secret.Topics, fwd.Secret.Rotation, fwd.Secret.Etag = nil, nil, nil, nil, ""
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	created, err := f.inner.CreateSecret(ctx, fwd)
	if err != nil {
		return nil, err
	}
	x := &secretExtra{etag: newEtag(), labels: cloneMap(s.GetLabels()), annotations: cloneMap(s.GetAnnotations())}
	for _, t := range s.GetTopics() {
		x.topics = append(x.topics, proto.Clone(t).(*secretmanagerpb.Topic))
	}
	if s.GetRotation() != nil {
		x.rotation = proto.Clone(s.GetRotation()).(*secretmanagerpb.Rotation)
	}
	f.extra[created.GetName()] = x
	out := f.decorate(created)
	setChange(ctx, &Change{Method: "CreateSecret", Secret: out, TopicsChanged: len(x.topics) > 0})
	return out, nil
}

// GetSecret returns the emulator's secret with the front server's metadata.
func (f *frontServer) GetSecret(ctx context.Context, req *secretmanagerpb.GetSecretRequest) (*secretmanagerpb.Secret, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s, err := f.inner.GetSecret(ctx, req)
	if err != nil {
		return nil, err
	}
	return f.decorate(s), nil
}

var updatablePaths = map[string]bool{
	"labels": true, "annotations": true, "topics": true, "rotation": true, "version_aliases": true,
	"version_destroy_ttl": true, "etag": true,
}

// UpdateSecret checks the etag atomically with the update, renews it (no-op updates included), and
// replaces exactly the masked fields (an empty labels map clears the labels, which the emulator cannot).
func (f *frontServer) UpdateSecret(ctx context.Context, req *secretmanagerpb.UpdateSecretRequest) (*secretmanagerpb.Secret, error) {
	s := req.GetSecret()
	if s.GetName() == "" {
		return nil, invalid("secret.name is required")
	}
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		return nil, invalid("update_mask is required and must name at least one field")
	}
	var innerPaths []string
	for _, p := range paths {
		switch {
		case p == "replication":
			return nil, invalid("Secret.replication is immutable and cannot be updated.")
		case p == "expire_time" || p == "ttl":
			return nil, status.Error(codes.Unimplemented, "expiration (expire_time, ttl) is not emulated locally")
		case !updatablePaths[p]:
			return nil, invalid("update_mask path %q is not a mutable field of Secret.", p)
		case p == "labels":
			if err := checkLabels(s.GetLabels()); err != nil {
				return nil, err
			}
		case p == "annotations":
			if err := checkAnnotations(s.GetAnnotations()); err != nil {
				return nil, err
			}
		case p == "topics":
			if err := checkTopics(s.GetTopics()); err != nil {
				return nil, err
			}
		case p == "version_aliases":
			innerPaths = append(innerPaths, p)
		}
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	cur, err := f.inner.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: s.GetName()})
	if err != nil {
		return nil, err
	}
	x := f.extra[cur.GetName()]
	if x == nil {
		x = &secretExtra{etag: newEtag()}
		f.extra[cur.GetName()] = x
	}
	if e := s.GetEtag(); e != "" && e != x.etag {
		return nil, status.Errorf(codes.FailedPrecondition,
			"The etag %s does not match the current etag of secret [%s].", e, s.GetName())
	}
	next := *x
	topicsChanged := false
	for _, p := range paths {
		switch p {
		case "labels":
			next.labels = cloneMap(s.GetLabels())
		case "annotations":
			next.annotations = cloneMap(s.GetAnnotations())
		case "topics":
			next.topics = nil
			for _, t := range s.GetTopics() {
				next.topics = append(next.topics, proto.Clone(t).(*secretmanagerpb.Topic))
			}
			topicsChanged = true
		case "rotation":
			next.rotation = nil
			if s.GetRotation() != nil {
				next.rotation = proto.Clone(s.GetRotation()).(*secretmanagerpb.Rotation)
			}
		}
	}
	if next.rotation != nil && len(next.topics) == 0 {
		return nil, invalid("A rotation policy requires at least one topic.")
	}
	if len(innerPaths) > 0 {
		fwd := &secretmanagerpb.UpdateSecretRequest{
			Secret:     &secretmanagerpb.Secret{Name: s.GetName(), VersionAliases: s.GetVersionAliases()},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: innerPaths},
		}
		if cur, err = f.inner.UpdateSecret(ctx, fwd); err != nil {
			return nil, err
		}
	}
	next.etag = newEtag()
	*x = next
	out := f.decorate(cur)
	setChange(ctx, &Change{Method: "UpdateSecret", Secret: out, TopicsChanged: topicsChanged})
	return out, nil
}

// DeleteSecret checks the etag atomically with the delete.
func (f *frontServer) DeleteSecret(ctx context.Context, req *secretmanagerpb.DeleteSecretRequest) (*emptypb.Empty, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, err := f.inner.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: req.GetName()})
	if err != nil {
		return nil, err
	}
	if x := f.extra[cur.GetName()]; x != nil && req.GetEtag() != "" && req.GetEtag() != x.etag {
		return nil, status.Errorf(codes.FailedPrecondition,
			"The etag %s does not match the current etag of secret [%s].", req.GetEtag(), req.GetName())
	}
	before := f.decorate(cur)
	if _, err := f.inner.DeleteSecret(ctx, &secretmanagerpb.DeleteSecretRequest{Name: req.GetName()}); err != nil {
		return nil, err
	}
	delete(f.extra, cur.GetName())
	setChange(ctx, &Change{Method: "DeleteSecret", Secret: before})
	return &emptypb.Empty{}, nil
}

// secretFor reads a secret with the front server's metadata, for Change records.
func (f *frontServer) secretFor(ctx context.Context, name string) *secretmanagerpb.Secret {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s, err := f.inner.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: name})
	if err != nil {
		return nil
	}
	return f.decorate(s)
}

// AddSecretVersion refuses payloads larger than the service accepts.
func (f *frontServer) AddSecretVersion(ctx context.Context, req *secretmanagerpb.AddSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	if n := len(req.GetPayload().GetData()); n > maxPayloadBytes {
		return nil, invalid("Secret payload is %d bytes; it must be at most %d bytes.", n, maxPayloadBytes)
	}
	v, err := f.inner.AddSecretVersion(ctx, req)
	if err != nil {
		return nil, err
	}
	v = decorateVersion(v)
	if wantsChange(ctx) {
		setChange(ctx, &Change{Method: "AddSecretVersion", Secret: f.secretFor(ctx, req.GetParent()), Version: v})
	}
	return v, nil
}

// resolveLatest maps versions/latest to the most recently created version, whatever its state.
func (f *frontServer) resolveLatest(ctx context.Context, name string) (string, error) {
	parent, ok := strings.CutSuffix(name, "/versions/latest")
	if !ok {
		return name, nil
	}
	resp, err := f.inner.ListSecretVersions(ctx, &secretmanagerpb.ListSecretVersionsRequest{Parent: parent, PageSize: 1})
	if err != nil {
		return "", err
	}
	if len(resp.GetVersions()) == 0 {
		return "", status.Errorf(codes.NotFound, "Secret [%s] has no versions.", parent)
	}
	return resp.GetVersions()[0].GetName(), nil
}

// GetSecretVersion resolves "latest" as the service does.
func (f *frontServer) GetSecretVersion(ctx context.Context, req *secretmanagerpb.GetSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	name, err := f.resolveLatest(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	v, err := f.inner.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: name})
	return decorateVersion(v), err
}

// AccessSecretVersion resolves "latest" as the service does and always returns the payload's CRC32C.
func (f *frontServer) AccessSecretVersion(ctx context.Context, req *secretmanagerpb.AccessSecretVersionRequest) (*secretmanagerpb.AccessSecretVersionResponse, error) {
	name, err := f.resolveLatest(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	resp, err := f.inner.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: name})
	if err != nil {
		return nil, err
	}
	if resp.Payload != nil {
		crc := int64(crc32.Checksum(resp.Payload.GetData(), crc32.MakeTable(crc32.Castagnoli)))
		resp.Payload.DataCrc32C = &crc
	}
	return resp, nil
}

// ListSecretVersions passes through (the emulator pages and filters by state, newest first).
func (f *frontServer) ListSecretVersions(ctx context.Context, req *secretmanagerpb.ListSecretVersionsRequest) (*secretmanagerpb.ListSecretVersionsResponse, error) {
	if req.GetPageSize() < 0 {
		return nil, invalid("page_size must not be negative")
	}
	resp, err := f.inner.ListSecretVersions(ctx, req)
	if err != nil {
		return nil, err
	}
	for i, v := range resp.Versions {
		resp.Versions[i] = decorateVersion(v)
	}
	return resp, nil
}

// versionState runs a version state change with the service's etag semantics.
func (f *frontServer) versionState(ctx context.Context, method, name, etag string,
	call func() (*secretmanagerpb.SecretVersion, error)) (*secretmanagerpb.SecretVersion, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if etag != "" {
		cur, err := f.inner.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: name})
		if err != nil {
			return nil, err
		}
		if quoteEtag(cur.GetEtag()) != etag {
			return nil, status.Errorf(codes.FailedPrecondition,
				"The etag %s does not match the current etag of secret version [%s].", etag, name)
		}
	}
	v, err := call()
	if err != nil {
		return nil, err
	}
	v = decorateVersion(v)
	if wantsChange(ctx) {
		if parent, _, ok := strings.Cut(name, "/versions/"); ok {
			s, err := f.inner.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: parent})
			if err == nil {
				setChange(ctx, &Change{Method: method, Secret: f.decorate(s), Version: v})
			}
		}
	}
	return v, nil
}

func (f *frontServer) EnableSecretVersion(ctx context.Context, req *secretmanagerpb.EnableSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	return f.versionState(ctx, "EnableSecretVersion", req.GetName(), req.GetEtag(), func() (*secretmanagerpb.SecretVersion, error) {
		return f.inner.EnableSecretVersion(ctx, &secretmanagerpb.EnableSecretVersionRequest{Name: req.GetName()})
	})
}

func (f *frontServer) DisableSecretVersion(ctx context.Context, req *secretmanagerpb.DisableSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	return f.versionState(ctx, "DisableSecretVersion", req.GetName(), req.GetEtag(), func() (*secretmanagerpb.SecretVersion, error) {
		return f.inner.DisableSecretVersion(ctx, &secretmanagerpb.DisableSecretVersionRequest{Name: req.GetName()})
	})
}

func (f *frontServer) DestroySecretVersion(ctx context.Context, req *secretmanagerpb.DestroySecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	return f.versionState(ctx, "DestroySecretVersion", req.GetName(), req.GetEtag(), func() (*secretmanagerpb.SecretVersion, error) {
		return f.inner.DestroySecretVersion(ctx, &secretmanagerpb.DestroySecretVersionRequest{Name: req.GetName()})
	})
}

func (f *frontServer) SetIamPolicy(ctx context.Context, req *iampb.SetIamPolicyRequest) (*iampb.Policy, error) {
	return f.inner.SetIamPolicy(ctx, req)
}

func (f *frontServer) GetIamPolicy(ctx context.Context, req *iampb.GetIamPolicyRequest) (*iampb.Policy, error) {
	return f.inner.GetIamPolicy(ctx, req)
}

func (f *frontServer) TestIamPermissions(ctx context.Context, req *iampb.TestIamPermissionsRequest) (*iampb.TestIamPermissionsResponse, error) {
	return f.inner.TestIamPermissions(ctx, req)
}

// ListSecrets reads every secret of the parent from the emulator, filters, sorts by name as the service
// does, and pages with a keyset token (the name the previous page ended with), so that secrets created or
// deleted between pages make no page skip or repeat another entry.
func (f *frontServer) ListSecrets(ctx context.Context, req *secretmanagerpb.ListSecretsRequest) (*secretmanagerpb.ListSecretsResponse, error) {
	if req.GetParent() == "" {
		return nil, invalid("parent is required")
	}
	if req.GetPageSize() < 0 {
		return nil, invalid("page_size must not be negative")
	}
	match, err := parseSecretFilter(req.GetFilter())
	if err != nil {
		return nil, err
	}
	after := ""
	if tok := req.GetPageToken(); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || !strings.HasPrefix(string(b), req.GetParent()+"/secrets/") {
			return nil, invalid("page_token is not valid for this request")
		}
		after = string(b)
	}

	f.mu.RLock()
	var all []*secretmanagerpb.Secret
	next := ""
	for {
		resp, err := f.inner.ListSecrets(ctx, &secretmanagerpb.ListSecretsRequest{Parent: req.GetParent(), PageSize: 1000, PageToken: next})
		if err != nil {
			f.mu.RUnlock()
			return nil, err
		}
		for _, s := range resp.GetSecrets() {
			if d := f.decorate(s); match(d) {
				all = append(all, d)
			}
		}
		if next = resp.GetNextPageToken(); next == "" {
			break
		}
	}
	f.mu.RUnlock()

	sort.Slice(all, func(i, j int) bool { return all[i].GetName() < all[j].GetName() })
	start := sort.Search(len(all), func(i int) bool { return all[i].GetName() > after })
	size := int(req.GetPageSize())
	if size == 0 {
		size = defaultListPageSize
	}
	size = min(size, maxListPageSize)
	end := min(start+size, len(all))
	out := &secretmanagerpb.ListSecretsResponse{Secrets: all[start:end], TotalSize: int32(len(all))}
	if end < len(all) {
		out.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(all[end-1].GetName()))
	}
	return out, nil
}

// parseSecretFilter understands conjunctions (AND, or juxtaposition) of:
//
//	name:VALUE          the secret id contains VALUE (case-insensitive; * matches any run of characters)
//	labels.KEY=VALUE    the label KEY equals VALUE
//	labels.KEY:VALUE    the same
//	labels.KEY:*        the label KEY is present
//
// VALUE may be double-quoted. Anything else is refused with INVALID_ARGUMENT.
func parseSecretFilter(filter string) (func(*secretmanagerpb.Secret) bool, error) {
	terms, err := splitFilter(filter)
	if err != nil {
		return nil, err
	}
	var preds []func(*secretmanagerpb.Secret) bool
	for _, t := range terms {
		if t == "AND" {
			continue
		}
		if t == "OR" || t == "NOT" || strings.HasPrefix(t, "-") {
			return nil, invalid("filter %q: %s is not supported by the local emulator", filter, t)
		}
		i := strings.IndexAny(t, ":=")
		if i <= 0 {
			return nil, invalid("filter %q: term %q has no field and operator", filter, t)
		}
		field, op, raw := t[:i], t[i], t[i+1:]
		value := raw
		if strings.HasPrefix(raw, `"`) {
			if value, err = unquote(raw); err != nil {
				return nil, invalid("filter %q: bad quoted value %s", filter, raw)
			}
		}
		switch {
		case field == "name" && op == ':':
			pattern := strings.ToLower(value)
			preds = append(preds, func(s *secretmanagerpb.Secret) bool {
				return wildcardContains(strings.ToLower(secretID(s.GetName())), pattern)
			})
		case strings.HasPrefix(field, "labels.") && len(field) > len("labels."):
			key := strings.TrimPrefix(field, "labels.")
			if op == ':' && raw == "*" {
				preds = append(preds, func(s *secretmanagerpb.Secret) bool { _, ok := s.GetLabels()[key]; return ok })
				continue
			}
			preds = append(preds, func(s *secretmanagerpb.Secret) bool {
				v, ok := s.GetLabels()[key]
				return ok && v == value
			})
		default:
			return nil, invalid("filter %q: term %q is not supported by the local emulator", filter, t)
		}
	}
	return func(s *secretmanagerpb.Secret) bool {
		for _, p := range preds {
			if !p(s) {
				return false
			}
		}
		return true
	}, nil
}

// splitFilter splits on spaces outside double quotes.
func splitFilter(filter string) ([]string, error) {
	var terms []string
	var cur strings.Builder
	inQuote, escaped := false, false
	for _, r := range filter {
		switch {
		case escaped:
			escaped = false
		case inQuote && r == '\\':
			escaped = true
		case r == '"':
			inQuote = !inQuote
		case !inQuote && (r == ' ' || r == '\t' || r == '\n'):
			if cur.Len() > 0 {
				terms = append(terms, cur.String())
				cur.Reset()
			}
			continue
		}
		cur.WriteRune(r)
	}
	if inQuote {
		return nil, invalid("filter %q: unterminated quote", filter)
	}
	if cur.Len() > 0 {
		terms = append(terms, cur.String())
	}
	return terms, nil
}

func unquote(s string) (string, error) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return "", fmt.Errorf("not a quoted string")
	}
	var b strings.Builder
	escaped := false
	for _, r := range s[1 : len(s)-1] {
		if !escaped && r == '\\' {
			escaped = true
			continue
		}
		escaped = false
		b.WriteRune(r)
	}
	if escaped || !utf8.ValidString(s) {
		return "", fmt.Errorf("bad escape")
	}
	return b.String(), nil
}

// wildcardContains reports whether s contains pattern, where * in pattern matches any run of characters.
func wildcardContains(s, pattern string) bool {
	parts := strings.Split(pattern, "*")
	pos := 0
	for _, p := range parts {
		i := strings.Index(s[pos:], p)
		if i < 0 {
			return false
		}
		pos += i + len(p)
	}
	return true
}

func secretID(name string) string {
	if i := strings.LastIndex(name, "/secrets/"); i >= 0 {
		return name[i+len("/secrets/"):]
	}
	return name
}
