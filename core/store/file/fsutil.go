package file

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"path"
	"strings"
	"syscall"
	"time"
)

// crashHook, when set (by tests only), is called at each step of a write, so that a test process can
// die exactly there.
var crashHook func(step string)

func hook(step string) {
	if crashHook != nil {
		crashHook(step)
	}
}

func tmpName() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return tmpPrefix + hex.EncodeToString(b)
}

// writeAtomic replaces dir/final with data: a temporary file in dir is written, synced and renamed over
// final, then dir is synced. A crash leaves the old file or the new one, plus at worst a temporary
// file that readers ignore and the next write removes.
func (s *Store) writeAtomic(root *os.Root, dir, final string, data []byte, step string) (err error) {
	tmp := dir + "/" + tmpName()
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		if !renamed {
			_ = f.Close()
			_ = root.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	hook(step + ":temp-written")
	if err := root.Rename(tmp, dir+"/"+final); err != nil {
		return err
	}
	renamed = true
	s.writes.Add(1)
	hook(step + ":renamed")
	return syncDir(root, dir)
}

// syncDir makes the entries of dir (created, renamed or removed files) durable.
func syncDir(root *os.Root, dir string) error {
	d, err := root.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// mkdirs creates dir and its missing parents (0700), syncing each parent that gained an entry. A parent
// removed concurrently (by the delete of a neighbouring secret) is created again.
func mkdirs(root *os.Root, dir string) error {
	parts := strings.Split(dir, "/")
	for attempt := 0; attempt < 100; attempt++ {
		retry := false
		for i := range parts {
			p := strings.Join(parts[:i+1], "/")
			err := root.Mkdir(p, 0o700)
			switch {
			case err == nil:
				if err := syncDir(root, path.Dir(p)); errors.Is(err, fs.ErrNotExist) {
					retry = true // the parent went away after the Mkdir: start again from the top
				} else if err != nil {
					return err
				}
			case errors.Is(err, fs.ErrExist):
			case errors.Is(err, fs.ErrNotExist):
				retry = true
			default:
				return err
			}
			if retry {
				break
			}
		}
		if !retry {
			return nil
		}
	}
	return fmt.Errorf("creating %s: its parent keeps disappearing", dir)
}

// lock takes the exclusive lock of the secret whose "~s" directory is dir, waiting as long as ctx allows.
// With create, the directory is created if missing; without, errNoSecret is returned when it is.
// The lock is released by closing the returned file.
//
// Delete removes the lock file while holding it, so a lock taken on a file that has since been unlinked
// (or replaced) is no lock at all: after locking, the file must still be the one at the lock's path.
func lock(ctx context.Context, root *os.Root, dir string, create bool) (*os.File, error) {
	lp := dir + "/" + lockFile
	for attempt := 0; ; attempt++ {
		if attempt == 1000 {
			return nil, fmt.Errorf("cannot lock %s: the lock file keeps being replaced", lp)
		}
		if create {
			if err := mkdirs(root, dir); err != nil {
				return nil, err
			}
		}
		f, err := root.OpenFile(lp, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				if !create {
					return nil, errNoSecret
				}
				continue
			}
			return nil, err
		}
		if err := flock(ctx, f); err != nil {
			_ = f.Close()
			return nil, err
		}
		held, err1 := f.Stat()
		now, err2 := root.Stat(lp)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			return f, nil
		}
		_ = f.Close()
	}
}

// flock takes an exclusive flock on f, polling so that ctx can end the wait.
func flock(ctx context.Context, f *os.File) error {
	fd := int(f.Fd())
	delay := 200 * time.Microsecond
	for {
		err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return fmt.Errorf("locking %s: %w", f.Name(), err)
		}
		t := time.NewTimer(delay/2 + mrand.N(delay))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for the lock of %s: %w", path.Dir(f.Name()), ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, 20*time.Millisecond)
	}
}

// tidy removes, from a locked secret directory, what crashed writes left behind: temporary files and
// value files the metadata does not refer to (m is nil when the secret does not exist).
func (s *Store) tidy(root *os.Root, dir string, m *meta) error {
	d, err := root.Open(dir)
	if err != nil {
		return err
	}
	entries, err := d.ReadDir(-1)
	_ = d.Close()
	if err != nil {
		return err
	}
	for _, e := range entries {
		n := e.Name()
		switch {
		case strings.HasPrefix(n, tmpPrefix):
		case strings.HasPrefix(n, valuePrefx):
			v, ok := parseVersion(n[len(valuePrefx):])
			if !ok {
				continue
			}
			if m != nil {
				if _, kept := m.version(v); kept {
					continue
				}
			}
			s.writes.Add(1)
		default:
			continue
		}
		if err := root.Remove(dir + "/" + n); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// removeEmpty removes the lock file and "~s" directory of a secret that has no metadata file, then each
// parent directory that is left empty, up to the secrets directory. The caller holds the lock. Failures
// (a directory that is not empty, because a neighbour or a new writer uses it) end the walk silently.
func removeEmpty(root *os.Root, dir string) {
	_ = root.Remove(dir + "/" + lockFile)
	for p := dir; p != secretsDir && p != "." && p != "/"; p = path.Dir(p) {
		if err := root.Remove(p); err != nil {
			return
		}
	}
}
