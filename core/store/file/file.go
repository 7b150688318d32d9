package file

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"sync"
	"sync/atomic"

	"github.com/keyferry/keyferry/core/store"
)

// Type is the store type of the file store in keyferry.yaml.
const Type = "file"

// DefaultMaxValueBytes is the largest value the store holds unless Options say otherwise.
const DefaultMaxValueBytes = 1 << 20

// Name rule (see the package documentation).
const (
	segChar    = `[A-Za-z0-9_.+=@-]`
	segNoDot   = `[A-Za-z0-9_+=@-]`
	segment    = `(?:` + segNoDot + segChar + `{0,254}|\.` + segNoDot + segChar + `{0,253}|\.\.` + segChar + `{1,253})`
	nameMaxLen = 512
	// NameRule is the name rule in words.
	NameRule = `segments of 1–255 characters from A–Z a–z 0–9 _ . + = @ - separated by "/", ` +
		`no "." or ".." segment, no leading, trailing or doubled "/", at most 512 characters`
)

var namePattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^` + segment + `(?:/` + segment + `)*$`) })

// Tag rules.
const (
	maxTags        = 64
	tagKeyMaxLen   = 128
	tagValueMaxLen = 512
	tagRule        = `at most 64 entries (keyferry's provenance entries included); keys 1–128 characters from ` +
		`A–Z a–z 0–9 _ . : / = + @ -; values at most 512 characters of valid UTF-8`
)

var tagKeyPattern = regexp.MustCompile(`^[A-Za-z0-9_.:/=+@-]+$`)

// Options configure a file store.
type Options struct {
	// Name is the configured name of the store (its key under `stores:`).
	Name string
	// Dir is the directory holding the store. It is created (0700) on first use if missing.
	Dir string
	// MaxValueBytes is the largest value accepted; 0 means DefaultMaxValueBytes (1 MiB).
	MaxValueBytes int
	// MaxVersions is how many versions are kept per secret (oldest removed first); 0 keeps all.
	MaxVersions int
}

// Store is a file store. It is safe for concurrent use, also by several processes sharing Dir.
type Store struct {
	opts   Options
	limits store.Limits

	mu   sync.Mutex
	root *os.Root // opened on first use

	writes     atomic.Int64 // value and metadata files written or removed
	valueOpens atomic.Int64 // value files opened (tests check Describe and List open none)
	metaPages  atomic.Int64 // pages of metadata files read by List
}

var (
	_ store.Store             = (*Store)(nil)
	_ store.Versioned         = (*Store)(nil)
	_ store.CompareAndSwapper = (*Store)(nil)
	_ store.MetadataUpdater   = (*Store)(nil)
)

// New returns a file store. It touches nothing on disk: the directory is checked (and created) on
// first use.
func New(opts Options) (*Store, error) {
	if opts.Name == "" {
		return nil, errors.New("file store: Options.Name is empty")
	}
	if opts.Dir == "" {
		return nil, fmt.Errorf("file store %q: Options.Dir is empty", opts.Name)
	}
	if opts.MaxValueBytes < 0 || opts.MaxVersions < 0 {
		return nil, fmt.Errorf("file store %q: MaxValueBytes and MaxVersions must not be negative", opts.Name)
	}
	if opts.MaxValueBytes == 0 {
		opts.MaxValueBytes = DefaultMaxValueBytes
	}
	return &Store{
		opts: opts,
		limits: store.Limits{
			NamePattern:    namePattern(),
			NameRule:       NameRule,
			NameMinLen:     1,
			NameMaxLen:     nameMaxLen,
			MaxValueBytes:  opts.MaxValueBytes,
			Binary:         store.BinaryNative,
			MaxTags:        maxTags,
			TagKeyPattern:  tagKeyPattern,
			TagRule:        tagRule,
			TagKeyMaxLen:   tagKeyMaxLen,
			TagValueMaxLen: tagValueMaxLen,
		},
	}, nil
}

// Name is the configured name of the store.
func (s *Store) Name() string { return s.opts.Name }

// Type is "file".
func (s *Store) Type() string { return Type }

// Limits declares what the store holds.
func (s *Store) Limits() store.Limits { return s.limits }

// Dir is the store's directory.
func (s *Store) Dir() string { return s.opts.Dir }

// Writes is how many value and metadata files the store has written or removed so far (temporary and
// lock files are not counted). A refused request leaves it unchanged.
func (s *Store) Writes() int64 { return s.writes.Load() }

// Close releases the directory handle; call it when no operation is running. The store opens the
// directory again if used afterwards.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.root == nil {
		return nil
	}
	err := s.root.Close()
	s.root = nil
	return err
}

// secretsDir is the directory below Dir that holds the secrets tree.
const secretsDir = "secrets"

// open returns the store's root, creating and checking the directory on first use.
func (s *Store) open(op, name string) (*os.Root, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.root != nil {
		return s.root, nil
	}
	fail := func(kind error, detail, hint string, err error) error {
		return &store.Error{Kind: kind, Store: s.opts.Name, Op: op, Name: name, Detail: detail, Hint: hint, Err: err}
	}
	dir := s.opts.Dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fail(kindOf(err), fmt.Sprintf("cannot create the store directory %s", dir),
			"check that the path is right and writable", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fail(kindOf(err), fmt.Sprintf("cannot read the store directory %s", dir), "", err)
	}
	if !fi.IsDir() {
		return nil, fail(store.ErrUnavailable, fmt.Sprintf("%s is not a directory", dir), "point the store at a directory", nil)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fail(store.ErrPermissionDenied,
			fmt.Sprintf("the store directory %s is open to group or others (mode %04o)", dir, perm),
			fmt.Sprintf("run chmod 700 %s", dir), nil)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fail(kindOf(err), fmt.Sprintf("cannot open the store directory %s", dir), "", err)
	}
	if err := root.Mkdir(secretsDir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		_ = root.Close()
		return nil, fail(kindOf(err), fmt.Sprintf("cannot create %s in %s", secretsDir, dir), "", err)
	} else if err == nil {
		_ = syncDir(root, ".")
	}
	s.root = root
	return root, nil
}

// kindOf maps a file-system error onto a store error kind.
func kindOf(err error) error {
	switch {
	case errors.Is(err, fs.ErrPermission):
		return store.ErrPermissionDenied
	case errors.Is(err, fs.ErrNotExist):
		return store.ErrNotFound
	default:
		return store.ErrUnavailable
	}
}

// ioErr wraps a file-system error met during op on name. It never carries a value: file-system errors
// name paths, which hold only the store directory and the secret name.
func (s *Store) ioErr(op, name, what string, err error) error {
	kind := kindOf(err)
	if kind == store.ErrNotFound {
		kind = store.ErrUnavailable // a file the metadata promised is missing: the store is damaged
	}
	return &store.Error{Kind: kind, Store: s.opts.Name, Op: op, Name: name,
		Detail: what + " in " + s.opts.Dir, Err: err}
}

func (s *Store) notFound(op, name string) error {
	return &store.Error{Kind: store.ErrNotFound, Store: s.opts.Name, Op: op, Name: name,
		Detail: "no such secret in " + s.opts.Dir}
}
