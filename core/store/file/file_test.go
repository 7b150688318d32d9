package file

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/keyferry/keyferry/core/store"
	"github.com/keyferry/keyferry/core/store/storetest"
)

func newStore(t *testing.T, opts Options) *Store {
	t.Helper()
	if opts.Name == "" {
		opts.Name = "local"
	}
	if opts.Dir == "" {
		opts.Dir = filepath.Join(t.TempDir(), "store")
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestContract(t *testing.T) {
	s := newStore(t, Options{})
	storetest.Run(t, storetest.Harness{
		Store:   s,
		Touched: s.Writes,
		// Deletes are final: no recovery, and the name is free again at once.
		SoftDelete: false,
	})
}

func mustPut(t *testing.T, s *Store, name string, v store.Value, opts store.PutOptions) store.Metadata {
	t.Helper()
	md, err := s.Put(testCtx(t), name, v, opts)
	if err != nil {
		t.Fatalf("Put(%q): %v", name, err)
	}
	return md
}

// tree lists every file and directory under dir with its mode, for before/after comparisons.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, rel+" "+fi.Mode().String())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func TestNew(t *testing.T) {
	if _, err := New(Options{Dir: t.TempDir()}); err == nil {
		t.Error("New without a Name succeeded")
	}
	if _, err := New(Options{Name: "x"}); err == nil {
		t.Error("New without a Dir succeeded")
	}
	if _, err := New(Options{Name: "x", Dir: t.TempDir(), MaxVersions: -1}); err == nil {
		t.Error("New with negative MaxVersions succeeded")
	}
	dir := filepath.Join(t.TempDir(), "lazy")
	s, err := New(Options{Name: "x", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("New created %s before first use (stat: %v)", dir, err)
	}
	if got := s.Limits().MaxValueBytes; got != DefaultMaxValueBytes {
		t.Errorf("default MaxValueBytes = %d, want %d", got, DefaultMaxValueBytes)
	}
	if s.Type() != "file" || s.Name() != "x" {
		t.Errorf("Type/Name = %q/%q", s.Type(), s.Name())
	}
}

func TestPermissions(t *testing.T) {
	old := syscallUmask(0) // permissions must not depend on the umask being strict
	defer syscallUmask(old)

	s := newStore(t, Options{})
	mustPut(t, s, "team/app/db-password", store.Text("hunter2-perm"), store.PutOptions{Tags: map[string]string{"a": "b"}})
	mustPut(t, s, "team/app/db-password", store.Binary([]byte{1, 2, 3}), store.PutOptions{})
	mustPut(t, s, "other", store.Text("x"), store.PutOptions{})
	n := 0
	err := filepath.WalkDir(s.Dir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n++
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %04o, want %04o", p, got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 8 {
		t.Fatalf("walked only %d entries", n)
	}

	t.Run("open-directory-refused", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		s := newStore(t, Options{Dir: dir})
		_, err := s.Put(testCtx(t), "x", store.Text("v"), store.PutOptions{})
		if !errors.Is(err, store.ErrPermissionDenied) || !strings.Contains(err.Error(), "chmod 700") {
			t.Fatalf("Put into a 0755 directory: %v, want ErrPermissionDenied with a chmod hint", err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("refused store wrote %d entries", len(entries))
		}
	})
	t.Run("not-a-directory", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		s := newStore(t, Options{Dir: p})
		if _, err := s.Describe(testCtx(t), "x"); !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("store on a file: %v, want ErrUnavailable", err)
		}
	})
}

func TestRoundTripAndVersions(t *testing.T) {
	s := newStore(t, Options{})
	ctx := testCtx(t)
	prov := &store.Provenance{SourceStore: "aws", SourceName: "db", SourceVersion: "7", Written: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	md1 := mustPut(t, s, "a/b", store.Text("first"), store.PutOptions{Tags: map[string]string{"team": "x"}, ContentType: "text/plain", Provenance: prov})
	md2 := mustPut(t, s, "a/b", store.Binary([]byte{0xff, 0x00}), store.PutOptions{})
	if md1.Version != "1" || md2.Version != "2" {
		t.Fatalf("versions %q, %q; want 1, 2", md1.Version, md2.Version)
	}
	if md2.Tags["team"] != "x" {
		t.Errorf("Put with nil Tags dropped the tags: %v", md2.Tags)
	}
	if md2.Provenance != nil {
		t.Errorf("Put without provenance kept the old record: %+v", md2.Provenance)
	}
	if !md2.Binary || md2.ContentType != "" {
		t.Errorf("current metadata: binary=%v content type %q", md2.Binary, md2.ContentType)
	}
	old, err := s.GetVersion(ctx, "a/b", "1")
	if err != nil {
		t.Fatal(err)
	}
	if !old.Value.Equal(store.Text("first")) || old.Metadata.Binary || old.Metadata.ContentType != "text/plain" || old.Metadata.Version != "1" {
		t.Errorf("version 1: %v %+v", old.Value, old.Metadata)
	}
	for _, bad := range []string{"0", "3", "01", "-1", "x", "", "1.0"} {
		if _, err := s.GetVersion(ctx, "a/b", bad); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetVersion(%q): %v, want ErrNotFound", bad, err)
		}
	}
	// Put adds and changes tags and keeps the others.
	md3 := mustPut(t, s, "a/b", store.Text(""), store.PutOptions{Tags: map[string]string{"env": "prod"}})
	if len(md3.Tags) != 2 || md3.Tags["team"] != "x" || md3.Tags["env"] != "prod" {
		t.Errorf("Put with a new tag: tags %v, want team=x env=prod", md3.Tags)
	}
	md3 = mustPut(t, s, "a/b", store.Text(""), store.PutOptions{Tags: map[string]string{"team": "y"}})
	if len(md3.Tags) != 2 || md3.Tags["team"] != "y" || md3.Tags["env"] != "prod" {
		t.Errorf("Put changing a tag: tags %v, want team=y env=prod", md3.Tags)
	}
	got, err := s.Get(ctx, "a/b")
	if err != nil || !got.Value.Equal(store.Text("")) {
		t.Fatalf("empty value: %v %v", got.Value, err)
	}
	// A secret and a secret below its name coexist.
	mustPut(t, s, "a/b/c", store.Text("child"), store.PutOptions{})
	mustPut(t, s, "a", store.Text("parent"), store.PutOptions{})
	for name, want := range map[string]string{"a": "parent", "a/b": "", "a/b/c": "child"} {
		sec, err := s.Get(ctx, name)
		if err != nil || !sec.Value.Equal(store.Text(want)) {
			t.Errorf("Get(%q) = %v, %v", name, sec.Value, err)
		}
	}
}

func TestMaxVersions(t *testing.T) {
	s := newStore(t, Options{MaxVersions: 2})
	ctx := testCtx(t)
	for i := 0; i < 5; i++ {
		mustPut(t, s, "k", store.Text(strings.Repeat("v", i+1)), store.PutOptions{})
	}
	var got []string
	for vi, err := range s.Versions(ctx, "k") {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, vi.Version)
	}
	if strings.Join(got, ",") != "5,4" {
		t.Fatalf("versions kept %v, want 5,4", got)
	}
	if _, err := s.GetVersion(ctx, "k", "3"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("pruned version: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(s.Dir(), "secrets", "k", "~s", "v*"))
	if len(files) != 2 {
		t.Fatalf("value files left: %v", files)
	}
}

func TestPutIf(t *testing.T) {
	s := newStore(t, Options{})
	ctx := testCtx(t)
	if _, err := s.PutIf(ctx, "cas", store.Text("a"), store.PutOptions{}, "1"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("PutIf(1) on a missing secret: %v, want ErrConflict", err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "secrets", "cas")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused PutIf left a directory behind: %v", err)
	}
	md, err := s.PutIf(ctx, "cas", store.Text("a"), store.PutOptions{}, "")
	if err != nil || md.Version != "1" {
		t.Fatalf("PutIf(\"\") on a missing secret: %v %v", md, err)
	}
	if _, err := s.PutIf(ctx, "cas", store.Text("b"), store.PutOptions{}, ""); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("PutIf(\"\") on an existing secret: %v, want ErrConflict", err)
	}
	before := s.Writes()
	if _, err := s.PutIf(ctx, "cas", store.Text("b"), store.PutOptions{}, "2"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("PutIf(2) at version 1: %v, want ErrConflict", err)
	}
	if s.Writes() != before {
		t.Errorf("a refused PutIf wrote %d files", s.Writes()-before)
	}
	if md, err := s.PutIf(ctx, "cas", store.Text("b"), store.PutOptions{}, "1"); err != nil || md.Version != "2" {
		t.Fatalf("PutIf(1) at version 1: %v %v", md, err)
	}
	sec, _ := s.Get(ctx, "cas")
	if !sec.Value.Equal(store.Text("b")) {
		t.Fatalf("value after PutIf: %v", sec.Value)
	}
}

func TestUpdateMetadata(t *testing.T) {
	s := newStore(t, Options{})
	ctx := testCtx(t)
	if err := s.UpdateMetadata(ctx, "missing", nil, nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateMetadata of a missing secret: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(s.Dir(), "secrets")); len(entries) != 0 {
		t.Fatalf("UpdateMetadata of a missing secret created %d entries", len(entries))
	}
	mustPut(t, s, "m", store.Text("v"), store.PutOptions{Tags: map[string]string{"a": "1"}})
	before := s.Writes()
	err := s.UpdateMetadata(ctx, "m", map[string]string{"bad": "\xff"}, nil)
	if !errors.Is(err, store.ErrInvalidTags) || s.Writes() != before {
		t.Fatalf("invalid UTF-8 tag value: %v (writes %d)", err, s.Writes()-before)
	}
	if err := s.UpdateMetadata(ctx, "m", map[string]string{"keyferry-x": "1"}, nil); !errors.Is(err, store.ErrInvalidTags) {
		t.Fatalf("reserved tag key: %v", err)
	}
	p := &store.Provenance{SourceStore: "s", SourceName: "n", ReplicaVersion: "1"}
	if err := s.UpdateMetadata(ctx, "m", map[string]string{"b": "2"}, p); err != nil {
		t.Fatal(err)
	}
	md, err := s.Describe(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Tags) != 1 || md.Tags["b"] != "2" || md.Provenance == nil || md.Provenance.ReplicaVersion != "1" || md.Version != "1" {
		t.Fatalf("after UpdateMetadata: %+v", md)
	}
	if err := s.UpdateMetadata(ctx, "m", nil, nil); err != nil {
		t.Fatal(err)
	}
	if md, _ := s.Describe(ctx, "m"); len(md.Tags) != 0 || md.Provenance != nil {
		t.Fatalf("UpdateMetadata(nil, nil) left %+v", md)
	}
}

func TestTagLimitWithKeptTags(t *testing.T) {
	s := newStore(t, Options{})
	tags := map[string]string{}
	for i := 0; i < maxTags-1; i++ {
		tags["t"+strings.Repeat("x", i)] = "v"
	}
	mustPut(t, s, "many", store.Text("v"), store.PutOptions{Tags: tags})
	before := s.Writes()
	// Keeping 63 tags and adding a provenance record of 2 entries exceeds 64.
	_, err := s.Put(testCtx(t), "many", store.Text("w"), store.PutOptions{Provenance: &store.Provenance{SourceStore: "a", SourceName: "b"}})
	if !errors.Is(err, store.ErrInvalidTags) || s.Writes() != before {
		t.Fatalf("Put exceeding the tag limit with kept tags: %v (writes %d)", err, s.Writes()-before)
	}
	// Two new tags on top of the 63 kept ones exceed it too, though each Put alone is within it.
	_, err = s.Put(testCtx(t), "many", store.Text("w"), store.PutOptions{Tags: map[string]string{"new1": "v", "new2": "v"}})
	if !errors.Is(err, store.ErrInvalidTags) || s.Writes() != before {
		t.Fatalf("Put exceeding the tag limit with merged tags: %v (writes %d)", err, s.Writes()-before)
	}
	// Changing kept tags does not add to the count.
	mustPut(t, s, "many", store.Text("w"), store.PutOptions{Tags: map[string]string{"t": "changed", "new": "v"}})
}

func TestDeleteRemovesEverything(t *testing.T) {
	s := newStore(t, Options{})
	ctx := testCtx(t)
	mustPut(t, s, "x/y/z", store.Text("1"), store.PutOptions{})
	mustPut(t, s, "x/y/z", store.Text("2"), store.PutOptions{})
	mustPut(t, s, "x/keep", store.Text("k"), store.PutOptions{})
	if err := s.Delete(ctx, "x/y/z", store.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "secrets", "x", "y")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("empty directories left after delete: %v", err)
	}
	if _, err := s.Get(ctx, "x/keep"); err != nil {
		t.Errorf("neighbour lost: %v", err)
	}
	if err := s.Delete(ctx, "x/y/z", store.DeleteOptions{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if md := mustPut(t, s, "x/y/z", store.Text("again"), store.PutOptions{}); md.Version != "1" {
		t.Errorf("re-created secret starts at version %s", md.Version)
	}
	var n []string
	for vi, err := range s.Versions(ctx, "x/y/z") {
		if err != nil {
			t.Fatal(err)
		}
		n = append(n, vi.Version)
	}
	if len(n) != 1 {
		t.Errorf("re-created secret has versions %v", n)
	}
	if _, err := s.GetVersion(ctx, "x/y/z", "2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("old version survived the delete: %v", err)
	}
}

func TestDamagedMetadata(t *testing.T) {
	s := newStore(t, Options{})
	ctx := testCtx(t)
	mustPut(t, s, "d", store.Text("secret-value-damaged"), store.PutOptions{})
	mp := filepath.Join(s.Dir(), "secrets", "d", "~s", "meta.json")
	if err := os.WriteFile(mp, []byte(`{"format":1,"name":"d"`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := s.Get(ctx, "d")
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("Get with damaged metadata: %v", err)
	}
	if strings.Contains(err.Error(), "secret-value-damaged") {
		t.Fatal("error carries the value")
	}
	if _, err := s.Put(ctx, "d", store.Text("x"), store.PutOptions{}); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Put over damaged metadata: %v", err)
	}
	// Listing reports the damaged secret and goes on.
	mustPut(t, s, "e", store.Text("fine"), store.PutOptions{})
	var names []string
	var errs int
	for md, err := range s.List(ctx, store.ListOptions{}) {
		if err != nil {
			errs++
			continue
		}
		names = append(names, md.Name)
	}
	if errs != 1 || strings.Join(names, ",") != "e" {
		t.Fatalf("List over a damaged secret: names %v, %d errors", names, errs)
	}
	// It can still be deleted.
	if err := s.Delete(ctx, "d", store.DeleteOptions{}); err != nil {
		t.Fatalf("Delete of a damaged secret: %v", err)
	}
	mustPut(t, s, "d", store.Text("new"), store.PutOptions{})

	// A value file whose size disagrees with the metadata is reported, not returned.
	if err := os.WriteFile(filepath.Join(s.Dir(), "secrets", "d", "~s", "v1"), []byte("ne"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "d"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Get of a truncated value: %v", err)
	}
	// Metadata of a newer format is refused with an upgrade hint.
	if err := os.WriteFile(mp, []byte(`{"format":9,"name":"d","current":1,"versions":[{"version":1,"kind":"text"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Describe(ctx, "d"); err == nil || !strings.Contains(err.Error(), "upgrade keyferry") {
		t.Fatalf("newer metadata format: %v", err)
	}
}
