package file

import (
	"context"
	"errors"
	"io/fs"
	"iter"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/keyferry/keyferry/core/store"
)

// DefaultPageSize is how many metadata files List reads at a time unless ListOptions say otherwise.
const DefaultPageSize = 100

// List yields the metadata of every secret matching opts, depth first with each directory's entries in
// name order. It reads directories as it descends and metadata files PageSize at a time, only as far as
// the caller consumes, and never opens a value file. Directories that cannot hold a name with the
// prefix are not entered.
func (s *Store) List(ctx context.Context, opts store.ListOptions) iter.Seq2[store.Metadata, error] {
	return func(yield func(store.Metadata, error) bool) {
		const op = "list"
		root, err := s.open(op, "")
		if err != nil {
			yield(store.Metadata{}, err)
			return
		}
		pageSize := opts.PageSize
		if pageSize <= 0 {
			pageSize = DefaultPageSize
		}
		w := &walker{root: root, prefix: opts.Prefix}
		for {
			if err := ctx.Err(); err != nil {
				yield(store.Metadata{}, store.Annotate(err, s.opts.Name, op, ""))
				return
			}
			names, err := w.next(pageSize)
			if err != nil {
				yield(store.Metadata{}, s.ioErr(op, "", "cannot read the secrets directory", err))
				return
			}
			if len(names) == 0 {
				return
			}
			s.metaPages.Add(1)
			page := make([]*meta, 0, len(names))
			var errs []error
			for _, n := range names {
				m, err := readMeta(root, n)
				switch {
				case errors.Is(err, errNoSecret):
					// deleted since the directory was read, or a write that crashed before its metadata
				case err != nil:
					errs = append(errs, s.readErr(op, n, err))
				default:
					page = append(page, m)
				}
			}
			for _, err := range errs {
				if !yield(store.Metadata{}, err) {
					return
				}
			}
			for _, m := range page {
				if !tagsMatch(m.Tags, opts.Tags) {
					continue
				}
				if !yield(m.metadata(0), nil) {
					return
				}
			}
		}
	}
}

func tagsMatch(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// walker finds secrets (directories holding a "~s" directory) depth first.
type walker struct {
	root    *os.Root
	prefix  string
	stack   []*frame
	started bool
}

type frame struct {
	children []string // secret-name paths of the subdirectories still to visit
}

// next returns up to n more names of secrets whose names start with the prefix.
func (w *walker) next(n int) ([]string, error) {
	var out []string
	if !w.started {
		w.started = true
		f, err := w.visit("", &out)
		if err != nil {
			return nil, err
		}
		w.stack = append(w.stack, f)
	}
	for len(out) < n && len(w.stack) > 0 {
		top := w.stack[len(w.stack)-1]
		if len(top.children) == 0 {
			w.stack = w.stack[:len(w.stack)-1]
			continue
		}
		child := top.children[0]
		top.children = top.children[1:]
		f, err := w.visit(child, &out)
		if err != nil {
			return nil, err
		}
		w.stack = append(w.stack, f)
	}
	return out, nil
}

// visit reads the directory of name ("" for the top), adds name to out if it is a secret with the
// prefix, and returns the subdirectories worth descending into.
func (w *walker) visit(name string, out *[]string) (*frame, error) {
	d, err := w.root.Open(path.Join(secretsDir, name))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return &frame{}, nil // removed since its parent was read
		}
		return nil, err
	}
	entries, err := d.ReadDir(-1)
	_ = d.Close()
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return &frame{}, nil // removed between opening and reading it
		}
		return nil, err
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	f := &frame{}
	for _, e := range entries {
		if !e.IsDir() { // symbolic links are not followed
			continue
		}
		if e.Name() == secretSub {
			if name != "" && strings.HasPrefix(name, w.prefix) {
				*out = append(*out, name)
			}
			continue
		}
		child := e.Name()
		if name != "" {
			child = name + "/" + child
		}
		if !namePattern().MatchString(child) {
			continue
		}
		if strings.HasPrefix(child, w.prefix) || strings.HasPrefix(w.prefix, child+"/") {
			f.children = append(f.children, child)
		}
	}
	return f, nil
}
