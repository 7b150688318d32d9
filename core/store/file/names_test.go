package file

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/keyferry/keyferry/core/store"
)

func syscallUmask(m int) int { return syscall.Umask(m) }

func TestNameRule(t *testing.T) {
	valid := []string{
		"a", "A", "0", "db-password", "team/app/db", "a.b", ".hidden", "...", "..a", "a..", "a/.b/c",
		"x_y+z=w@v-u", "prod/db/password", strings.Repeat("s", 255), strings.Repeat("a/", 255) + "a",
		strings.Repeat("n", 255) + "/" + strings.Repeat("m", 255),
	}
	invalid := []string{
		"", ".", "..", "/", "/a", "a/", "a//b", "./a", "a/.", "a/..", "../a", "a/../b", "a/./b",
		"a b", "a\\b", "a\x00b", "a\nb", "~s", "a/~s", "a/~s/meta.json", "a:b", "a*", "a?", "ä", "秘密",
		"%2e%2e", "a\u2215b", // division slash
		strings.Repeat("s", 256), strings.Repeat("a/", 256) + "a", strings.Repeat("x", 513),
	}
	s := newStore(t, Options{})
	for _, n := range valid {
		if err := s.Limits().CheckName(n); err != nil {
			t.Errorf("valid name %q refused: %v", n, err)
		}
	}
	for _, n := range invalid {
		if err := s.Limits().CheckName(n); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("invalid name %q accepted (%v)", n, err)
		}
	}
}

// TestHostileNames tries names meant to reach files outside the store directory, through every
// operation, and checks that nothing outside it is read, created or changed.
func TestHostileNames(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "store")
	outside := filepath.Join(base, "outside")
	if err := os.MkdirAll(filepath.Join(outside, "~s"), 0o700); err != nil {
		t.Fatal(err)
	}
	// A planted secret outside the store that a traversal would find.
	planted := `{"format":1,"name":"../outside","current":1,"versions":[{"version":1,"kind":"text","size":6}]}`
	if err := os.WriteFile(filepath.Join(outside, "~s", "meta.json"), []byte(planted), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "~s", "v1"), []byte("stolen"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newStore(t, Options{Dir: dir})
	ctx := testCtx(t)
	mustPut(t, s, "ok", store.Text("v"), store.PutOptions{})
	outsideBefore := tree(t, base)

	hostile := []string{
		"../outside", "../../outside", "..", "../", "/etc/passwd", "//etc/passwd", "a/../../outside",
		"secrets/../../outside", "./../outside", "..\\outside", "../outside\x00", "ok/../../outside",
		"~s", "ok/~s", "ok/~s/v1", "%2e%2e/outside", "\u2024\u2024/outside", "..%2foutside",
		strings.Repeat("../", 200) + "etc/passwd", "ok/" + strings.Repeat("a", 600),
	}
	for _, n := range hostile {
		_, err := s.Put(ctx, n, store.Text("v"), store.PutOptions{})
		if !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("Put(%q): %v, want ErrInvalidName", n, err)
		}
		if _, err := s.PutIf(ctx, n, store.Text("v"), store.PutOptions{}, ""); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("PutIf(%q): %v", n, err)
		}
		if _, err := s.Get(ctx, n); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("Get(%q): %v", n, err)
		}
		if _, err := s.GetVersion(ctx, n, "1"); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("GetVersion(%q): %v", n, err)
		}
		if _, err := s.Describe(ctx, n); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("Describe(%q): %v", n, err)
		}
		if err := s.Delete(ctx, n, store.DeleteOptions{}); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("Delete(%q): %v", n, err)
		}
		if err := s.UpdateMetadata(ctx, n, nil, nil); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("UpdateMetadata(%q): %v", n, err)
		}
		for _, err := range s.Versions(ctx, n) {
			if !errors.Is(err, store.ErrInvalidName) {
				t.Errorf("Versions(%q): %v", n, err)
			}
		}
	}
	for _, p := range []string{"../", "..", "/", "../outside"} {
		for md, err := range s.List(ctx, store.ListOptions{Prefix: p}) {
			t.Errorf("List(prefix %q) yielded %q, %v", p, md.Name, err)
		}
	}
	if got := tree(t, base); !slices.Equal(got, outsideBefore) {
		t.Errorf("files changed:\nbefore %v\nafter  %v", outsideBefore, got)
	}
}

// TestSymlinkEscape plants symbolic links inside the store directory pointing outside it: the store must
// neither follow them out of its directory nor list what is behind them.
func TestSymlinkEscape(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	if err := os.MkdirAll(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	s := newStore(t, Options{Dir: filepath.Join(base, "store")})
	ctx := testCtx(t)
	mustPut(t, s, "real", store.Text("v"), store.PutOptions{})
	// secrets/evil -> ../../outside (relative) and secrets/abs -> /absolute/outside.
	if err := os.Symlink("../../outside", filepath.Join(s.Dir(), "secrets", "evil")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(s.Dir(), "secrets", "abs")); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"evil/x", "abs/x"} {
		if _, err := s.Put(ctx, n, store.Text("v"), store.PutOptions{}); err == nil {
			t.Errorf("Put(%q) through a symlink out of the store succeeded", n)
		}
		if entries, _ := os.ReadDir(outside); len(entries) != 0 {
			t.Fatalf("Put(%q) created %d entries outside the store", n, len(entries))
		}
	}
	var names []string
	for md, err := range s.List(ctx, store.ListOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, md.Name)
	}
	if !slices.Equal(names, []string{"real"}) {
		t.Errorf("List = %v, want [real]", names)
	}
}
