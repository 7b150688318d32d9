// Package gcpsm is keyferry's store for Google Cloud Secret Manager (global secrets of one project),
// on cloud.google.com/go/secretmanager.
//
// # Names, labels, annotations
//
// A keyferry name is the secret id: 1–255 characters of [A-Za-z0-9_-], case-sensitive. User tags become
// the secret's labels, so they must follow the label rules (declared in Limits and refused before any
// call): keys start with a lowercase letter and hold lowercase letters, digits, '_' and '-'; values hold
// the same characters or are empty; each at most 63 characters and 128 bytes; at most 64 labels.
// keyferry's provenance record goes in the secret's annotations under the keyferry-* keys (never in
// labels, which are too narrow and which people filter and bill on). Other annotations are left alone.
//
// Put sets the labels to PutOptions.Tags when Tags is non-nil and leaves them as they are when it is nil.
// Provenance describes the current value, so every Put rewrites it: the given record, with ReplicaVersion
// set to the version number the Put created, or no record at all when PutOptions.Provenance is nil.
//
// # Text and binary
//
// Secret Manager stores bytes only. keyferry records which versions it wrote as binary in the annotation
//
//	keyferry-binary = "3,7,12"
//
// (comma-separated version numbers, the most recent 50 kept). A version is read back as binary when its
// number is listed there, or when its bytes are not valid UTF-8 (a foreign write of binary data); any other
// version reads back as text. Because the mark names a version, a later write by another tool is not
// mislabelled by it. The mark is written right after the version (AddSecretVersion returns its number), so
// a reader in between sees a binary value that happens to be valid UTF-8 as text for that moment.
//
// # Calls
//
//	Put       GetSecret, [CreateSecret], AddSecretVersion (with data_crc32c), [UpdateSecret with the etag]
//	Get       AccessSecretVersion(latest) (CRC32C verified), GetSecret
//	Describe  GetSecret, ListSecretVersions(page_size 1) for the current version — never AccessSecretVersion
//	List      ListSecrets, page by page as the caller iterates, with filter name:"<prefix>" AND
//	          labels.k="v"…; the prefix and tags are checked again client-side ("name:" matches a substring).
//	          List does not know each secret's current version (that would take a call per secret), so its
//	          Metadata has no Version and Binary is false.
//	Delete    DeleteSecret: immediate and irreversible (all versions); the name is free again at once.
//
// Permissions: Put needs secretmanager.secrets.get, .secrets.create, .secrets.update and .versions.add;
// Get and GetVersion need .versions.access and .secrets.get; Describe and Versions need .secrets.get and
// .versions.list; List needs .secrets.list; Delete needs .secrets.delete. PutOptions.ContentType is not
// recorded: Secret Manager has no content type.
//
// "Current" is what Secret Manager calls latest: the most recently created version, whatever its state.
// When it is disabled or destroyed, Get fails with ErrInvalidValue saying so rather than serve an older
// version.
//
// Every call goes through the SDK's gax retryer, retrying RESOURCE_EXHAUSTED and UNAVAILABLE with
// exponential backoff that honours the server's RetryInfo delay (RetrySettings). A retried CreateSecret
// that had in fact succeeded is recognised (AlreadyExists → carry on with the existing secret); a retried
// AddSecretVersion that had in fact succeeded leaves one extra version with the same value.
//
// The store implements store.Versioned and store.MetadataUpdater. It does not implement
// store.CompareAndSwapper: AddSecretVersion takes no etag or precondition (the secret's etag guards its
// metadata only, and adding a version does not change it), so "write only if the current version is N" can
// only be checked before the write, never atomically with it.
package gcpsm

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"iter"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/keyferry/keyferry/core/store"
)

// Type is the backend type name.
const Type = "gcp-secretmanager"

// KeyBinary is the annotation listing the versions keyferry wrote as binary.
const KeyBinary = store.ProvenancePrefix + "binary"

// maxBinaryMarks is how many binary version numbers KeyBinary keeps.
const maxBinaryMarks = 50

const defaultPageSize = 100

// Options configure a Store.
type Options struct {
	// Name is the configured store name.
	Name string
	// Project is the GCP project id (or number) holding the secrets.
	Project string
	// Client builds the Secret Manager client; it is called once, on first use, and the client is cached
	// (a failed build is tried again on the next call). Nil: secretmanager.NewClient(ctx, ClientOptions...)
	// with Application Default Credentials.
	Client func(ctx context.Context) (*secretmanager.Client, error)
	// ClientOptions go to secretmanager.NewClient when Client is nil (endpoint override, credentials).
	ClientOptions []option.ClientOption
	// Replication applies to secrets keyferry creates. It is immutable once a secret exists: secrets
	// that already exist keep theirs.
	Replication Replication
	// Topics are Pub/Sub topics (projects/*/topics/*, at most 10) set on the secrets keyferry creates,
	// so that Secret Manager publishes their change notifications.
	Topics []string
	// Retry configures the SDK's retries; the zero value means DefaultRetry().
	Retry RetrySettings
}

// Replication is a secret's replication policy.
type Replication struct {
	// Locations lists the regions of a user-managed policy (e.g. "europe-west1"); empty means automatic.
	Locations []string
}

func (r Replication) proto() *secretmanagerpb.Replication {
	if len(r.Locations) == 0 {
		return &secretmanagerpb.Replication{Replication: &secretmanagerpb.Replication_Automatic_{
			Automatic: &secretmanagerpb.Replication_Automatic{}}}
	}
	um := &secretmanagerpb.Replication_UserManaged{}
	for _, l := range r.Locations {
		um.Replicas = append(um.Replicas, &secretmanagerpb.Replication_UserManaged_Replica{Location: l})
	}
	return &secretmanagerpb.Replication{Replication: &secretmanagerpb.Replication_UserManaged_{UserManaged: um}}
}

var (
	projectRule  = regexp.MustCompile(`^[a-z0-9][a-z0-9.:-]{0,62}$`)
	topicRule    = regexp.MustCompile(`^projects/[^/]+/topics/[^/]+$`)
	locationRule = regexp.MustCompile(`^[a-z][a-z0-9-]*[a-z0-9]$`)
)

// limits are Secret Manager's, from its v1 API (store-limits.md §6).
var limits = store.Limits{
	NamePattern:     regexp.MustCompile(`^[A-Za-z0-9_-]+$`),
	NameRule:        "1–255 characters, ASCII letters, digits, '_' and '-' only (case-sensitive)",
	NameMinLen:      1,
	NameMaxLen:      255,
	MaxValueBytes:   65536,
	Binary:          store.BinaryNative,
	MaxTags:         64,
	TagKeyPattern:   regexp.MustCompile(`^[\p{Ll}\p{Lo}][\p{Ll}\p{Lo}\p{N}_-]*$`),
	TagValuePattern: regexp.MustCompile(`^[\p{Ll}\p{Lo}\p{N}_-]*$`),
	TagRule: "tags are GCP labels: keys start with a lowercase letter and hold only lowercase letters, digits, " +
		"'_' and '-'; values hold the same characters or are empty; keys and values at most 63 characters and " +
		"128 bytes; at most 64 labels",
	TagKeyMaxLen:   63,
	TagValueMaxLen: 63,
}

// maxLabelBytes is the label rule the rune-counting Limits cannot express.
const maxLabelBytes = 128

// maxProvenanceBytes keeps the provenance record well inside the 16 KiB annotation budget.
const maxProvenanceBytes = 8 * 1024

// Store is a Secret Manager store.
type Store struct {
	opts     Options
	parent   string
	callOpts []gax.CallOption

	mu     sync.Mutex
	client *secretmanager.Client
}

var (
	_ store.Store           = (*Store)(nil)
	_ store.Versioned       = (*Store)(nil)
	_ store.MetadataUpdater = (*Store)(nil)
)

// New checks opts and returns a Store. It makes no call: the client is built on first use.
func New(opts Options) (*Store, error) {
	if opts.Name == "" {
		return nil, errors.New("gcpsm: Options.Name is required")
	}
	if !projectRule.MatchString(opts.Project) {
		return nil, fmt.Errorf("gcpsm: store %q: Options.Project %q is not a GCP project id", opts.Name, opts.Project)
	}
	if len(opts.Topics) > 10 {
		return nil, fmt.Errorf("gcpsm: store %q: %d topics, Secret Manager allows at most 10", opts.Name, len(opts.Topics))
	}
	for _, t := range opts.Topics {
		if !topicRule.MatchString(t) {
			return nil, fmt.Errorf("gcpsm: store %q: topic %q is not of the form projects/PROJECT/topics/TOPIC", opts.Name, t)
		}
	}
	for _, l := range opts.Replication.Locations {
		if !locationRule.MatchString(l) {
			return nil, fmt.Errorf("gcpsm: store %q: replication location %q is not a GCP region", opts.Name, l)
		}
	}
	if opts.Retry == (RetrySettings{}) {
		opts.Retry = DefaultRetry()
	}
	if err := opts.Retry.validate(); err != nil {
		return nil, fmt.Errorf("gcpsm: store %q: %w", opts.Name, err)
	}
	return &Store{opts: opts, parent: "projects/" + opts.Project, callOpts: opts.Retry.CallOptions()}, nil
}

// Name is the configured store name.
func (s *Store) Name() string { return s.opts.Name }

// Type is "gcp-secretmanager".
func (s *Store) Type() string { return Type }

// Limits are Secret Manager's.
func (s *Store) Limits() store.Limits { return limits }

// Close closes the client, if it was built.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		return nil
	}
	err := s.client.Close()
	s.client = nil
	return err
}

func (s *Store) getClient(ctx context.Context, op, name string) (*secretmanager.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil {
		return s.client, nil
	}
	build := s.opts.Client
	if build == nil {
		build = func(ctx context.Context) (*secretmanager.Client, error) {
			return secretmanager.NewClient(ctx, s.opts.ClientOptions...)
		}
	}
	c, err := build(ctx)
	if err != nil {
		return nil, &store.Error{Kind: store.ErrUnavailable, Store: s.opts.Name, Op: op, Name: name,
			Detail: "cannot build the Secret Manager client", Hint: "check the credentials (Application Default Credentials) and the endpoint", Err: err}
	}
	s.client = c
	return c, nil
}

func (s *Store) secretPath(name string) string { return s.parent + "/secrets/" + name }

// checkTags adds what store.Limits cannot say to its tag check: label bytes. Provenance is not counted
// against the labels (unlike store.CheckPut, which assumes provenance shares the tags' room): here it
// lives in annotations.
func checkTags(tags map[string]string) error {
	if err := limits.CheckTags(tags, 0); err != nil {
		return err
	}
	for k, v := range tags {
		if len(k) > maxLabelBytes || len(v) > maxLabelBytes {
			return &store.Error{Kind: store.ErrInvalidTags,
				Detail: fmt.Sprintf("tag %q: label keys and values are at most %d bytes of UTF-8", k, maxLabelBytes)}
		}
	}
	return nil
}

func checkProvenance(p *store.Provenance) error {
	n := 0
	for k, v := range p.Entries() {
		n += len(k) + len(v)
	}
	if n > maxProvenanceBytes {
		return &store.Error{Kind: store.ErrInvalidTags,
			Detail: fmt.Sprintf("the provenance record takes %d bytes of annotations, at most %d are allowed", n, maxProvenanceBytes)}
	}
	return nil
}

func (s *Store) checkPut(name string, v store.Value, opts store.PutOptions) error {
	err := limits.CheckName(name)
	if err == nil {
		err = limits.CheckValue(v)
	}
	if err == nil {
		err = checkTags(opts.Tags)
	}
	if err == nil {
		err = checkProvenance(opts.Provenance)
	}
	return store.Annotate(err, s.opts.Name, "put", name)
}

// Get reads the current (latest) version and the secret's metadata.
func (s *Store) Get(ctx context.Context, name string) (store.Secret, error) {
	return s.read(ctx, "get", name, "latest")
}

// GetVersion reads one version (a version number, as Versions and Metadata.Version give them).
func (s *Store) GetVersion(ctx context.Context, name, version string) (store.Secret, error) {
	if err := store.CheckName(s, "get-version", name); err != nil {
		return store.Secret{}, err
	}
	if n, err := strconv.ParseInt(version, 10, 64); err != nil || n <= 0 {
		return store.Secret{}, &store.Error{Kind: store.ErrNotFound, Store: s.opts.Name, Op: "get-version", Name: name,
			Detail: fmt.Sprintf("version %q: Secret Manager versions are numbers 1, 2, 3…", version)}
	}
	return s.read(ctx, "get-version", name, version)
}

func (s *Store) read(ctx context.Context, op, name, version string) (store.Secret, error) {
	if err := store.CheckName(s, op, name); err != nil {
		return store.Secret{}, err
	}
	c, err := s.getClient(ctx, op, name)
	if err != nil {
		return store.Secret{}, err
	}
	resp, err := c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{
		Name: s.secretPath(name) + "/versions/" + version}, s.callOpts...)
	if err != nil {
		return store.Secret{}, s.fail(err, op, name, accessPrecondition(version))
	}
	data := resp.GetPayload().GetData()
	if want := resp.GetPayload().DataCrc32C; want != nil && *want != crc32c(data) {
		return store.Secret{}, &store.Error{Kind: store.ErrUnavailable, Store: s.opts.Name, Op: op, Name: name,
			Detail: "the value read does not match its CRC32C checksum (corrupted in transit)", Hint: "read it again"}
	}
	n := versionNumber(resp.GetName())
	sec, err := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: s.secretPath(name)}, s.callOpts...)
	if err != nil {
		return store.Secret{}, s.fail(err, op, name, nil)
	}
	binary := binaryVersions(sec.GetAnnotations())[n] || !utf8.Valid(data)
	md := s.metadata(sec, n, time.Time{})
	md.Binary = binary
	v := store.Text(string(data))
	if binary {
		v = store.Binary(data)
	}
	return store.Secret{Value: v, Metadata: md}, nil
}

func accessPrecondition(version string) *store.Error {
	what := "version " + version
	if version == "latest" {
		what = "the current (latest) version"
	}
	return &store.Error{Kind: store.ErrInvalidValue, Detail: what + " is disabled or destroyed, so its value cannot be read",
		Hint: "enable that version, or write a new one"}
}

// Put writes v as a new version, creating the secret (with the configured replication and topics) if it
// does not exist, and brings labels and annotations up to date.
func (s *Store) Put(ctx context.Context, name string, v store.Value, opts store.PutOptions) (store.Metadata, error) {
	if err := s.checkPut(name, v, opts); err != nil {
		return store.Metadata{}, err
	}
	c, err := s.getClient(ctx, "put", name)
	if err != nil {
		return store.Metadata{}, err
	}
	path := s.secretPath(name)
	sec, err := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: path}, s.callOpts...)
	if isCode(err, codes.NotFound) {
		sec, err = s.create(ctx, c, name, opts)
	}
	if err != nil {
		return store.Metadata{}, s.fail(err, "put", name, nil)
	}

	data := v.Bytes()
	crc := crc32c(data)
	ver, err := c.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{
		Parent: path, Payload: &secretmanagerpb.SecretPayload{Data: data, DataCrc32C: &crc}}, s.callOpts...)
	if err != nil {
		if isCode(err, codes.NotFound) {
			return store.Metadata{}, &store.Error{Kind: store.ErrConflict, Store: s.opts.Name, Op: "put", Name: name,
				Detail: "the secret was deleted while the value was being written", Hint: "write it again", Err: err}
		}
		return store.Metadata{}, s.fail(err, "put", name, nil)
	}
	n := versionNumber(ver.GetName())

	var binaryVersion int64
	if v.IsBinary() {
		binaryVersion = n
	}
	prov := opts.Provenance
	if prov != nil {
		p := *prov
		p.ReplicaVersion = strconv.FormatInt(n, 10)
		prov = &p
	}
	want := func(cur *secretmanagerpb.Secret) (map[string]string, map[string]string) {
		// As the Store contract says: the given tags are added or changed, the others kept (they may be
		// someone else's, or keyferry's rotation state).
		labels := cur.GetLabels()
		if len(opts.Tags) > 0 {
			labels = make(map[string]string, len(cur.GetLabels())+len(opts.Tags))
			for k, v := range cur.GetLabels() {
				labels[k] = v
			}
			for k, v := range opts.Tags {
				labels[k] = v
			}
		}
		return labels, desiredAnnotations(cur.GetAnnotations(), prov, binaryVersion)
	}
	sec, err = s.update(ctx, c, "put", name, sec, want)
	if err != nil {
		var se *store.Error
		if errors.As(err, &se) {
			c := *se
			c.Detail = fmt.Sprintf("version %d was written, but its labels and annotations were not updated: %s", n, c.Detail)
			err = &c
		}
		return store.Metadata{}, err
	}
	md := s.metadata(sec, n, ver.GetCreateTime().AsTime())
	md.Binary = v.IsBinary()
	return md, nil
}

// Create makes a new secret with v as version 1 in two calls (CreateSecret, AddSecretVersion): the
// provenance record names version 1 up front, since a new secret's first version is always 1. It fails with
// ErrAlreadyExists if the secret exists. Should the version come back with another number (someone added
// one in between), the record is corrected with an UpdateSecret as Put does.
func (s *Store) Create(ctx context.Context, name string, v store.Value, opts store.PutOptions) (store.Metadata, error) {
	if err := s.checkPut(name, v, opts); err != nil {
		return store.Metadata{}, err
	}
	c, err := s.getClient(ctx, "create", name)
	if err != nil {
		return store.Metadata{}, err
	}
	var prov *store.Provenance
	if opts.Provenance != nil {
		p := *opts.Provenance
		p.ReplicaVersion = "1"
		prov = &p
	}
	var binaryVersion int64
	if v.IsBinary() {
		binaryVersion = 1
	}
	sec := &secretmanagerpb.Secret{Replication: s.opts.Replication.proto(), Labels: opts.Tags,
		Annotations: desiredAnnotations(nil, prov, binaryVersion)}
	for _, t := range s.opts.Topics {
		sec.Topics = append(sec.Topics, &secretmanagerpb.Topic{Name: t})
	}
	created, err := c.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{Parent: s.parent, SecretId: name, Secret: sec}, s.callOpts...)
	if err != nil {
		return store.Metadata{}, s.fail(err, "create", name, nil)
	}
	data := v.Bytes()
	crc := crc32c(data)
	ver, err := c.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{
		Parent: created.GetName(), Payload: &secretmanagerpb.SecretPayload{Data: data, DataCrc32C: &crc}}, s.callOpts...)
	if err != nil {
		return store.Metadata{}, s.fail(err, "create", name, nil)
	}
	n := versionNumber(ver.GetName())
	if n != 1 {
		if prov != nil {
			prov.ReplicaVersion = strconv.FormatInt(n, 10)
		}
		bv := int64(0)
		if v.IsBinary() {
			bv = n
		}
		if created, err = s.update(ctx, c, "create", name, created, func(cur *secretmanagerpb.Secret) (map[string]string, map[string]string) {
			return cur.GetLabels(), desiredAnnotations(cur.GetAnnotations(), prov, bv)
		}); err != nil {
			return store.Metadata{}, err
		}
	}
	md := s.metadata(created, n, ver.GetCreateTime().AsTime())
	md.Binary = v.IsBinary()
	return md, nil
}

// create makes the secret with the configured replication and topics, the labels and the provenance
// record (its ReplicaVersion is not known yet). A create that finds the secret there (a concurrent writer,
// or a retried create that had succeeded) carries on with the existing secret.
func (s *Store) create(ctx context.Context, c *secretmanager.Client, name string, opts store.PutOptions) (*secretmanagerpb.Secret, error) {
	var prov *store.Provenance
	if opts.Provenance != nil {
		p := *opts.Provenance
		p.ReplicaVersion = "" // not known until the version exists
		prov = &p
	}
	sec := &secretmanagerpb.Secret{
		Replication: s.opts.Replication.proto(),
		Labels:      opts.Tags,
		Annotations: desiredAnnotations(nil, prov, 0),
	}
	for _, t := range s.opts.Topics {
		sec.Topics = append(sec.Topics, &secretmanagerpb.Topic{Name: t})
	}
	created, err := c.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{Parent: s.parent, SecretId: name, Secret: sec},
		s.callOpts...)
	if isCode(err, codes.AlreadyExists) {
		return c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: s.secretPath(name)}, s.callOpts...)
	}
	return created, err
}

// update writes labels and annotations computed by want from the secret as it is, with its etag, and
// only the fields that change. When the etag no longer matches (someone changed the metadata meanwhile),
// it reads the secret once more and recomputes from that, so their change is kept; a second mismatch is
// ErrConflict.
func (s *Store) update(ctx context.Context, c *secretmanager.Client, op, name string, cur *secretmanagerpb.Secret,
	want func(*secretmanagerpb.Secret) (labels, annotations map[string]string)) (*secretmanagerpb.Secret, error) {
	for attempt := 0; ; attempt++ {
		labels, annotations := want(cur)
		var paths []string
		if !sameMap(labels, cur.GetLabels()) {
			paths = append(paths, "labels")
		}
		if !sameMap(annotations, cur.GetAnnotations()) {
			paths = append(paths, "annotations")
		}
		if len(paths) == 0 {
			return cur, nil
		}
		updated, err := c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
			Secret:     &secretmanagerpb.Secret{Name: cur.GetName(), Labels: labels, Annotations: annotations, Etag: cur.GetEtag()},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: paths},
		}, s.callOpts...)
		if err == nil {
			return updated, nil
		}
		etagMismatch := isCode(err, codes.FailedPrecondition) || isCode(err, codes.Aborted)
		if !etagMismatch || attempt > 0 {
			return nil, s.fail(err, op, name, &store.Error{Kind: store.ErrConflict,
				Detail: "the secret's metadata was changed by someone else at the same time (etag mismatch)",
				Hint:   "try again"})
		}
		if cur, err = c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: s.secretPath(name)}, s.callOpts...); err != nil {
			return nil, s.fail(err, op, name, nil)
		}
	}
}

// UpdateMetadata replaces the labels with tags and the provenance record with prov (nil removes it),
// without writing a value. Nothing is sent when nothing changes.
func (s *Store) UpdateMetadata(ctx context.Context, name string, tags map[string]string, prov *store.Provenance) error {
	const op = "update-metadata"
	err := limits.CheckName(name)
	if err == nil {
		err = checkTags(tags)
	}
	if err == nil {
		err = checkProvenance(prov)
	}
	if err != nil {
		return store.Annotate(err, s.opts.Name, op, name)
	}
	c, err := s.getClient(ctx, op, name)
	if err != nil {
		return err
	}
	sec, err := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: s.secretPath(name)}, s.callOpts...)
	if err != nil {
		return s.fail(err, op, name, nil)
	}
	_, err = s.update(ctx, c, op, name, sec, func(cur *secretmanagerpb.Secret) (map[string]string, map[string]string) {
		return tags, desiredAnnotations(cur.GetAnnotations(), prov, 0)
	})
	return err
}

// Describe reads the secret's metadata and its current version number, never the value.
func (s *Store) Describe(ctx context.Context, name string) (store.Metadata, error) {
	const op = "describe"
	if err := store.CheckName(s, op, name); err != nil {
		return store.Metadata{}, err
	}
	c, err := s.getClient(ctx, op, name)
	if err != nil {
		return store.Metadata{}, err
	}
	sec, err := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: s.secretPath(name)}, s.callOpts...)
	if err != nil {
		return store.Metadata{}, s.fail(err, op, name, nil)
	}
	it := c.ListSecretVersions(ctx, &secretmanagerpb.ListSecretVersionsRequest{Parent: s.secretPath(name), PageSize: 1},
		s.callOpts...)
	latest, err := it.Next()
	switch {
	case errors.Is(err, iterator.Done):
		return s.metadata(sec, 0, time.Time{}), nil // a secret without versions
	case err != nil:
		return store.Metadata{}, s.fail(err, op, name, nil)
	}
	n := versionNumber(latest.GetName())
	md := s.metadata(sec, n, latest.GetCreateTime().AsTime())
	md.Binary = binaryVersions(sec.GetAnnotations())[n]
	return md, nil
}

// List yields the secrets matching opts, fetching pages as the caller iterates.
func (s *Store) List(ctx context.Context, opts store.ListOptions) iter.Seq2[store.Metadata, error] {
	return func(yield func(store.Metadata, error) bool) {
		const op = "list"
		filter, possible := listFilter(opts)
		if !possible {
			return // the prefix or a tag cannot exist in this store: nothing can match
		}
		c, err := s.getClient(ctx, op, "")
		if err != nil {
			yield(store.Metadata{}, err)
			return
		}
		size := opts.PageSize
		if size <= 0 {
			size = defaultPageSize
		}
		it := c.ListSecrets(ctx, &secretmanagerpb.ListSecretsRequest{Parent: s.parent, PageSize: int32(min(size, 25000)), Filter: filter},
			s.callOpts...)
		for {
			sec, err := it.Next()
			if errors.Is(err, iterator.Done) {
				return
			}
			if err != nil {
				yield(store.Metadata{}, s.fail(err, op, "", nil))
				return
			}
			if !strings.HasPrefix(secretID(sec.GetName()), opts.Prefix) || !hasTags(sec.GetLabels(), opts.Tags) {
				continue
			}
			if !yield(s.metadata(sec, 0, time.Time{}), nil) {
				return
			}
		}
	}
}

// listFilter builds the server-side filter. It reports false when no secret can match (a prefix or a tag
// that breaks the store's rules), so that no call is needed.
func listFilter(opts store.ListOptions) (string, bool) {
	var terms []string
	if opts.Prefix != "" {
		if !limits.NamePattern.MatchString(opts.Prefix) {
			return "", false
		}
		terms = append(terms, `name:"`+opts.Prefix+`"`)
	}
	for _, k := range slices.Sorted(maps.Keys(opts.Tags)) {
		v := opts.Tags[k]
		if checkTags(map[string]string{k: v}) != nil {
			return "", false
		}
		if v == "" {
			terms = append(terms, "labels."+k+":*")
		} else {
			terms = append(terms, "labels."+k+`="`+v+`"`)
		}
	}
	return strings.Join(terms, " AND "), true
}

func hasTags(labels, want map[string]string) bool {
	for k, v := range want {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// Delete deletes the secret and all its versions, at once and irreversibly (Secret Manager has no soft
// delete); DeleteOptions change nothing.
func (s *Store) Delete(ctx context.Context, name string, _ store.DeleteOptions) error {
	const op = "delete"
	if err := store.CheckName(s, op, name); err != nil {
		return err
	}
	c, err := s.getClient(ctx, op, name)
	if err != nil {
		return err
	}
	if err := c.DeleteSecret(ctx, &secretmanagerpb.DeleteSecretRequest{Name: s.secretPath(name)}, s.callOpts...); err != nil {
		return s.fail(err, op, name, nil)
	}
	return nil
}

// Versions yields the secret's versions, newest first, fetching pages as the caller iterates. Disabled
// and destroyed versions are included with Enabled false.
func (s *Store) Versions(ctx context.Context, name string) iter.Seq2[store.VersionInfo, error] {
	return func(yield func(store.VersionInfo, error) bool) {
		const op = "versions"
		if err := store.CheckName(s, op, name); err != nil {
			yield(store.VersionInfo{}, err)
			return
		}
		c, err := s.getClient(ctx, op, name)
		if err != nil {
			yield(store.VersionInfo{}, err)
			return
		}
		it := c.ListSecretVersions(ctx, &secretmanagerpb.ListSecretVersionsRequest{Parent: s.secretPath(name), PageSize: defaultPageSize},
			s.callOpts...)
		for {
			v, err := it.Next()
			if errors.Is(err, iterator.Done) {
				return
			}
			if err != nil {
				yield(store.VersionInfo{}, s.fail(err, op, name, nil))
				return
			}
			info := store.VersionInfo{
				Version: strconv.FormatInt(versionNumber(v.GetName()), 10),
				Created: v.GetCreateTime().AsTime(),
				Enabled: v.GetState() == secretmanagerpb.SecretVersion_ENABLED,
			}
			if !yield(info, nil) {
				return
			}
		}
	}
}

// metadata builds Metadata from a secret; version 0 means unknown.
func (s *Store) metadata(sec *secretmanagerpb.Secret, version int64, updated time.Time) store.Metadata {
	_, prov := store.SplitProvenance(sec.GetAnnotations())
	md := store.Metadata{
		Name:       secretID(sec.GetName()),
		Updated:    updated,
		Tags:       maps.Clone(sec.GetLabels()),
		Provenance: prov,
	}
	if md.Tags == nil {
		md.Tags = map[string]string{}
	}
	if version > 0 {
		md.Version = strconv.FormatInt(version, 10)
	}
	if ct := sec.GetCreateTime(); ct != nil {
		md.Created = ct.AsTime()
	}
	return md
}

// desiredAnnotations is cur with the provenance record replaced by prov (removed when nil), other
// annotations kept, and binaryVersion (if > 0) added to the binary marks.
func desiredAnnotations(cur map[string]string, prov *store.Provenance, binaryVersion int64) map[string]string {
	out := map[string]string{}
	for k, v := range cur {
		out[k] = v
	}
	for _, k := range store.ProvenanceKeys() {
		delete(out, k)
	}
	for k, v := range prov.Entries() {
		out[k] = v
	}
	if binaryVersion > 0 {
		marks := parseBinaryMarks(out[KeyBinary])
		if !slices.Contains(marks, binaryVersion) {
			marks = append(marks, binaryVersion)
		}
		if len(marks) > maxBinaryMarks {
			marks = marks[len(marks)-maxBinaryMarks:]
		}
		out[KeyBinary] = formatBinaryMarks(marks)
	}
	return out
}

func parseBinaryMarks(s string) []int64 {
	var out []int64
	for _, f := range strings.Split(s, ",") {
		if n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	return out
}

func formatBinaryMarks(marks []int64) string {
	parts := make([]string, len(marks))
	for i, n := range marks {
		parts[i] = strconv.FormatInt(n, 10)
	}
	return strings.Join(parts, ",")
}

func binaryVersions(annotations map[string]string) map[int64]bool {
	out := map[int64]bool{}
	for _, n := range parseBinaryMarks(annotations[KeyBinary]) {
		out[n] = true
	}
	return out
}

func sameMap(a, b map[string]string) bool {
	return maps.Equal(a, b) // nil and empty are equal
}

func crc32c(b []byte) int64 { return int64(crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))) }

// versionNumber takes the number from projects/P/secrets/S/versions/N (0 if there is none).
func versionNumber(name string) int64 {
	i := strings.LastIndex(name, "/versions/")
	if i < 0 {
		return 0
	}
	n, _ := strconv.ParseInt(name[i+len("/versions/"):], 10, 64)
	return n
}

// secretID takes S from projects/P/secrets/S (the service answers with the project number for P).
func secretID(name string) string {
	if i := strings.LastIndex(name, "/secrets/"); i >= 0 {
		return name[i+len("/secrets/"):]
	}
	return name
}
