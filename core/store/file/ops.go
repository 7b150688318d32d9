package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"maps"
	"os"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/keyferry/keyferry/core/store"
)

// damaged reports a metadata or value file that cannot be trusted.
func (s *Store) damaged(op, name string, err error) error {
	return &store.Error{Kind: store.ErrUnavailable, Store: s.opts.Name, Op: op, Name: name, Detail: err.Error(),
		Hint: "restore the secret's directory under " + s.opts.Dir + " from a backup, or delete and write the secret again"}
}

// isDamaged reports whether readMeta found a metadata file it cannot trust.
func isDamaged(err error) bool {
	var pe *fs.PathError
	return err != nil && !errors.Is(err, errNoSecret) && !errors.As(err, &pe)
}

// readErr turns readMeta's error into a store error.
func (s *Store) readErr(op, name string, err error) error {
	var pe *fs.PathError
	switch {
	case errors.Is(err, errNoSecret):
		return s.notFound(op, name)
	case errors.As(err, &pe):
		return s.ioErr(op, name, "cannot read the metadata file", err)
	default:
		return s.damaged(op, name, err)
	}
}

// checkTagText refuses tags that are not valid UTF-8 (the metadata file would not keep them exactly).
func (s *Store) checkTagText(op, name string, tags map[string]string) error {
	for k, v := range tags {
		if !utf8.ValidString(v) {
			return &store.Error{Kind: store.ErrInvalidTags, Store: s.opts.Name, Op: op, Name: name,
				Detail: fmt.Sprintf("value of tag %q is not valid UTF-8", k)}
		}
	}
	return nil
}

// Get reads the current value and its metadata.
func (s *Store) Get(ctx context.Context, name string) (store.Secret, error) {
	return s.get(ctx, "get", name, 0)
}

// GetVersion reads one version's value; versions are "1", "2", ….
func (s *Store) GetVersion(ctx context.Context, name, version string) (store.Secret, error) {
	if err := store.CheckName(s, "get-version", name); err != nil {
		return store.Secret{}, err
	}
	v, ok := parseVersion(version)
	if !ok {
		return store.Secret{}, &store.Error{Kind: store.ErrNotFound, Store: s.opts.Name, Op: "get-version", Name: name,
			Detail: fmt.Sprintf("no version %q: versions are numbered 1, 2, 3, …", version)}
	}
	return s.get(ctx, "get-version", name, v)
}

func (s *Store) get(ctx context.Context, op, name string, v int) (store.Secret, error) {
	if err := store.CheckName(s, op, name); err != nil {
		return store.Secret{}, err
	}
	if err := ctx.Err(); err != nil {
		return store.Secret{}, store.Annotate(err, s.opts.Name, op, name)
	}
	root, err := s.open(op, name)
	if err != nil {
		return store.Secret{}, err
	}
	// A concurrent delete or prune can remove the value file between reading the metadata and the value:
	// read the metadata again once before reporting it.
	for attempt := 0; ; attempt++ {
		m, err := readMeta(root, name)
		if err != nil {
			return store.Secret{}, s.readErr(op, name, err)
		}
		want := v
		if want == 0 {
			want = m.Current
		}
		vm, ok := m.version(want)
		if !ok {
			return store.Secret{}, &store.Error{Kind: store.ErrNotFound, Store: s.opts.Name, Op: op, Name: name,
				Detail: fmt.Sprintf("no version %d (the store keeps versions %d to %d)", want,
					m.Versions[len(m.Versions)-1].Version, m.Current)}
		}
		s.valueOpens.Add(1)
		data, err := root.ReadFile(valuePath(secretDir(name), want))
		if errors.Is(err, fs.ErrNotExist) && attempt == 0 {
			continue
		}
		if err != nil {
			return store.Secret{}, s.ioErr(op, name, fmt.Sprintf("cannot read the file of version %d", want), err)
		}
		if len(data) != vm.Size {
			return store.Secret{}, s.damaged(op, name,
				fmt.Errorf("the file of version %d holds %d bytes, its metadata says %d", want, len(data), vm.Size))
		}
		val := store.Text(string(data))
		if vm.Kind == kindBinary {
			val = store.Binary(data)
		}
		return store.Secret{Value: val, Metadata: m.metadata(want)}, nil
	}
}

// Describe reads the metadata file only.
func (s *Store) Describe(ctx context.Context, name string) (store.Metadata, error) {
	if err := store.CheckName(s, "describe", name); err != nil {
		return store.Metadata{}, err
	}
	if err := ctx.Err(); err != nil {
		return store.Metadata{}, store.Annotate(err, s.opts.Name, "describe", name)
	}
	root, err := s.open("describe", name)
	if err != nil {
		return store.Metadata{}, err
	}
	m, err := readMeta(root, name)
	if err != nil {
		return store.Metadata{}, s.readErr("describe", name, err)
	}
	return m.metadata(0), nil
}

// Versions yields the secret's kept versions, newest first. It reads the metadata file only.
func (s *Store) Versions(ctx context.Context, name string) iter.Seq2[store.VersionInfo, error] {
	return func(yield func(store.VersionInfo, error) bool) {
		if err := store.CheckName(s, "versions", name); err != nil {
			yield(store.VersionInfo{}, err)
			return
		}
		if err := ctx.Err(); err != nil {
			yield(store.VersionInfo{}, store.Annotate(err, s.opts.Name, "versions", name))
			return
		}
		root, err := s.open("versions", name)
		if err != nil {
			yield(store.VersionInfo{}, err)
			return
		}
		m, err := readMeta(root, name)
		if err != nil {
			yield(store.VersionInfo{}, s.readErr("versions", name, err))
			return
		}
		for _, v := range m.Versions {
			if !yield(store.VersionInfo{Version: strconv.Itoa(v.Version), Created: v.Created, Enabled: true}, nil) {
				return
			}
		}
	}
}

// Put writes a new current version, creating the secret if needed.
func (s *Store) Put(ctx context.Context, name string, v store.Value, opts store.PutOptions) (store.Metadata, error) {
	return s.put(ctx, name, v, opts, nil)
}

// PutIf writes a new current version only if the current version is ifVersion ("" : only if the secret
// does not exist). Otherwise it fails with store.ErrConflict and writes nothing.
func (s *Store) PutIf(ctx context.Context, name string, v store.Value, opts store.PutOptions, ifVersion string) (store.Metadata, error) {
	return s.put(ctx, name, v, opts, &ifVersion)
}

func (s *Store) put(ctx context.Context, name string, v store.Value, opts store.PutOptions, ifVersion *string) (store.Metadata, error) {
	const op = "put"
	if err := store.CheckPut(s, name, v, opts); err != nil {
		return store.Metadata{}, err
	}
	if err := s.checkTagText(op, name, opts.Tags); err != nil {
		return store.Metadata{}, err
	}
	if err := ctx.Err(); err != nil {
		return store.Metadata{}, store.Annotate(err, s.opts.Name, op, name)
	}
	root, err := s.open(op, name)
	if err != nil {
		return store.Metadata{}, err
	}
	dir := secretDir(name)
	lk, err := lock(ctx, root, dir, true)
	if err != nil {
		return store.Metadata{}, s.ioErr(op, name, "cannot lock the secret", err)
	}
	defer lk.Close()

	m, err := readMeta(root, name)
	exists := err == nil
	if err != nil && !errors.Is(err, errNoSecret) {
		return store.Metadata{}, s.readErr(op, name, err)
	}
	if ifVersion != nil {
		cur := ""
		if exists {
			cur = strconv.Itoa(m.Current)
		}
		if *ifVersion != cur {
			detail := fmt.Sprintf("the current version is %s, not %q", cur, *ifVersion)
			switch {
			case !exists:
				detail = fmt.Sprintf("the secret does not exist (expected version %q)", *ifVersion)
				removeEmpty(root, dir)
			case *ifVersion == "":
				detail = fmt.Sprintf("the secret already exists (current version %s)", cur)
			}
			return store.Metadata{}, &store.Error{Kind: store.ErrConflict, Store: s.opts.Name, Op: op, Name: name,
				Detail: detail, Hint: "read the secret again and retry with its current version"}
		}
	}
	// Put adds or changes the given tags and keeps the secret's others.
	var tags map[string]string
	if exists {
		tags = maps.Clone(m.Tags)
	}
	if len(opts.Tags) > 0 && tags == nil {
		tags = make(map[string]string, len(opts.Tags))
	}
	maps.Copy(tags, opts.Tags)
	if n := len(tags) + store.ProvenanceEntries(opts.Provenance); n > maxTags {
		return store.Metadata{}, &store.Error{Kind: store.ErrInvalidTags, Store: s.opts.Name, Op: op, Name: name,
			Detail: fmt.Sprintf("the secret's %d tags (the ones it has and the ones given) plus %d keyferry metadata entries exceed the store's %d",
				len(tags), store.ProvenanceEntries(opts.Provenance), maxTags),
			Hint: "remove tags with UpdateMetadata, or propagate fewer"}
	}
	if err := s.tidy(root, dir, m); err != nil {
		return store.Metadata{}, s.ioErr(op, name, "cannot clean the secret's directory", err)
	}

	now := time.Now().UTC()
	next := meta{Format: formatVersion, Name: name, Created: now}
	if exists {
		next = *m
	}
	next.Current++
	if err := s.writeAtomic(root, dir, valuePrefx+strconv.Itoa(next.Current), v.Bytes(), "value"); err != nil {
		return store.Metadata{}, s.ioErr(op, name, fmt.Sprintf("cannot write version %d", next.Current), err)
	}
	next.Versions = append([]versionMeta{{Version: next.Current, Created: now, Kind: v.Kind(),
		ContentType: opts.ContentType, Size: v.Len()}}, next.Versions...)
	var pruned []versionMeta
	if n := s.opts.MaxVersions; n > 0 && len(next.Versions) > n {
		pruned = next.Versions[n:]
		next.Versions = next.Versions[:n:n]
	}
	next.Tags = tags
	next.Provenance = opts.Provenance.Entries()
	if err := s.writeAtomic(root, dir, metaFile, next.encode(), "meta"); err != nil {
		return store.Metadata{}, s.ioErr(op, name, "cannot write the metadata file", err)
	}
	for _, p := range pruned {
		// Best effort: a file left here is removed by the next write (tidy).
		if root.Remove(valuePath(dir, p.Version)) == nil {
			s.writes.Add(1)
		}
	}
	return next.metadata(0), nil
}

// UpdateMetadata replaces the secret's tags and provenance record without writing a value.
func (s *Store) UpdateMetadata(ctx context.Context, name string, tags map[string]string, prov *store.Provenance) error {
	const op = "update-metadata"
	if err := store.CheckName(s, op, name); err != nil {
		return err
	}
	if err := s.limits.CheckTags(tags, store.ProvenanceEntries(prov)); err != nil {
		return store.Annotate(err, s.opts.Name, op, name)
	}
	if err := s.checkTagText(op, name, tags); err != nil {
		return err
	}
	return s.locked(ctx, op, name, false, func(root *os.Root, dir string, m *meta) error {
		next := *m
		next.Tags = maps.Clone(tags)
		next.Provenance = prov.Entries()
		if err := s.writeAtomic(root, dir, metaFile, next.encode(), "meta"); err != nil {
			return s.ioErr(op, name, "cannot write the metadata file", err)
		}
		return nil
	})
}

// Delete removes the secret and all its versions. There is no recovery; opts are ignored. A secret whose
// metadata file is damaged can still be deleted.
func (s *Store) Delete(ctx context.Context, name string, _ store.DeleteOptions) error {
	const op = "delete"
	if err := store.CheckName(s, op, name); err != nil {
		return err
	}
	return s.locked(ctx, op, name, true, func(root *os.Root, dir string, _ *meta) error {
		// Removing the metadata file is the delete: from here on the secret does not exist.
		if err := root.Remove(metaPath(dir)); err != nil {
			return s.ioErr(op, name, "cannot remove the metadata file", err)
		}
		s.writes.Add(1)
		if err := syncDir(root, dir); err != nil {
			return s.ioErr(op, name, "cannot sync the secret's directory", err)
		}
		hook("delete:meta-removed")
		if err := s.tidy(root, dir, nil); err != nil {
			return nil // the values are unreachable already; the next write removes them
		}
		removeEmpty(root, dir)
		return nil
	})
}

// locked runs f on an existing secret under its lock, without creating anything for a missing one.
// With anyMeta, a damaged metadata file does not stop f (which then gets a nil m).
func (s *Store) locked(ctx context.Context, op, name string, anyMeta bool, f func(root *os.Root, dir string, m *meta) error) error {
	if err := ctx.Err(); err != nil {
		return store.Annotate(err, s.opts.Name, op, name)
	}
	root, err := s.open(op, name)
	if err != nil {
		return err
	}
	if _, err := readMeta(root, name); err != nil && !(anyMeta && isDamaged(err)) {
		return s.readErr(op, name, err)
	}
	dir := secretDir(name)
	lk, err := lock(ctx, root, dir, false)
	if errors.Is(err, errNoSecret) {
		return s.notFound(op, name)
	}
	if err != nil {
		return s.ioErr(op, name, "cannot lock the secret", err)
	}
	defer lk.Close()
	m, err := readMeta(root, name)
	if errors.Is(err, errNoSecret) {
		removeEmpty(root, dir) // deleted while we waited; leave no empty directory behind
		return s.notFound(op, name)
	}
	if err != nil && !(anyMeta && isDamaged(err)) {
		return s.readErr(op, name, err)
	}
	return f(root, dir, m)
}
