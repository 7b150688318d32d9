package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyferry/keyferry/core/store"
)

// Child processes: the test binary runs itself with childEnv set to act on a shared store directory.
const childEnv = "KEYFERRY_FILESTORE_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		if err := runChild(strings.Split(spec, "|")); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runChild does one job: args[0] is the job, args[1] the store directory.
func runChild(args []string) error {
	s, err := New(Options{Name: "child", Dir: args[1]})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	switch args[0] {
	case "crash": // crash|dir|op|name|step: die at step while doing op on name
		step := args[4]
		crashHook = func(at string) {
			if at == step {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				time.Sleep(time.Minute)
			}
		}
		switch args[2] {
		case "put":
			_, err = s.Put(ctx, args[3], store.Text("value-written-by-the-crashing-process"), store.PutOptions{})
		case "delete":
			err = s.Delete(ctx, args[3], store.DeleteOptions{})
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("step %q was never reached", step)
	case "churn": // churn|dir: write self-checking values to three secrets until killed
		for seq := 1; ; seq++ {
			if _, err := s.Put(ctx, fmt.Sprintf("churn/s%d", seq%3), checkedValue(seq), store.PutOptions{}); err != nil {
				return err
			}
		}
	case "increment": // increment|dir|name|n: add 1 to a counter n times with PutIf
		n, _ := strconv.Atoi(args[3])
		for i := 0; i < n; {
			sec, err := s.Get(ctx, args[2])
			if err != nil {
				return err
			}
			cur, err := strconv.Atoi(string(sec.Value.Bytes()))
			if err != nil {
				return err
			}
			_, err = s.PutIf(ctx, args[2], store.Text(strconv.Itoa(cur+1)), store.PutOptions{}, sec.Metadata.Version)
			if errors.Is(err, store.ErrConflict) {
				continue
			}
			if err != nil {
				return err
			}
			i++
		}
		return nil
	case "append": // append|dir|name|n|id: write n versions "id-i"
		n, _ := strconv.Atoi(args[3])
		for i := 0; i < n; i++ {
			if _, err := s.Put(ctx, args[2], store.Text(fmt.Sprintf("%s-%d", args[4], i)), store.PutOptions{}); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("unknown job %q", args[0])
}

// checkedValue is a value whose bytes can be checked for tearing: a header naming its sequence number
// and a body whose length and filler derive from it. Odd sequence numbers are binary.
func checkedValue(seq int) store.Value {
	body := bytes.Repeat([]byte{byte('a' + seq%26)}, 1000+(seq*7919)%60000)
	b := append([]byte(fmt.Sprintf("seq=%d;", seq)), body...)
	if seq%2 == 1 {
		return store.Binary(b)
	}
	return store.Text(string(b))
}

func verifyChecked(v store.Value) error {
	head, _, ok := bytes.Cut(v.Bytes(), []byte(";"))
	if !ok || !bytes.HasPrefix(head, []byte("seq=")) {
		return fmt.Errorf("value of %d bytes has no header", v.Len())
	}
	seq, err := strconv.Atoi(string(head[4:]))
	if err != nil {
		return err
	}
	if want := checkedValue(seq); !want.Equal(v) {
		return fmt.Errorf("value %d is torn: %d bytes (%s), want %d bytes (%s)", seq, v.Len(), v.Kind(), want.Len(), want.Kind())
	}
	return nil
}

// child starts a child process on dir and returns it started.
func child(t *testing.T, ctx context.Context, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+strings.Join(args, "|"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd, &out
}

func killedBySIGKILL(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// secretFiles lists the files of a secret's "~s" directory.
func secretFiles(t *testing.T, s *Store, name string) []string {
	t.Helper()
	entries, err := os.ReadDir(s.Dir() + "/" + secretDir(name))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func hasTemp(files []string) bool {
	for _, f := range files {
		if strings.HasPrefix(f, tmpPrefix) {
			return true
		}
	}
	return false
}

// TestCrashAtEveryStep kills a writer at each step of a write and of a delete and checks that the store
// shows exactly the old or the new state, that what the crash left is ignored, and that the next write
// cleans it up.
func TestCrashAtEveryStep(t *testing.T) {
	old := store.Text("the-old-value")
	for _, c := range []struct {
		op, step    string
		existing    bool
		wantNew     bool // the write is committed
		wantMissing bool
		wantTemp    bool // a temporary file is left behind
	}{
		{op: "put", step: "value:temp-written", existing: true, wantTemp: true},
		{op: "put", step: "value:renamed", existing: true},
		{op: "put", step: "meta:temp-written", existing: true, wantTemp: true},
		{op: "put", step: "meta:renamed", existing: true, wantNew: true},
		{op: "put", step: "value:temp-written", wantMissing: true, wantTemp: true},
		{op: "put", step: "value:renamed", wantMissing: true},
		{op: "put", step: "meta:temp-written", wantMissing: true, wantTemp: true},
		{op: "put", step: "meta:renamed", wantNew: true},
		{op: "delete", step: "delete:meta-removed", existing: true, wantMissing: true},
	} {
		t.Run(fmt.Sprintf("%s-%s-existing=%v", c.op, c.step, c.existing), func(t *testing.T) {
			s := newStore(t, Options{})
			ctx := testCtx(t)
			const name = "crash/me"
			if c.existing {
				mustPut(t, s, name, old, store.PutOptions{Tags: map[string]string{"t": "1"}})
			} else {
				mustPut(t, s, "crash/neighbour", old, store.PutOptions{}) // the store directory exists
			}
			cmd, out := child(t, ctx, "crash", s.Dir(), c.op, name, c.step)
			if err := cmd.Wait(); !killedBySIGKILL(err) {
				t.Fatalf("the child did not die at %s: %v\n%s", c.step, err, out)
			}
			if got := hasTemp(secretFiles(t, s, name)); got != c.wantTemp {
				t.Errorf("temporary file left: %v, want %v (%v)", got, c.wantTemp, secretFiles(t, s, name))
			}
			sec, err := s.Get(ctx, name)
			listed := listNames(t, s, store.ListOptions{Prefix: "crash/me"})
			switch {
			case c.wantMissing:
				if !errors.Is(err, store.ErrNotFound) || len(listed) != 0 {
					t.Fatalf("after the crash: Get %v, List %v; want no secret", err, listed)
				}
			case c.wantNew:
				if err != nil || string(sec.Value.Bytes()) != "value-written-by-the-crashing-process" {
					t.Fatalf("after the crash: Get %v, %v; want the new value", sec.Value, err)
				}
			default:
				if err != nil || !sec.Value.Equal(old) || sec.Metadata.Version != "1" || sec.Metadata.Tags["t"] != "1" {
					t.Fatalf("after the crash: Get %v %+v, %v; want the old value at version 1", sec.Value, sec.Metadata, err)
				}
				var vs []string
				for vi, err := range s.Versions(ctx, name) {
					if err != nil {
						t.Fatal(err)
					}
					vs = append(vs, vi.Version)
				}
				if len(vs) != 1 {
					t.Fatalf("versions after the crash: %v", vs)
				}
			}
			// The next write succeeds, numbers its version right, and leaves only what the metadata names.
			md := mustPut(t, s, name, store.Text("after"), store.PutOptions{})
			want := map[string]bool{metaFile: true, lockFile: true}
			v, _ := strconv.Atoi(md.Version)
			switch {
			case c.wantMissing && md.Version != "1":
				t.Errorf("first write after the crash is version %s, want 1", md.Version)
			case !c.wantMissing && !c.wantNew && c.existing && md.Version != "2":
				t.Errorf("write after the crash is version %s, want 2", md.Version)
			}
			for i := 1; i <= v; i++ {
				want[fmt.Sprintf("v%d", i)] = true
			}
			files := secretFiles(t, s, name)
			for _, f := range files {
				if !want[f] {
					t.Errorf("file %s left after the next write (files %v)", f, files)
				}
			}
			if len(files) != len(want) {
				t.Errorf("files %v, want %v", files, want)
			}
			if sec, err := s.Get(ctx, name); err != nil || string(sec.Value.Bytes()) != "after" {
				t.Errorf("Get after the next write: %v, %v", sec.Value, err)
			}
		})
	}
}

// TestCrashAtRandom kills a process writing large self-checking values at random moments and checks
// after each kill that every version of every secret is whole.
func TestCrashAtRandom(t *testing.T) {
	s := newStore(t, Options{})
	ctx := testCtx(t)
	seen := 0
	for round := 0; round < 8; round++ {
		cmd, out := child(t, ctx, "churn", s.Dir())
		time.Sleep(time.Duration(30+round*15) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		if err := cmd.Wait(); !killedBySIGKILL(err) {
			t.Fatalf("churn child ended by itself: %v\n%s", err, out)
		}
		for i := 0; i < 3; i++ {
			name := fmt.Sprintf("churn/s%d", i)
			sec, err := s.Get(ctx, name)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				t.Fatalf("round %d: Get(%s): %v", round, name, err)
			}
			if err := verifyChecked(sec.Value); err != nil {
				t.Fatalf("round %d: %s: %v", round, name, err)
			}
			next, _ := strconv.Atoi(sec.Metadata.Version)
			for vi, err := range s.Versions(ctx, name) {
				if err != nil {
					t.Fatal(err)
				}
				if vi.Version != strconv.Itoa(next) {
					t.Fatalf("round %d: %s: version %s where %d was expected", round, name, vi.Version, next)
				}
				next--
				old, err := s.GetVersion(ctx, name, vi.Version)
				if err != nil {
					t.Fatalf("round %d: %s version %s: %v", round, name, vi.Version, err)
				}
				if err := verifyChecked(old.Value); err != nil {
					t.Fatalf("round %d: %s version %s: %v", round, name, vi.Version, err)
				}
				seen++
			}
			if next != 0 {
				t.Fatalf("round %d: %s: versions stop at %d", round, name, next+1)
			}
		}
	}
	if seen == 0 {
		t.Fatal("the churn processes wrote nothing before being killed")
	}
	t.Logf("checked %d versions after 8 kills", seen)
}

// TestProcessesShareTheStore runs writers in several processes against one directory.
func TestProcessesShareTheStore(t *testing.T) {
	const procs, each = 3, 40
	t.Run("compare-and-swap", func(t *testing.T) {
		s := newStore(t, Options{})
		ctx := testCtx(t)
		mustPut(t, s, "counter", store.Text("0"), store.PutOptions{})
		var cmds []*exec.Cmd
		var outs []*bytes.Buffer
		for i := 0; i < procs; i++ {
			cmd, out := child(t, ctx, "increment", s.Dir(), "counter", strconv.Itoa(each))
			cmds, outs = append(cmds, cmd), append(outs, out)
		}
		for i, cmd := range cmds {
			if err := cmd.Wait(); err != nil {
				t.Fatalf("process %d: %v\n%s", i, err, outs[i])
			}
		}
		sec, err := s.Get(ctx, "counter")
		if err != nil {
			t.Fatal(err)
		}
		if got := string(sec.Value.Bytes()); got != strconv.Itoa(procs*each) {
			t.Fatalf("counter = %s after %d×%d increments", got, procs, each)
		}
		// Every version holds its predecessor plus one: no increment was lost or applied twice.
		for v := 1; v <= procs*each+1; v++ {
			sec, err := s.GetVersion(ctx, "counter", strconv.Itoa(v))
			if err != nil || string(sec.Value.Bytes()) != strconv.Itoa(v-1) {
				t.Fatalf("version %d = %v, %v", v, sec.Value, err)
			}
		}
	})
	t.Run("plain-writes", func(t *testing.T) {
		s := newStore(t, Options{})
		ctx := testCtx(t)
		var cmds []*exec.Cmd
		var outs []*bytes.Buffer
		for i := 0; i < procs; i++ {
			cmd, out := child(t, ctx, "append", s.Dir(), "log", strconv.Itoa(each), fmt.Sprintf("p%d", i))
			cmds, outs = append(cmds, cmd), append(outs, out)
		}
		for i, cmd := range cmds {
			if err := cmd.Wait(); err != nil {
				t.Fatalf("process %d: %v\n%s", i, err, outs[i])
			}
		}
		seen := map[string]bool{}
		for v := 1; v <= procs*each; v++ {
			sec, err := s.GetVersion(ctx, "log", strconv.Itoa(v))
			if err != nil {
				t.Fatalf("version %d: %v", v, err)
			}
			val := string(sec.Value.Bytes())
			if seen[val] {
				t.Fatalf("value %s written twice", val)
			}
			seen[val] = true
		}
		if md, _ := s.Describe(ctx, "log"); md.Version != strconv.Itoa(procs*each) {
			t.Fatalf("current version %s, want %d", md.Version, procs*each)
		}
		for i := 0; i < procs; i++ {
			for j := 0; j < each; j++ {
				if !seen[fmt.Sprintf("p%d-%d", i, j)] {
					t.Fatalf("write p%d-%d lost", i, j)
				}
			}
		}
	})
}
