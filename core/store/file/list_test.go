package file

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/keyferry/keyferry/core/store"
)

func listNames(t *testing.T, s *Store, opts store.ListOptions) []string {
	t.Helper()
	var out []string
	for md, err := range s.List(testCtx(t), opts) {
		if err != nil {
			t.Fatalf("List(%+v): %v", opts, err)
		}
		out = append(out, md.Name)
	}
	return out
}

func TestListPrefixAndTags(t *testing.T) {
	s := newStore(t, Options{})
	names := []string{"a", "a/b", "a/b/c", "a-b", "ab", "b/x", "b/y/z", "prod/db/1", "prod/db/2", "prod/dbx"}
	for i, n := range names {
		tags := map[string]string{"i": fmt.Sprint(i)}
		if i%2 == 0 {
			tags["even"] = "yes"
		}
		mustPut(t, s, n, store.Text("v"), store.PutOptions{Tags: tags})
	}
	// A directory left by a write that crashed before its metadata is not a secret.
	if err := os.MkdirAll(filepath.Join(s.Dir(), "secrets", "ghost", "~s"), 0o700); err != nil {
		t.Fatal(err)
	}
	sorted := func(x []string) []string { y := slices.Clone(x); slices.Sort(y); return y }
	for _, c := range []struct {
		opts store.ListOptions
		want []string
	}{
		{store.ListOptions{}, names},
		{store.ListOptions{Prefix: "a"}, []string{"a", "a/b", "a/b/c", "a-b", "ab"}},
		{store.ListOptions{Prefix: "a/"}, []string{"a/b", "a/b/c"}},
		{store.ListOptions{Prefix: "a/b"}, []string{"a/b", "a/b/c"}},
		{store.ListOptions{Prefix: "prod/db"}, []string{"prod/db/1", "prod/db/2", "prod/dbx"}},
		{store.ListOptions{Prefix: "prod/db/"}, []string{"prod/db/1", "prod/db/2"}},
		{store.ListOptions{Prefix: "zzz"}, nil},
		{store.ListOptions{Tags: map[string]string{"even": "yes"}}, []string{"a", "a/b/c", "ab", "b/y/z", "prod/db/2"}},
		{store.ListOptions{Prefix: "b", Tags: map[string]string{"i": "5"}}, []string{"b/x"}},
		{store.ListOptions{Tags: map[string]string{"even": "no"}}, nil},
	} {
		for _, ps := range []int{0, 1, 2, 100} {
			c.opts.PageSize = ps
			if got := listNames(t, s, c.opts); !slices.Equal(sorted(got), sorted(c.want)) {
				t.Errorf("List(%+v) = %v, want %v", c.opts, got, c.want)
			}
		}
	}
	// Order: depth first, each directory's entries in name order.
	if got := listNames(t, s, store.ListOptions{}); !slices.Equal(got, []string{"a", "a/b", "a/b/c", "a-b", "ab", "b/x", "b/y/z", "prod/db/1", "prod/db/2", "prod/dbx"}) {
		t.Errorf("List order %v", got)
	}
}

// TestListIsLazy checks that List reads metadata files a page at a time and stops when the caller does.
func TestListIsLazy(t *testing.T) {
	s := newStore(t, Options{})
	for i := 0; i < 10; i++ {
		mustPut(t, s, fmt.Sprintf("lazy/%02d", i), store.Text("v"), store.PutOptions{})
	}
	before := s.metaPages.Load()
	n := 0
	for _, err := range s.List(testCtx(t), store.ListOptions{PageSize: 3}) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 4 {
			break
		}
	}
	if pages := s.metaPages.Load() - before; pages != 2 {
		t.Errorf("4 of 10 secrets with page size 3 read %d pages, want 2", pages)
	}
	before = s.metaPages.Load()
	if got := listNames(t, s, store.ListOptions{PageSize: 3}); len(got) != 10 {
		t.Fatalf("full listing: %v", got)
	}
	if pages := s.metaPages.Load() - before; pages != 4 {
		t.Errorf("10 secrets with page size 3 read %d pages, want 4", pages)
	}
}

// TestDescribeAndListOpenNoValue checks that Describe and List answer from metadata files alone: no
// value file is opened, and they still answer when every value file is gone.
func TestDescribeAndListOpenNoValue(t *testing.T) {
	s := newStore(t, Options{})
	ctx := testCtx(t)
	mustPut(t, s, "nv/text", store.Text("a text value"), store.PutOptions{Tags: map[string]string{"k": "v"}})
	mustPut(t, s, "nv/bin", store.Binary([]byte{0xff}), store.PutOptions{})
	valueFiles, err := filepath.Glob(filepath.Join(s.Dir(), "secrets", "nv", "*", "~s", "v*"))
	if err != nil || len(valueFiles) != 2 {
		t.Fatalf("value files %v, %v", valueFiles, err)
	}
	for _, f := range valueFiles {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	before := s.valueOpens.Load()
	md, err := s.Describe(ctx, "nv/bin")
	if err != nil || !md.Binary || md.Version != "1" {
		t.Fatalf("Describe without value files: %+v, %v", md, err)
	}
	if md, err := s.Describe(ctx, "nv/text"); err != nil || md.Binary || md.Tags["k"] != "v" {
		t.Fatalf("Describe without value files: %+v, %v", md, err)
	}
	if got := listNames(t, s, store.ListOptions{Prefix: "nv/"}); len(got) != 2 {
		t.Fatalf("List without value files: %v", got)
	}
	for _, err := range s.Versions(ctx, "nv/text") {
		if err != nil {
			t.Fatal(err)
		}
	}
	if opens := s.valueOpens.Load() - before; opens != 0 {
		t.Fatalf("Describe, List and Versions opened %d value files", opens)
	}
	// The counter can fail: Get opens the value file (and reports it missing).
	if _, err := s.Get(ctx, "nv/text"); err == nil {
		t.Fatal("Get without its value file succeeded")
	}
	if s.valueOpens.Load() == before {
		t.Fatal("Get was not counted as a value open")
	}
}
