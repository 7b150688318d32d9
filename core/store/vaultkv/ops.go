package vaultkv

import (
	"context"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keyferry/keyferry/core/store"
)

// Get reads the current value (one call to the data endpoint, which also returns custom_metadata).
func (s *Store) Get(ctx context.Context, name string) (store.Secret, error) {
	return s.read(ctx, "get", name, 0)
}

// GetVersion reads one version's value.
func (s *Store) GetVersion(ctx context.Context, name, version string) (store.Secret, error) {
	const op = "get-version"
	if err := store.CheckName(s, op, name); err != nil {
		return store.Secret{}, err
	}
	n, err := strconv.Atoi(version)
	if err != nil || n < 1 {
		return store.Secret{}, &store.Error{Kind: store.ErrNotFound, Store: s.name, Op: op, Name: name,
			Detail: fmt.Sprintf("no version %q: Vault versions are positive integers", version)}
	}
	return s.read(ctx, op, name, n)
}

func (s *Store) read(ctx context.Context, op, name string, version int) (store.Secret, error) {
	if err := store.CheckName(s, op, name); err != nil {
		return store.Secret{}, err
	}
	cn, err := s.conn(ctx)
	if err != nil {
		return store.Secret{}, s.fail(nil, err, op, name)
	}
	var params map[string][]string
	if version > 0 {
		params = map[string][]string{"version": {itoa(version)}}
	}
	sec, err := cn.c.Logical().ReadWithDataWithContext(ctx, s.path("data", name), params)
	if err != nil {
		return store.Secret{}, s.fail(cn, err, op, name)
	}
	notFound := &store.Error{Kind: store.ErrNotFound, Store: s.name, Op: op, Name: name}
	if version > 0 {
		notFound.Detail = fmt.Sprintf("no version %d", version)
	}
	if sec == nil || sec.Data == nil {
		return store.Secret{}, notFound
	}
	md, _ := sec.Data["metadata"].(map[string]any)
	vm := versionMeta{version: toInt(md["version"]), created: toTime(md["created_time"]),
		deleted: toTime(md["deletion_time"]), destroyed: md["destroyed"] == true}
	custom := toStringMap(md["custom_metadata"])
	data, ok := sec.Data["data"].(map[string]any)
	if !ok || data == nil {
		if err := vm.gone(time.Now()); err != nil {
			return store.Secret{}, store.Annotate(err, s.name, op, name)
		}
		return store.Secret{}, notFound
	}
	v, ctype, err := decodeValue(data)
	if err != nil {
		return store.Secret{}, &store.Error{Kind: store.ErrInvalidValue, Store: s.name, Op: op, Name: name, Err: err}
	}
	meta := s.metadata(name, vm.version, time.Time{}, vm.created, custom)
	meta.ContentType = ctype
	meta.Binary = v.IsBinary()
	return store.Secret{Value: v, Metadata: meta}, nil
}

// Put writes a new version (creating the secret if needed), then its custom_metadata if tags or
// provenance are given.
func (s *Store) Put(ctx context.Context, name string, v store.Value, opts store.PutOptions) (store.Metadata, error) {
	return s.put(ctx, "put", name, v, opts, nil)
}

// PutIf writes only if the current version is ifVersion ("" = only if the secret does not exist), with
// Vault's check-and-set. A mismatch is ErrConflict.
func (s *Store) PutIf(ctx context.Context, name string, v store.Value, opts store.PutOptions, ifVersion string) (store.Metadata, error) {
	const op = "put-if"
	cas := 0
	if ifVersion != "" {
		n, err := strconv.Atoi(ifVersion)
		if err != nil || n < 1 {
			if err := store.CheckPut(s, name, v, opts); err != nil {
				return store.Metadata{}, err
			}
			return store.Metadata{}, &store.Error{Kind: store.ErrConflict, Store: s.name, Op: op, Name: name,
				Detail: fmt.Sprintf("expected version %q can never match: Vault versions are positive integers", ifVersion)}
		}
		cas = n
	}
	return s.put(ctx, op, name, v, opts, &cas)
}

func (s *Store) put(ctx context.Context, op, name string, v store.Value, opts store.PutOptions, cas *int) (store.Metadata, error) {
	if err := store.CheckPut(s, name, v, opts); err != nil {
		return store.Metadata{}, store.Annotate(err, s.name, op, name)
	}
	data := encodeValue(v)
	if err := checkStoredSize(v, data); err != nil {
		return store.Metadata{}, store.Annotate(err, s.name, op, name)
	}
	var custom map[string]string
	fillReplica := opts.Provenance != nil && opts.Provenance.ReplicaVersion == ""
	if opts.Tags != nil || opts.Provenance != nil {
		custom = store.MergeTags(opts.Tags, opts.Provenance)
		if fillReplica {
			custom[store.KeyReplicaVersion] = "1" // placeholder, counted and checked now; set after the write
		}
		if err := checkCustomMetadata(custom); err != nil {
			return store.Metadata{}, store.Annotate(err, s.name, op, name)
		}
	}

	cn, err := s.conn(ctx)
	if err != nil {
		return store.Metadata{}, s.fail(nil, err, op, name)
	}
	body := map[string]any{"data": data}
	if cas != nil {
		body["options"] = map[string]any{"cas": *cas}
	}
	sec, err := cn.c.Logical().WriteWithContext(ctx, s.path("data", name), body)
	if err != nil {
		return store.Metadata{}, s.fail(cn, err, op, name)
	}
	var version int
	var created time.Time
	if sec != nil {
		version, created = toInt(sec.Data["version"]), toTime(sec.Data["created_time"])
	}
	if version == 0 {
		return store.Metadata{}, &store.Error{Kind: store.ErrUnsupported, Store: s.name, Op: op, Name: name,
			Detail: "Vault did not return the version it wrote",
			Hint:   fmt.Sprintf("check that %s is a KV version 2 mount", s.mount)}
	}
	meta := store.Metadata{Name: name, Version: itoa(version), Updated: created, Binary: v.IsBinary()}
	if custom == nil {
		return meta, nil
	}
	if fillReplica {
		custom[store.KeyReplicaVersion] = itoa(version)
	}
	// A JSON merge patch: the given tags are set and the others kept (the Store contract: removing a user
	// tag is UpdateMetadata's job); keyferry's record is replaced as a whole.
	patch := make(map[string]any, len(custom)+len(store.ProvenanceKeys()))
	for _, k := range store.ProvenanceKeys() {
		patch[k] = nil
	}
	for k, v := range custom {
		patch[k] = v
	}
	if _, err := cn.c.Logical().JSONMergePatch(ctx, s.path("metadata", name), map[string]any{"custom_metadata": patch}); err != nil {
		e := s.fail(cn, err, op, name)
		if se, ok := e.(*store.Error); ok {
			se.Detail = strings.TrimPrefix(se.Detail+"; ", "; ") +
				fmt.Sprintf("the value was written as version %d but its tags and provenance were not", version)
		}
		return store.Metadata{}, e
	}
	meta.Tags, meta.Provenance = store.SplitProvenance(custom)
	return meta, nil
}

// Describe reads the secret's metadata (never its value).
func (s *Store) Describe(ctx context.Context, name string) (store.Metadata, error) {
	const op = "describe"
	if err := store.CheckName(s, op, name); err != nil {
		return store.Metadata{}, err
	}
	cn, err := s.conn(ctx)
	if err != nil {
		return store.Metadata{}, s.fail(nil, err, op, name)
	}
	m, err := s.readMeta(ctx, cn, name)
	if err != nil {
		return store.Metadata{}, s.fail(cn, err, op, name)
	}
	cur, err := m.live(time.Now())
	if err != nil {
		return store.Metadata{}, store.Annotate(err, s.name, op, name)
	}
	return s.metadata(name, m.current, m.created, cur.created, m.custom), nil
}

// Versions yields the secret's versions, newest first, from its metadata. Deleted and destroyed versions
// are included with Enabled false.
func (s *Store) Versions(ctx context.Context, name string) iter.Seq2[store.VersionInfo, error] {
	const op = "versions"
	return func(yield func(store.VersionInfo, error) bool) {
		if err := store.CheckName(s, op, name); err != nil {
			yield(store.VersionInfo{}, err)
			return
		}
		cn, err := s.conn(ctx)
		if err != nil {
			yield(store.VersionInfo{}, s.fail(nil, err, op, name))
			return
		}
		m, err := s.readMeta(ctx, cn, name)
		if err != nil {
			yield(store.VersionInfo{}, s.fail(cn, err, op, name))
			return
		}
		if m == nil || len(m.versions) == 0 {
			yield(store.VersionInfo{}, &store.Error{Kind: store.ErrNotFound, Store: s.name, Op: op, Name: name})
			return
		}
		now := time.Now()
		nums := slices.Sorted(maps.Keys(m.versions))
		slices.Reverse(nums)
		for _, n := range nums {
			v := m.versions[n]
			if !yield(store.VersionInfo{Version: itoa(n), Created: v.created, Enabled: v.gone(now) == nil}, nil) {
				return
			}
		}
	}
}

// Delete soft-deletes the current version, or with Force deletes the secret's metadata and every version.
// Deleting a secret whose current version is already soft-deleted does nothing.
func (s *Store) Delete(ctx context.Context, name string, opts store.DeleteOptions) error {
	const op = "delete"
	if err := store.CheckName(s, op, name); err != nil {
		return err
	}
	cn, err := s.conn(ctx)
	if err != nil {
		return s.fail(nil, err, op, name)
	}
	m, err := s.readMeta(ctx, cn, name)
	if err != nil {
		return s.fail(cn, err, op, name)
	}
	if m == nil {
		return &store.Error{Kind: store.ErrNotFound, Store: s.name, Op: op, Name: name}
	}
	if opts.Force {
		if _, err := cn.c.Logical().DeleteWithContext(ctx, s.path("metadata", name)); err != nil {
			return s.fail(cn, err, op, name)
		}
		return nil
	}
	cur, err := m.live(time.Now())
	if err != nil {
		if cur.isDeleted(time.Now()) {
			return nil // already soft-deleted
		}
		return store.Annotate(err, s.name, op, name)
	}
	if _, err := cn.c.Logical().WriteWithContext(ctx, s.path("delete", name), map[string]any{"versions": []int{cur.version}}); err != nil {
		return s.fail(cn, err, op, name)
	}
	return nil
}

// Recover undeletes the soft-deleted current version. A secret whose current version is live is left alone.
func (s *Store) Recover(ctx context.Context, name string) error {
	const op = "recover"
	if err := store.CheckName(s, op, name); err != nil {
		return err
	}
	cn, err := s.conn(ctx)
	if err != nil {
		return s.fail(nil, err, op, name)
	}
	m, err := s.readMeta(ctx, cn, name)
	if err != nil {
		return s.fail(cn, err, op, name)
	}
	cur, err := m.live(time.Now())
	switch {
	case err == nil:
		return nil
	case !cur.isDeleted(time.Now()) || cur.destroyed:
		e := store.Annotate(err, s.name, op, name).(*store.Error)
		if cur.destroyed {
			e.Hint = "a destroyed version cannot be recovered"
		}
		return e
	}
	if _, err := cn.c.Logical().WriteWithContext(ctx, s.path("undelete", name), map[string]any{"versions": []int{cur.version}}); err != nil {
		return s.fail(cn, err, op, name)
	}
	return nil
}

// Purge removes a soft-deleted secret for good: its metadata and every version. A secret whose current
// version is live is refused with ErrConflict (Delete it first, or Delete with Force).
func (s *Store) Purge(ctx context.Context, name string) error {
	const op = "purge"
	if err := store.CheckName(s, op, name); err != nil {
		return err
	}
	cn, err := s.conn(ctx)
	if err != nil {
		return s.fail(nil, err, op, name)
	}
	m, err := s.readMeta(ctx, cn, name)
	if err != nil {
		return s.fail(cn, err, op, name)
	}
	if m == nil {
		return &store.Error{Kind: store.ErrNotFound, Store: s.name, Op: op, Name: name}
	}
	if _, err := m.live(time.Now()); err == nil {
		return &store.Error{Kind: store.ErrConflict, Store: s.name, Op: op, Name: name,
			Detail: fmt.Sprintf("the current version %d is not deleted", m.current),
			Hint:   "Delete it first, or Delete with Force"}
	}
	if _, err := cn.c.Logical().DeleteWithContext(ctx, s.path("metadata", name)); err != nil {
		return s.fail(cn, err, op, name)
	}
	return nil
}

// UpdateMetadata replaces the secret's user tags and provenance record (custom_metadata) without writing
// a value: a metadata PATCH that sets every given entry and removes the others.
func (s *Store) UpdateMetadata(ctx context.Context, name string, tags map[string]string, prov *store.Provenance) error {
	const op = "update-metadata"
	if err := store.CheckName(s, op, name); err != nil {
		return err
	}
	if err := s.Limits().CheckTags(tags, store.ProvenanceEntries(prov)); err != nil {
		return store.Annotate(err, s.name, op, name)
	}
	custom := store.MergeTags(tags, prov)
	if err := checkCustomMetadata(custom); err != nil {
		return store.Annotate(err, s.name, op, name)
	}
	cn, err := s.conn(ctx)
	if err != nil {
		return s.fail(nil, err, op, name)
	}
	m, err := s.readMeta(ctx, cn, name)
	if err != nil {
		return s.fail(cn, err, op, name)
	}
	if m == nil {
		return &store.Error{Kind: store.ErrNotFound, Store: s.name, Op: op, Name: name}
	}
	patch := make(map[string]any, len(custom)+len(m.custom))
	for k := range m.custom {
		patch[k] = nil // JSON merge patch: remove
	}
	for k, v := range custom {
		patch[k] = v
	}
	if _, err := cn.c.Logical().JSONMergePatch(ctx, s.path("metadata", name), map[string]any{"custom_metadata": patch}); err != nil {
		return s.fail(cn, err, op, name)
	}
	return nil
}

// DefaultPageSize is how many names List describes per page when ListOptions.PageSize is 0.
const DefaultPageSize = 100

// listConcurrency bounds the metadata reads in flight for one page.
const listConcurrency = 8

// List walks the metadata tree under the prefix (never reading a value) and yields the secrets whose current
// version is live and whose tags match.
func (s *Store) List(ctx context.Context, opts store.ListOptions) iter.Seq2[store.Metadata, error] {
	const op = "list"
	return func(yield func(store.Metadata, error) bool) {
		prefix := opts.Prefix
		dir := prefix[:strings.LastIndex(prefix, "/")+1]
		if dir != "" && !namePattern.MatchString(strings.TrimSuffix(dir, "/")) {
			yield(store.Metadata{}, &store.Error{Kind: store.ErrInvalidName, Store: s.name, Op: op, Name: prefix,
				Detail: "the prefix's directory breaks the store's rule: " + limits.NameRule})
			return
		}
		pageSize := opts.PageSize
		if pageSize <= 0 {
			pageSize = DefaultPageSize
		}
		cn, err := s.conn(ctx)
		if err != nil {
			yield(store.Metadata{}, s.fail(nil, err, op, prefix))
			return
		}
		stack := []string{dir}
		for len(stack) > 0 {
			d := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			keys, err := s.listDir(ctx, cn, d)
			if err != nil {
				yield(store.Metadata{}, s.fail(cn, err, op, d))
				return
			}
			var names, subdirs []string
			for _, k := range keys {
				full := d + k
				switch {
				case strings.HasSuffix(k, "/"):
					if strings.HasPrefix(full, prefix) || strings.HasPrefix(prefix, full) {
						subdirs = append(subdirs, full)
					}
				case strings.HasPrefix(full, prefix):
					names = append(names, full)
				}
			}
			for page := range slices.Chunk(names, pageSize) {
				mds, err := s.describePage(ctx, cn, page)
				if err != nil {
					yield(store.Metadata{}, err)
					return
				}
				for _, md := range mds {
					if md == nil || !tagsMatch(md.Tags, opts.Tags) {
						continue
					}
					if !yield(*md, nil) {
						return
					}
				}
			}
			slices.Reverse(subdirs) // popped in sorted order
			stack = append(stack, subdirs...)
		}
	}
}

// listDir lists one directory of the metadata tree ("" is the mount's root); a missing one is empty.
func (s *Store) listDir(ctx context.Context, cn *conn, dir string) ([]string, error) {
	sec, err := cn.c.Logical().ListWithContext(ctx, s.mount+"/metadata/"+dir)
	if err != nil {
		return nil, err
	}
	if sec == nil || sec.Data == nil {
		return nil, nil
	}
	raw, _ := sec.Data["keys"].([]any)
	keys := make([]string, 0, len(raw))
	for _, k := range raw {
		if k, ok := k.(string); ok && k != "" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// describePage reads the metadata of a page of names concurrently. A name that vanished or whose current
// version is not live comes back nil.
func (s *Store) describePage(ctx context.Context, cn *conn, names []string) ([]*store.Metadata, error) {
	out := make([]*store.Metadata, len(names))
	errs := make([]error, len(names))
	sem := make(chan struct{}, listConcurrency)
	var wg sync.WaitGroup
	now := time.Now()
	for i, n := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			m, err := s.readMeta(ctx, cn, n)
			if err != nil {
				errs[i] = s.fail(cn, err, "list", n)
				return
			}
			if m == nil {
				return
			}
			cur, err := m.live(now)
			if err != nil {
				return
			}
			md := s.metadata(n, m.current, m.created, cur.created, m.custom)
			out[i] = &md
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func tagsMatch(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}
