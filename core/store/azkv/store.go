// Package azkv is the Azure Key Vault secrets backend (azsecrets v1.5).
//
// # Credentials
//
// In production the client authenticates with the managed identity of the Azure Function it runs in
// (azidentity.NewManagedIdentityCredential, which reads IDENTITY_ENDPOINT / IDENTITY_HEADER); there is
// no static secret. Options.Client replaces the client builder (tests, other credentials); it is called
// once, on first use, and cached.
//
// # Limits
//
// Names: 1-127 characters of 0-9, a-z, A-Z and "-", compared case-insensitively. Values: strings of at
// most 25,600 characters; the service counts UTF-16 code units, this adapter counts UTF-8 bytes, which
// are never fewer, so whatever the adapter accepts the service accepts. Tags: at most 15 per secret,
// names and values up to 512 characters; keyferry's provenance entries count against the 15.
//
// # Binary values
//
// Key Vault holds strings only. A binary value is stored as standard base64 and marked by its content
// type: the content type gets the parameter "; keyferry-encoding=base64" (BinaryContentTypeSuffix),
// after the caller's content type or after "application/octet-stream" when the caller gave none. A value
// read back with the marker is decoded and returned as binary, with the marker removed from the reported
// content type; every other value is returned as text, exactly as stored, even if it looks like base64.
// Nothing is ever encoded twice. A text value may not carry the marker in its content type. The 25,600
// limit applies to the encoded form, so a binary value holds at most 19,200 bytes.
//
// # Reads that never return a value
//
// Describe and List never call GetSecret. List reads the secret listing (one call per page of up to 25);
// its items carry the current version's tags, content type and dates but not the version id, so List
// leaves Metadata.Version empty. Describe reads all versions' properties (one call per 25 versions) and
// takes the newest by creation time as the current one: its cost grows with the number of versions.
// The service dates versions to the second and lists them in version-id order, so two versions created
// in the same second cannot be ordered from metadata alone: versions this Store wrote itself are ordered
// by write order; others fall back to version-id order, which may be wrong. Get (GetSecret) always
// returns the true current version.
//
// # Deletes, recovery and purge
//
// Soft delete is always on. Delete returns once the service shows the secret as deleted; while deleted,
// writes to the name fail with store.ErrSoftDeleted until Recover or Purge. Force deletes and then
// purges. Delete, Recover and Purge complete asynchronously in the service; the Store polls with
// metadata calls (GetDeletedSecret, version listings), never by reading the value, every PollInterval
// up to PollTimeout. The service keeps a name blocked for a few seconds after a purge
// (ObjectIsBeingDeleted) or during a recover (ObjectIsBeingRecovered); the retry policy waits those out.
package azkv

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"iter"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyferry/keyferry/core/store"
)

// Type is the backend type name.
const Type = "azure-keyvault"

// BinaryContentTypeSuffix marks a base64-encoded binary value in the secret's content type.
const BinaryContentTypeSuffix = "; keyferry-encoding=base64"

// DefaultBinaryContentType is the content type recorded for binary values written without one.
const DefaultBinaryContentType = "application/octet-stream"

const (
	maxContentType  = 255
	defaultPageSize = 25 // the service's default and maximum
)

var limits = store.Limits{
	NamePattern:        regexp.MustCompile(`^[0-9a-zA-Z-]+$`),
	NameRule:           "1-127 characters, letters, digits and hyphens only (names are case-insensitive)",
	NameMinLen:         1,
	NameMaxLen:         127,
	CaseInsensitive:    true,
	MaxValueBytes:      25600,
	Binary:             store.BinaryBase64,
	MaxTags:            15,
	TagKeyMaxLen:       512,
	TagValueMaxLen:     512,
	TagRule:            "at most 15 tags per secret, keyferry's provenance entries included; names and values up to 512 characters",
	MetadataPerVersion: true,
}

// Options configure a Store.
type Options struct {
	// Name is the configured store name.
	Name string
	// VaultURL is the vault, e.g. https://myvault.vault.azure.net. Required unless Client is set.
	VaultURL string
	// ManagedIdentityClientID selects a user-assigned managed identity for the default client
	// ("" = the system-assigned identity).
	ManagedIdentityClientID string
	// Client builds the client; called once, on first use. Nil: ManagedIdentityClient(VaultURL, ...).
	Client func(ctx context.Context) (*azsecrets.Client, error)
	// PollInterval is how often Delete, Recover and Purge check for completion (default 1s).
	PollInterval time.Duration
	// PollTimeout bounds that wait (default 2 minutes).
	PollTimeout time.Duration
}

// Store is one configured Key Vault.
type Store struct {
	opts Options

	mu sync.Mutex
	c  *azsecrets.Client

	writes writeLog
}

var (
	_ store.Store           = (*Store)(nil)
	_ store.Versioned       = (*Store)(nil)
	_ store.Recoverable     = (*Store)(nil)
	_ store.MetadataUpdater = (*Store)(nil)
)

// New returns a Store. No client is built and no call is made until first use.
func New(opts Options) (*Store, error) {
	if opts.Name == "" {
		return nil, errors.New("azkv: Options.Name is required")
	}
	if opts.Client == nil {
		u, err := url.Parse(opts.VaultURL)
		if opts.VaultURL == "" || err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("azkv: store %q: VaultURL %q must be an https:// vault URL", opts.Name, opts.VaultURL)
		}
		vault, clientID := opts.VaultURL, opts.ManagedIdentityClientID
		opts.Client = func(context.Context) (*azsecrets.Client, error) {
			return ManagedIdentityClient(vault, clientID, nil)
		}
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.PollTimeout <= 0 {
		opts.PollTimeout = 2 * time.Minute
	}
	return &Store{opts: opts}, nil
}

func (s *Store) Name() string         { return s.opts.Name }
func (s *Store) Type() string         { return Type }
func (s *Store) Limits() store.Limits { return limits }

func (s *Store) client(ctx context.Context, op, name string) (*azsecrets.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c != nil {
		return s.c, nil
	}
	c, err := s.opts.Client(ctx)
	if err != nil {
		return nil, &store.Error{Kind: store.ErrUnavailable, Store: s.opts.Name, Op: op, Name: name,
			Detail: "building the Key Vault client failed", Err: err}
	}
	s.c = c
	return c, nil
}

// Get reads the current value (GetSecret).
func (s *Store) Get(ctx context.Context, name string) (store.Secret, error) {
	return s.get(ctx, "get", name, "")
}

// GetVersion reads one version's value.
func (s *Store) GetVersion(ctx context.Context, name, version string) (store.Secret, error) {
	if err := store.CheckName(s, "get-version", name); err != nil {
		return store.Secret{}, err
	}
	if version == "" || strings.ContainsAny(version, "/?#") {
		return store.Secret{}, &store.Error{Kind: store.ErrInvalidValue, Store: s.opts.Name, Op: "get-version", Name: name,
			Detail: fmt.Sprintf("%q is not a Key Vault version id", version), Hint: "versions are 32 hexadecimal digits"}
	}
	return s.get(ctx, "get-version", name, version)
}

func (s *Store) get(ctx context.Context, op, name, version string) (store.Secret, error) {
	if err := store.CheckName(s, op, name); err != nil {
		return store.Secret{}, err
	}
	c, err := s.client(ctx, op, name)
	if err != nil {
		return store.Secret{}, err
	}
	resp, err := c.GetSecret(ctx, name, version, nil)
	if err != nil {
		return store.Secret{}, s.fail(op, name, err)
	}
	var raw string
	if resp.Value != nil {
		raw = *resp.Value
	}
	v, ct, err := decodeValue(raw, deref(resp.ContentType))
	if err != nil {
		return store.Secret{}, &store.Error{Kind: store.ErrInvalidValue, Store: s.opts.Name, Op: op, Name: name,
			Detail: err.Error(), Hint: "the secret's content type marks it as base64-encoded binary; rewrite it or remove the marker"}
	}
	md := s.metadata(resp.ID, resp.ContentType, resp.Tags, resp.Attributes)
	md.ContentType, md.Binary = ct, v.IsBinary()
	md.Created = time.Time{} // the secret's creation needs the version list; Describe has it
	return store.Secret{Value: v, Metadata: md}, nil
}

// Put writes a new version (SetSecret). Tags and provenance replace the previous version's.
func (s *Store) Put(ctx context.Context, name string, v store.Value, opts store.PutOptions) (store.Metadata, error) {
	if err := store.CheckPut(s, name, v, opts); err != nil {
		return store.Metadata{}, err
	}
	raw, ct, err := encodeValue(v, opts.ContentType)
	if err != nil {
		return store.Metadata{}, store.Annotate(err, s.opts.Name, "put", name)
	}
	c, err := s.client(ctx, "put", name)
	if err != nil {
		return store.Metadata{}, err
	}
	params := azsecrets.SetSecretParameters{Value: &raw, Tags: toPtrMap(store.MergeTags(opts.Tags, opts.Provenance))}
	if ct != "" {
		params.ContentType = &ct
	}
	resp, err := c.SetSecret(ctx, name, params, nil)
	if err != nil {
		return store.Metadata{}, s.fail("put", name, err)
	}
	md := s.metadata(resp.ID, resp.ContentType, resp.Tags, resp.Attributes)
	md.ContentType, md.Binary = userContentType(deref(resp.ContentType)), v.IsBinary()
	md.Created = time.Time{}
	if resp.ID != nil {
		s.writes.record(name, resp.ID.Version())
	}
	return md, nil
}

// Describe reads the current version's metadata from the version listing; it never reads the value.
func (s *Store) Describe(ctx context.Context, name string) (store.Metadata, error) {
	if err := store.CheckName(s, "describe", name); err != nil {
		return store.Metadata{}, err
	}
	vs, err := s.versions(ctx, "describe", name)
	if err != nil {
		return store.Metadata{}, err
	}
	cur := vs[0]
	md := s.metadata(cur.ID, cur.ContentType, cur.Tags, cur.Attributes)
	md.Created = md.Updated
	for _, v := range vs {
		if t := created(v); !t.IsZero() && t.Before(md.Created) {
			md.Created = t
		}
	}
	return md, nil
}

// versions lists every version's properties, newest first (see the package comment on ties).
func (s *Store) versions(ctx context.Context, op, name string) ([]*azsecrets.SecretProperties, error) {
	c, err := s.client(ctx, op, name)
	if err != nil {
		return nil, err
	}
	var out []*azsecrets.SecretProperties
	pager := c.NewListSecretPropertiesVersionsPager(name, nil)
	for pager.More() {
		page, err := pager.NextPage(withPageSize(ctx, defaultPageSize))
		if err != nil {
			return nil, s.fail(op, name, err)
		}
		for _, p := range page.Value {
			if p != nil && p.ID != nil {
				out = append(out, p)
			}
		}
	}
	if len(out) == 0 {
		return nil, &store.Error{Kind: store.ErrNotFound, Store: s.opts.Name, Op: op, Name: name, Detail: "the secret has no versions"}
	}
	rank := s.writes.ranks(name)
	slices.SortStableFunc(out, func(a, b *azsecrets.SecretProperties) int {
		if c := created(b).Compare(created(a)); c != 0 {
			return c
		}
		va, vb := a.ID.Version(), b.ID.Version()
		if ra, rb := rank[strings.ToLower(va)], rank[strings.ToLower(vb)]; ra != rb {
			return cmpUint(rb, ra)
		}
		return strings.Compare(vb, va)
	})
	return out, nil
}

// Versions yields the secret's versions, newest first. The whole listing is read before the first
// version is yielded, since the service does not list versions in creation order.
func (s *Store) Versions(ctx context.Context, name string) iter.Seq2[store.VersionInfo, error] {
	return func(yield func(store.VersionInfo, error) bool) {
		if err := store.CheckName(s, "versions", name); err != nil {
			yield(store.VersionInfo{}, err)
			return
		}
		vs, err := s.versions(ctx, "versions", name)
		if err != nil {
			yield(store.VersionInfo{}, err)
			return
		}
		for _, v := range vs {
			vi := store.VersionInfo{Version: v.ID.Version(), Created: created(v), Enabled: true}
			if v.Attributes != nil && v.Attributes.Enabled != nil {
				vi.Enabled = *v.Attributes.Enabled
			}
			if !yield(vi, nil) {
				return
			}
		}
	}
}

// List yields the vault's secrets page by page (ListOptions.PageSize up to 25, as maxresults). Key
// Vault filters nothing server-side: Prefix (case-insensitive, as names are) and Tags (user tags) are
// applied here. Metadata.Version is empty (the listing does not carry it; Describe does).
func (s *Store) List(ctx context.Context, opts store.ListOptions) iter.Seq2[store.Metadata, error] {
	return func(yield func(store.Metadata, error) bool) {
		c, err := s.client(ctx, "list", "")
		if err != nil {
			yield(store.Metadata{}, err)
			return
		}
		size := opts.PageSize
		if size <= 0 || size > defaultPageSize {
			size = defaultPageSize
		}
		prefix := strings.ToLower(opts.Prefix)
		pager := c.NewListSecretPropertiesPager(nil)
		for pager.More() {
			page, err := pager.NextPage(withPageSize(ctx, size))
			if err != nil {
				yield(store.Metadata{}, s.fail("list", "", err))
				return
			}
			for _, p := range page.Value {
				if p == nil || p.ID == nil || !strings.HasPrefix(strings.ToLower(p.ID.Name()), prefix) {
					continue
				}
				md := s.metadata(p.ID, p.ContentType, p.Tags, p.Attributes)
				md.Version, md.Created = "", time.Time{}
				if !tagsMatch(md.Tags, opts.Tags) {
					continue
				}
				if !yield(md, nil) {
					return
				}
			}
		}
	}
}

// Delete soft-deletes the secret and waits until the service shows it as deleted; with Force it then
// purges it (also when it was already soft-deleted) and waits until the deleted secret is gone. RecoveryWindow cannot be chosen per secret in
// Key Vault (it is the vault's retention) and is ignored.
func (s *Store) Delete(ctx context.Context, name string, opts store.DeleteOptions) error {
	if err := store.CheckName(s, "delete", name); err != nil {
		return err
	}
	c, err := s.client(ctx, "delete", name)
	if err != nil {
		return err
	}
	if _, err := c.DeleteSecret(ctx, name, nil); err != nil {
		if opts.Force && isStatus(err, 404) {
			// Already soft-deleted (or absent): a forced delete still purges what is left.
			return s.purge(ctx, c, "delete", name)
		}
		return s.fail("delete", name, err)
	}
	if err := s.poll(ctx, "delete", name, func(ctx context.Context) (bool, error) {
		_, err := c.GetDeletedSecret(ctx, name, nil)
		return err == nil, notFoundIsPending(err)
	}); err != nil {
		return err
	}
	if opts.Force {
		return s.purge(ctx, c, "delete", name)
	}
	return nil
}

// Recover brings a soft-deleted secret back and waits until its versions can be listed again.
func (s *Store) Recover(ctx context.Context, name string) error {
	if err := store.CheckName(s, "recover", name); err != nil {
		return err
	}
	c, err := s.client(ctx, "recover", name)
	if err != nil {
		return err
	}
	if _, err := c.RecoverDeletedSecret(ctx, name, nil); err != nil {
		return s.fail("recover", name, err)
	}
	return s.poll(ctx, "recover", name, func(ctx context.Context) (bool, error) {
		_, err := c.NewListSecretPropertiesVersionsPager(name, nil).NextPage(withPageSize(ctx, 1))
		return err == nil, notFoundIsPending(err)
	})
}

// Purge permanently deletes a soft-deleted secret and waits until the deleted secret is gone.
func (s *Store) Purge(ctx context.Context, name string) error {
	if err := store.CheckName(s, "purge", name); err != nil {
		return err
	}
	c, err := s.client(ctx, "purge", name)
	if err != nil {
		return err
	}
	return s.purge(ctx, c, "purge", name)
}

func (s *Store) purge(ctx context.Context, c *azsecrets.Client, op, name string) error {
	if _, err := c.PurgeDeletedSecret(ctx, name, nil); err != nil {
		return s.fail(op, name, err)
	}
	return s.poll(ctx, op, name, func(ctx context.Context) (bool, error) {
		_, err := c.GetDeletedSecret(ctx, name, nil)
		if err == nil {
			return false, nil
		}
		if isStatus(err, 404) {
			return true, nil
		}
		return false, err
	})
}

// UpdateMetadata replaces the current version's tags (user tags plus provenance) without writing a
// value: UpdateSecretProperties on the version Describe names as current.
func (s *Store) UpdateMetadata(ctx context.Context, name string, tags map[string]string, prov *store.Provenance) error {
	if err := store.CheckName(s, "update-metadata", name); err != nil {
		return err
	}
	if err := limits.CheckTags(tags, store.ProvenanceEntries(prov)); err != nil {
		return store.Annotate(err, s.opts.Name, "update-metadata", name)
	}
	vs, err := s.versions(ctx, "update-metadata", name)
	if err != nil {
		return err
	}
	c, err := s.client(ctx, "update-metadata", name)
	if err != nil {
		return err
	}
	merged := toPtrMap(store.MergeTags(tags, prov))
	if merged == nil {
		merged = map[string]*string{} // an empty map clears the tags; nil would leave them
	}
	_, err = c.UpdateSecretProperties(ctx, name, vs[0].ID.Version(), azsecrets.UpdateSecretPropertiesParameters{Tags: merged}, nil)
	if err != nil {
		return s.fail("update-metadata", name, err)
	}
	return nil
}

// poll calls done every PollInterval until it reports completion, fails, or PollTimeout passes.
func (s *Store) poll(ctx context.Context, op, name string, done func(context.Context) (bool, error)) error {
	deadline := time.Now().Add(s.opts.PollTimeout)
	for {
		ok, err := done(ctx)
		if err != nil {
			return s.fail(op, name, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return &store.Error{Kind: store.ErrUnavailable, Store: s.opts.Name, Op: op, Name: name,
				Detail: fmt.Sprintf("the service did not complete the %s within %s", op, s.opts.PollTimeout),
				Hint:   "it may still complete; check the secret's state before retrying"}
		}
		t := time.NewTimer(s.opts.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return s.fail(op, name, ctx.Err())
		case <-t.C:
		}
	}
}

// notFoundIsPending turns a 404 into "not yet" for polls.
func notFoundIsPending(err error) error {
	if err == nil || isStatus(err, 404) {
		return nil
	}
	return err
}

func (s *Store) metadata(id *azsecrets.ID, ct *string, tags map[string]*string, a *azsecrets.SecretAttributes) store.Metadata {
	var md store.Metadata
	if id != nil {
		md.Name, md.Version = id.Name(), id.Version()
	}
	md.ContentType = userContentType(deref(ct))
	md.Binary = isBinaryContentType(deref(ct))
	md.Tags, md.Provenance = store.SplitProvenance(fromPtrMap(tags))
	if a != nil && a.Created != nil {
		md.Updated = a.Created.UTC()
		md.Created = md.Updated
	}
	return md
}

func created(p *azsecrets.SecretProperties) time.Time {
	if p.Attributes == nil || p.Attributes.Created == nil {
		return time.Time{}
	}
	return *p.Attributes.Created
}

// encodeValue returns the string to store and the content type to record.
func encodeValue(v store.Value, contentType string) (string, string, error) {
	if strings.Contains(strings.ToLower(contentType), "keyferry-encoding=") {
		return "", "", &store.Error{Kind: store.ErrInvalidValue,
			Detail: "the content type uses keyferry's binary marker parameter \"keyferry-encoding\"",
			Hint:   "give the value as binary instead of marking it by hand"}
	}
	if !v.IsBinary() {
		if len(contentType) > maxContentType {
			return "", "", &store.Error{Kind: store.ErrInvalidValue,
				Detail: fmt.Sprintf("content type is %d characters, the limit is %d", len(contentType), maxContentType)}
		}
		return string(v.Bytes()), contentType, nil
	}
	if contentType == "" {
		contentType = DefaultBinaryContentType
	}
	ct := contentType + BinaryContentTypeSuffix
	if len(ct) > maxContentType {
		return "", "", &store.Error{Kind: store.ErrInvalidValue,
			Detail: fmt.Sprintf("content type with the binary marker is %d characters, the limit is %d", len(ct), maxContentType)}
	}
	return base64.StdEncoding.EncodeToString(v.Bytes()), ct, nil
}

// decodeValue turns a stored string and content type back into a value and the caller's content type.
func decodeValue(raw, contentType string) (store.Value, string, error) {
	if !isBinaryContentType(contentType) {
		return store.Text(raw), contentType, nil
	}
	b, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return store.Value{}, "", errors.New("the value is marked as base64-encoded binary but is not valid base64")
	}
	return store.Binary(b), userContentType(contentType), nil
}

func isBinaryContentType(ct string) bool { return strings.HasSuffix(ct, BinaryContentTypeSuffix) }

func userContentType(ct string) string { return strings.TrimSuffix(ct, BinaryContentTypeSuffix) }

func tagsMatch(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func toPtrMap(m map[string]string) map[string]*string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]*string, len(m))
	for k, v := range m {
		out[k] = &v
	}
	return out
}

func fromPtrMap(m map[string]*string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// writeLog remembers the order of the versions this Store wrote, to order versions created within the
// same second (the service's date resolution). It is bounded and per process.
type writeLog struct {
	mu     sync.Mutex
	seq    uint64
	byName map[string]map[string]uint64 // lower-cased name → version → write sequence
}

const (
	writeLogNames    = 4096
	writeLogVersions = 16
)

func (w *writeLog) record(name, version string) {
	if version == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.byName == nil || len(w.byName) >= writeLogNames {
		w.byName = map[string]map[string]uint64{}
	}
	key := strings.ToLower(name)
	m := w.byName[key]
	if m == nil {
		m = map[string]uint64{}
		w.byName[key] = m
	}
	w.seq++
	m[strings.ToLower(version)] = w.seq
	if len(m) > writeLogVersions {
		var oldest string
		for v, n := range m {
			if oldest == "" || n < m[oldest] {
				oldest = v
			}
		}
		delete(m, oldest)
	}
}

func (w *writeLog) ranks(name string) map[string]uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]uint64{}
	for v, n := range w.byName[strings.ToLower(name)] {
		out[v] = n
	}
	return out
}
