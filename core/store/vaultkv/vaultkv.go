package vaultkv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/keyferry/keyferry/core/store"
)

// Type is the store type of this adapter.
const Type = "vault-kv"

// DefaultMount is the mount used when Options.Mount is empty (a dev server's KV v2 mount).
const DefaultMount = "secret"

// Options configure a Store.
type Options struct {
	// Name is the configured store name.
	Name string
	// Mount is the path of the KV version 2 secrets engine, e.g. "secret" or "team/kv"; "" means "secret".
	Mount string
	// Client builds the Vault client. It is called on first use (and again only if it failed); nil means
	// NewClient(ctx, Config). A custom client keeps its own retry settings (see Retry.ApplyTo); each
	// operation uses it through WithResponseCallbacks (to read Retry-After), so callbacks of its own are
	// not called.
	Client func(ctx context.Context) (*api.Client, error)
	// Config configures the default client builder.
	Config ClientConfig
}

// Store is a Vault KV v2 mount as a store.Store. It also implements store.Versioned, store.Recoverable,
// store.MetadataUpdater and store.CompareAndSwapper.
type Store struct {
	name  string
	mount string
	build func(ctx context.Context) (*api.Client, error)

	mu sync.Mutex
	c  *api.Client
}

var (
	_ store.Store             = (*Store)(nil)
	_ store.Versioned         = (*Store)(nil)
	_ store.Recoverable       = (*Store)(nil)
	_ store.MetadataUpdater   = (*Store)(nil)
	_ store.CompareAndSwapper = (*Store)(nil)
)

// New returns a Store. It makes no call: the client is built on first use.
func New(opts Options) (*Store, error) {
	if opts.Name == "" {
		return nil, errors.New("vaultkv: the store needs a name")
	}
	mount := strings.Trim(opts.Mount, "/")
	if mount == "" {
		mount = DefaultMount
	}
	if !namePattern.MatchString(mount) {
		return nil, fmt.Errorf("vaultkv: store %s: mount %q is not a valid path", opts.Name, opts.Mount)
	}
	build := opts.Client
	if build == nil {
		cfg := opts.Config
		build = func(ctx context.Context) (*api.Client, error) { return NewClient(ctx, cfg) }
	}
	return &Store{name: opts.Name, mount: mount, build: build}, nil
}

// Name is the configured store name.
func (s *Store) Name() string { return s.name }

// Type is "vault-kv".
func (s *Store) Type() string { return Type }

// Limits are Vault KV v2's limits (see the package doc).
func (s *Store) Limits() store.Limits { return limits }

// Mount is the KV v2 mount path.
func (s *Store) Mount() string { return s.mount }

// client returns the client, building it on first use.
func (s *Store) client(ctx context.Context) (*api.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c != nil {
		return s.c, nil
	}
	c, err := s.build(ctx)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, errors.New("the client builder returned no client")
	}
	if err := s.checkMount(ctx, c); err != nil {
		return nil, err
	}
	s.c = c
	return c, nil
}

// checkMount makes sure the mount is KV version 2 (a KV version 1 mount would take "data/<name>" as a
// secret's name), the way the Vault CLI does. If the token may not read the mount's description, the
// check is skipped and the first real call tells.
func (s *Store) checkMount(ctx context.Context, c *api.Client) error {
	sec, err := c.Logical().ReadWithContext(ctx, "sys/internal/ui/mounts/"+s.mount)
	if err != nil {
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode != http.StatusTooManyRequests && re.StatusCode < 500 {
			return nil
		}
		return err
	}
	if sec == nil || sec.Data == nil {
		return nil
	}
	typ, _ := sec.Data["type"].(string)
	var version string
	if o, ok := sec.Data["options"].(map[string]any); ok {
		version, _ = o["version"].(string)
	}
	if typ != "kv" || version != "2" {
		return &store.Error{Kind: store.ErrUnsupported,
			Detail: fmt.Sprintf("the secrets engine at %s is %q version %q, not kv version 2", s.mount, typ, version),
			Hint:   "point the store at a KV version 2 mount (vault secrets enable -version=2 kv)"}
	}
	return nil
}

// conn is one operation's view of the client: it records the Retry-After of the last response.
type conn struct {
	c          *api.Client
	retryAfter atomic.Int64
}

func (s *Store) conn(ctx context.Context) (*conn, error) {
	c, err := s.client(ctx)
	if err != nil {
		return nil, err
	}
	cn := &conn{}
	cn.c = c.WithResponseCallbacks(func(r *api.Response) {
		if r != nil && r.Response != nil && (r.StatusCode == http.StatusTooManyRequests || r.StatusCode == http.StatusServiceUnavailable) {
			cn.retryAfter.Store(int64(parseRetryAfter(r.Header.Get("Retry-After"), time.Now())))
		}
	})
	return cn, nil
}

func (s *Store) fail(cn *conn, err error, op, name string) error {
	var ra time.Duration
	if cn != nil {
		ra = time.Duration(cn.retryAfter.Load())
	}
	return s.mapError(err, op, name, ra)
}

func (s *Store) path(kind, name string) string { return s.mount + "/" + kind + "/" + name }

// kvMeta is a secret's metadata as the metadata endpoint returns it.
type kvMeta struct {
	current  int
	created  time.Time
	versions map[int]versionMeta
	custom   map[string]string
}

type versionMeta struct {
	version   int
	created   time.Time
	deleted   time.Time // zero: not deleted
	destroyed bool
}

// clockSkew is how far in the future a deletion time may be and still count as done: a soft delete
// stamps the server's clock, which may run ahead of ours.
const clockSkew = time.Minute

// isDeleted reports whether the version is soft-deleted now. A deletion time well in the future (set by
// delete_version_after) has not happened yet.
func (v versionMeta) isDeleted(now time.Time) bool {
	return !v.deleted.IsZero() && !v.deleted.After(now.Add(clockSkew))
}

// readMeta reads a secret's metadata; nil when the secret does not exist.
func (s *Store) readMeta(ctx context.Context, cn *conn, name string) (*kvMeta, error) {
	sec, err := cn.c.Logical().ReadWithContext(ctx, s.path("metadata", name))
	if err != nil {
		return nil, err
	}
	if sec == nil || sec.Data == nil {
		return nil, nil
	}
	m := &kvMeta{versions: map[int]versionMeta{}}
	m.current = toInt(sec.Data["current_version"])
	m.created = toTime(sec.Data["created_time"])
	m.custom = toStringMap(sec.Data["custom_metadata"])
	if vs, ok := sec.Data["versions"].(map[string]any); ok {
		for k, raw := range vs {
			n := toInt(json.Number(k))
			vm, _ := raw.(map[string]any)
			m.versions[n] = versionMeta{version: n, created: toTime(vm["created_time"]),
				deleted: toTime(vm["deletion_time"]), destroyed: vm["destroyed"] == true}
		}
	}
	return m, nil
}

// live returns the current version's metadata, or the typed error saying why there is no live value.
func (m *kvMeta) live(now time.Time) (versionMeta, error) {
	if m == nil || m.current == 0 {
		return versionMeta{}, &store.Error{Kind: store.ErrNotFound}
	}
	cur, ok := m.versions[m.current]
	if !ok {
		return versionMeta{}, &store.Error{Kind: store.ErrNotFound, Detail: fmt.Sprintf("no record of version %d", m.current)}
	}
	return cur, cur.gone(now)
}

// gone is the typed error for a version that has no value now, nil if it has one.
func (v versionMeta) gone(now time.Time) error {
	switch {
	case v.destroyed:
		return &store.Error{Kind: store.ErrNotFound, Detail: fmt.Sprintf("version %d was destroyed", v.version)}
	case v.isDeleted(now):
		return &store.Error{Kind: store.ErrSoftDeleted,
			Detail: fmt.Sprintf("version %d was deleted at %s", v.version, v.deleted.UTC().Format(time.RFC3339)),
			Hint:   "Recover restores it; a new Put writes a new version"}
	}
	return nil
}

func (s *Store) metadata(name string, version int, created, updated time.Time, custom map[string]string) store.Metadata {
	tags, prov := store.SplitProvenance(custom)
	return store.Metadata{Name: name, Version: itoa(version), Created: created, Updated: updated, Tags: tags, Provenance: prov}
}

func toInt(v any) int {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		if err != nil {
			return 0
		}
		return int(i)
	case float64:
		return int(n)
	case int:
		return n
	}
	return 0
}

func toTime(v any) time.Time {
	s, _ := v.(string)
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

func toStringMap(v any) map[string]string {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, x := range m {
		switch x := x.(type) {
		case string:
			out[k] = x
		case nil:
		default:
			out[k] = fmt.Sprint(x)
		}
	}
	return out
}

func itoa(n int) string { return fmt.Sprint(n) }
