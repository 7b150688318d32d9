package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyferry/keyferry/core/store"
)

// Run runs the contract suite against h.Store.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Store == nil {
		t.Fatal("storetest: Harness.Store is nil")
	}
	s := &suite{h: h, st: h.Store, run: randHex(4)}
	t.Cleanup(func() {
		if h.Cleanup != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			h.Cleanup(ctx, s.names)
		}
	})

	t.Run("TextRoundTrip", s.textRoundTrip)
	t.Run("BinaryRoundTrip", s.binaryRoundTrip)
	t.Run("LargestValue", s.largestValue)
	t.Run("LimitsRefusedBeforeAnyCall", s.limitsRefused)
	t.Run("MetadataRoundTrip", s.metadataRoundTrip)
	t.Run("VersionOrder", s.versionOrder)
	t.Run("ListPaging", s.listPaging)
	t.Run("DescribeAndListReadNoValue", s.describeListNoValue)
	t.Run("NotFound", s.notFound)
	t.Run("Delete", s.deleteSemantics)
	t.Run("Unreachable", s.unreachable)
	t.Run("PermissionDenied", s.denied)
	t.Run("Throttled", s.throttled)
	// Last: everything logged during the runs above is scanned for the values they wrote.
	t.Run("NoValueInLogsOrErrors", s.noLeaks)
}

type suite struct {
	h   Harness
	st  store.Store
	run string

	mu     sync.Mutex
	names  []string
	values [][]byte // every value written, to scan logs for
	errs   []string // every error message seen
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// name returns a fresh secret name valid in every store.
func (s *suite) name(label string) string {
	// Never "-" + 6 characters at the end: AWS advises against that shape (partial ARNs).
	n := fmt.Sprintf("kfct-%s-%s-%s", s.run, label, randHex(4))
	s.mu.Lock()
	s.names = append(s.names, n)
	s.mu.Unlock()
	return n
}

// canary returns a text value that is easy to find in logs and unique to this run.
func (s *suite) canary(label string) string {
	v := "kfcanary-" + label + "-" + randHex(8)
	s.remember([]byte(v))
	return v
}

func (s *suite) remember(v []byte) {
	s.mu.Lock()
	s.values = append(s.values, append([]byte(nil), v...))
	s.mu.Unlock()
}

func (s *suite) sawErr(err error) {
	if err != nil {
		s.mu.Lock()
		s.errs = append(s.errs, err.Error())
		s.mu.Unlock()
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func (s *suite) put(t *testing.T, name string, v store.Value, opts store.PutOptions) store.Metadata {
	t.Helper()
	s.remember(v.Bytes())
	md, err := s.st.Put(ctx(t), name, v, opts)
	s.sawErr(err)
	if err != nil {
		t.Fatalf("Put(%q, %s): %v", name, v, err)
	}
	return md
}

func (s *suite) get(t *testing.T, name string) store.Secret {
	t.Helper()
	sec, err := s.st.Get(ctx(t), name)
	s.sawErr(err)
	if err != nil {
		t.Fatalf("Get(%q): %v", name, err)
	}
	return sec
}

// calls is the total number of calls that reached the wire (or storage) so far.
func (s *suite) calls() int64 {
	if s.h.Calls != nil {
		var n int64
		for _, v := range s.h.Calls() {
			n += v
		}
		return n
	}
	if s.h.Touched != nil {
		return s.h.Touched()
	}
	return -1
}

func (s *suite) countOf(apis []string) int64 {
	if s.h.Calls == nil {
		return 0
	}
	c := s.h.Calls()
	var n int64
	for _, a := range apis {
		n += c[a]
	}
	return n
}

func sameValue(t *testing.T, what string, got, want store.Value) {
	t.Helper()
	if got.IsBinary() != want.IsBinary() {
		t.Fatalf("%s: read back a %s value, wrote %s", what, got.Kind(), want.Kind())
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("%s: read back %d bytes that differ from the %d bytes written", what, got.Len(), want.Len())
	}
}

func (s *suite) textRoundTrip(t *testing.T) {
	cases := map[string]string{
		"ascii":     s.canary("ascii"),
		"unicode":   s.canary("unicode") + " — ünïcödé ✓ 秘密 🔑",
		"json":      `{"user":"app","password":"` + s.canary("json") + `","n":1}`,
		"multiline": s.canary("ml") + "\nline two\r\n\tindented\n",
		"spaces":    "  " + s.canary("sp") + "  ",
	}
	for label, text := range cases {
		t.Run(label, func(t *testing.T) {
			n := s.name("text")
			want := store.Text(text)
			md := s.put(t, n, want, store.PutOptions{})
			if md.Name != "" && !strings.EqualFold(md.Name, n) {
				t.Errorf("Put returned metadata for %q, want %q", md.Name, n)
			}
			got := s.get(t, n)
			sameValue(t, "text", got.Value, want)
			if got.Metadata.Binary {
				t.Errorf("metadata says binary for a text value")
			}
		})
	}
}

func (s *suite) binaryRoundTrip(t *testing.T) {
	marker := []byte(s.canary("bin"))
	cases := map[string][]byte{
		"invalid-utf8": append([]byte{0xff, 0xfe, 0xc3, 0x28, 0x00, 0x80}, marker...),
		"nul-bytes":    append([]byte{0, 0, 0}, marker...),
		"random":       randBytes(1024),
		// Binary that happens to be valid UTF-8 must still come back as binary.
		"utf8-looking": append([]byte("binary-but-text-"), marker...),
		// Text that looks like base64 must not be decoded by mistake on the way back.
		"base64-looking-text": nil,
	}
	for label, data := range cases {
		t.Run(label, func(t *testing.T) {
			var want store.Value
			if data == nil {
				want = store.Text(base64.StdEncoding.EncodeToString(marker))
			} else {
				want = store.Binary(data)
			}
			n := s.name("bin")
			if want.IsBinary() && s.st.Limits().Binary == store.BinaryUnsupported {
				before := s.calls()
				s.remember(want.Bytes())
				_, err := s.st.Put(ctx(t), n, want, store.PutOptions{})
				s.sawErr(err)
				if !errors.Is(err, store.ErrInvalidValue) {
					t.Fatalf("binary Put into a text-only store: got %v, want ErrInvalidValue", err)
				}
				if after := s.calls(); after != before {
					t.Fatalf("binary Put into a text-only store made %d calls before refusing", after-before)
				}
				return
			}
			s.put(t, n, want, store.PutOptions{})
			got := s.get(t, n)
			sameValue(t, label, got.Value, want)
		})
	}
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func (s *suite) largestValue(t *testing.T) {
	l := s.st.Limits()
	if l.MaxValueBytes <= 0 {
		t.Fatal("store declares no MaxValueBytes: every store has a limit")
	}
	t.Run("text", func(t *testing.T) {
		n := s.name("big")
		max := l.MaxRawBytes(false)
		head := s.canary("big")
		text := head + strings.Repeat("x", max-len(head))
		want := store.Text(text)
		s.put(t, n, want, store.PutOptions{})
		sameValue(t, "largest text", s.get(t, n).Value, want)
	})
	if l.Binary == store.BinaryUnsupported {
		return
	}
	t.Run("binary", func(t *testing.T) {
		n := s.name("bigbin")
		data := randBytes(l.MaxRawBytes(true))
		copy(data, []byte{0xff, 0xfe})
		want := store.Binary(data)
		s.put(t, n, want, store.PutOptions{})
		sameValue(t, "largest binary", s.get(t, n).Value, want)
	})
}

// limitsRefused checks that every declared limit is refused with the right typed error, naming the
// store, before any call goes out.
func (s *suite) limitsRefused(t *testing.T) {
	l := s.st.Limits()
	long := strings.Repeat("a", max(l.NameMaxLen, 1)+1)
	tooBig := strings.Repeat("y", l.MaxRawBytes(false)+1)
	manyTags := map[string]string{}
	if l.MaxTags > 0 {
		for i := 0; i <= l.MaxTags; i++ {
			manyTags[fmt.Sprintf("t%d", i)] = "v"
		}
	}
	type tc struct {
		label string
		name  string
		v     store.Value
		opts  store.PutOptions
		kind  error
	}
	cases := []tc{
		{"empty-name", "", store.Text("v"), store.PutOptions{}, store.ErrInvalidName},
		{"bad-characters", "bad name with spaces!", store.Text("v"), store.PutOptions{}, store.ErrInvalidName},
		{"too-large", s.name("toolarge"), store.Text(tooBig), store.PutOptions{}, store.ErrTooLarge},
		{"invalid-utf8-text", s.name("badtext"), store.Text("\xff\xfe"), store.PutOptions{}, store.ErrInvalidValue},
		{"reserved-tag", s.name("rtag"), store.Text("v"), store.PutOptions{Tags: map[string]string{"keyferry-source-store": "x"}}, store.ErrInvalidTags},
	}
	if l.NameMaxLen > 0 {
		cases = append(cases, tc{"name-too-long", long, store.Text("v"), store.PutOptions{}, store.ErrInvalidName})
	}
	if l.MaxTags > 0 {
		cases = append(cases, tc{"too-many-tags", s.name("tags"), store.Text("v"), store.PutOptions{Tags: manyTags}, store.ErrInvalidTags})
	}
	if l.TagKeyMaxLen > 0 {
		cases = append(cases, tc{"tag-key-too-long", s.name("tkey"), store.Text("v"),
			store.PutOptions{Tags: map[string]string{strings.Repeat("k", l.TagKeyMaxLen+1): "v"}}, store.ErrInvalidTags})
	}
	if l.TagValueMaxLen > 0 {
		cases = append(cases, tc{"tag-value-too-long", s.name("tval"), store.Text("v"),
			store.PutOptions{Tags: map[string]string{"k": strings.Repeat("v", l.TagValueMaxLen+1)}}, store.ErrInvalidTags})
	}
	if l.Binary == store.BinaryBase64 {
		// The limit counts the encoded size: a binary value whose base64 form is one byte too many.
		raw := l.MaxRawBytes(true) + 3
		cases = append(cases, tc{"binary-too-large-once-encoded", s.name("bbig"), store.Binary(randBytes(raw)), store.PutOptions{}, store.ErrTooLarge})
	}
	for _, c := range cases {
		t.Run(c.label, func(t *testing.T) {
			before := s.calls()
			s.remember(c.v.Bytes())
			_, err := s.st.Put(ctx(t), c.name, c.v, c.opts)
			s.sawErr(err)
			if !errors.Is(err, c.kind) {
				t.Fatalf("Put: got %v, want %v", err, c.kind)
			}
			var se *store.Error
			if !errors.As(err, &se) || se.Store != s.st.Name() {
				t.Fatalf("error %v does not name the store %q", err, s.st.Name())
			}
			if after := s.calls(); after != before {
				t.Fatalf("refused Put made %d calls before refusing", after-before)
			}
		})
	}
	t.Run("bad-name-on-read", func(t *testing.T) {
		before := s.calls()
		for _, op := range []func() error{
			func() error { _, err := s.st.Get(ctx(t), "bad name with spaces!"); return err },
			func() error { _, err := s.st.Describe(ctx(t), "bad name with spaces!"); return err },
			func() error { return s.st.Delete(ctx(t), "bad name with spaces!", store.DeleteOptions{}) },
		} {
			err := op()
			s.sawErr(err)
			if !errors.Is(err, store.ErrInvalidName) {
				t.Fatalf("got %v, want ErrInvalidName", err)
			}
		}
		if after := s.calls(); after != before {
			t.Fatalf("refused reads made %d calls", after-before)
		}
	})
}

func (s *suite) metadataRoundTrip(t *testing.T) {
	n := s.name("meta")
	tags := map[string]string{"team": "payments", "env": "prod"}
	prov := &store.Provenance{SourceStore: "aws-prod", SourceName: "prod/db/password", SourceVersion: "v-17",
		ReplicaVersion: "", Written: time.Date(2026, 11, 2, 10, 4, 5, 0, time.UTC)}
	s.put(t, n, store.Text(s.canary("meta")), store.PutOptions{Tags: tags, Provenance: prov})

	check := func(t *testing.T, op string, md store.Metadata) {
		t.Helper()
		for k, v := range tags {
			if md.Tags[k] != v {
				t.Errorf("%s: tag %q = %q, want %q (all: %v)", op, k, md.Tags[k], v, md.Tags)
			}
		}
		for k := range md.Tags {
			if strings.HasPrefix(k, store.ProvenancePrefix) {
				t.Errorf("%s: provenance entry %q leaked into user tags", op, k)
			}
		}
		if md.Provenance == nil {
			t.Fatalf("%s: provenance lost", op)
		}
		p := *md.Provenance
		if p.SourceStore != prov.SourceStore || p.SourceName != prov.SourceName || p.SourceVersion != prov.SourceVersion ||
			!p.Written.Equal(prov.Written) {
			t.Errorf("%s: provenance %+v, want %+v", op, p, *prov)
		}
		if md.Version == "" {
			t.Errorf("%s: no version", op)
		}
	}
	md, err := s.st.Describe(ctx(t), n)
	s.sawErr(err)
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	check(t, "Describe", md)
	check(t, "Get", s.get(t, n).Metadata)

	if mu, ok := s.st.(store.MetadataUpdater); ok {
		t.Run("UpdateMetadata", func(t *testing.T) {
			p2 := *prov
			p2.ReplicaVersion = md.Version
			newTags := map[string]string{"team": "payments", "tier": "gold"}
			if err := mu.UpdateMetadata(ctx(t), n, newTags, &p2); err != nil {
				s.sawErr(err)
				t.Fatalf("UpdateMetadata: %v", err)
			}
			md2, err := s.st.Describe(ctx(t), n)
			if err != nil {
				t.Fatalf("Describe: %v", err)
			}
			if md2.Tags["tier"] != "gold" || md2.Tags["team"] != "payments" {
				t.Errorf("tags after update: %v", md2.Tags)
			}
			if _, ok := md2.Tags["env"]; ok {
				t.Errorf("removed tag env still present: %v", md2.Tags)
			}
			if md2.Provenance == nil || md2.Provenance.ReplicaVersion != md.Version {
				t.Errorf("replica version after update: %+v, want %q", md2.Provenance, md.Version)
			}
			if md2.Version != md.Version {
				t.Errorf("UpdateMetadata changed the current version from %q to %q", md.Version, md2.Version)
			}
		})
	}
}

func (s *suite) versionOrder(t *testing.T) {
	n := s.name("ver")
	vals := []store.Value{store.Text(s.canary("v1")), store.Text(s.canary("v2")), store.Text(s.canary("v3"))}
	var mds []store.Metadata
	for _, v := range vals {
		mds = append(mds, s.put(t, n, v, store.PutOptions{}))
	}
	got := s.get(t, n)
	sameValue(t, "current after three puts", got.Value, vals[2])
	seen := map[string]bool{}
	for i, md := range mds {
		if md.Version == "" {
			t.Fatalf("put %d returned no version", i+1)
		}
		if seen[md.Version] {
			t.Fatalf("put %d returned version %q again", i+1, md.Version)
		}
		seen[md.Version] = true
	}
	if got.Metadata.Version != mds[2].Version {
		t.Errorf("current version %q, the last put returned %q", got.Metadata.Version, mds[2].Version)
	}
	vs, ok := s.st.(store.Versioned)
	if !ok {
		return
	}
	var order []string
	for vi, err := range vs.Versions(ctx(t), n) {
		s.sawErr(err)
		if err != nil {
			t.Fatalf("Versions: %v", err)
		}
		order = append(order, vi.Version)
	}
	want := []string{mds[2].Version, mds[1].Version, mds[0].Version}
	if len(order) < 3 || !slices.Equal(order[:3], want) {
		t.Fatalf("Versions order %v, want newest first %v", order, want)
	}
	old, err := vs.GetVersion(ctx(t), n, mds[0].Version)
	s.sawErr(err)
	if err != nil {
		t.Fatalf("GetVersion(first): %v", err)
	}
	sameValue(t, "first version", old.Value, vals[0])
}

func (s *suite) listPaging(t *testing.T) {
	const pageSize = 3
	prefix := fmt.Sprintf("kfct-%s-list-%s-", s.run, randHex(2))
	want := map[string]bool{}
	for i := 0; i < 2*pageSize+1; i++ {
		n := fmt.Sprintf("%s%02d", prefix, i)
		s.mu.Lock()
		s.names = append(s.names, n)
		s.mu.Unlock()
		tags := map[string]string{"batch": "list"}
		if i%2 == 0 {
			tags["parity"] = "even"
		}
		s.put(t, n, store.Text(s.canary("list")), store.PutOptions{Tags: tags})
		want[n] = true
	}
	before := s.countOf(s.h.ListAPIs)
	got := s.collect(t, store.ListOptions{Prefix: prefix, PageSize: pageSize})
	if !maps(got, want) {
		t.Fatalf("List(prefix) = %v, want %v", keys(got), keys(want))
	}
	if pages := s.countOf(s.h.ListAPIs) - before; s.h.ServerPaging && pages < 2 {
		t.Errorf("a listing of %d with page size %d took %d list calls, want more than one page", len(want), pageSize, pages)
	}
	even := s.collect(t, store.ListOptions{Prefix: prefix, Tags: map[string]string{"parity": "even"}, PageSize: pageSize})
	if len(even) != pageSize+1 {
		t.Fatalf("List(tags parity=even) = %v, want %d names", keys(even), pageSize+1)
	}
	for n := range even {
		if !want[n] {
			t.Fatalf("List(tags) yielded %q outside the prefix", n)
		}
	}
	t.Run("early-stop", func(t *testing.T) {
		i := 0
		for _, err := range s.st.List(ctx(t), store.ListOptions{Prefix: prefix, PageSize: pageSize}) {
			if err != nil {
				t.Fatal(err)
			}
			if i++; i == 2 {
				break
			}
		}
	})
}

func (s *suite) collect(t *testing.T, opts store.ListOptions) map[string]store.Metadata {
	t.Helper()
	out := map[string]store.Metadata{}
	for md, err := range s.st.List(ctx(t), opts) {
		s.sawErr(err)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if _, dup := out[md.Name]; dup {
			t.Fatalf("List yielded %q twice", md.Name)
		}
		out[md.Name] = md
	}
	return out
}

func maps(got map[string]store.Metadata, want map[string]bool) bool {
	if len(got) != len(want) {
		return false
	}
	for n := range got {
		if !want[n] {
			return false
		}
	}
	return true
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (s *suite) describeListNoValue(t *testing.T) {
	if s.h.Calls == nil {
		t.Log("no wire: the file store's Describe/List are checked in its own tests")
		return
	}
	if len(s.h.ValueReadAPIs) == 0 {
		t.Fatal("Harness.ValueReadAPIs is empty: name the APIs that return a value")
	}
	prefix := fmt.Sprintf("kfct-%s-nv-%s-", s.run, randHex(2))
	var names []string
	for i := 0; i < 3; i++ {
		n := fmt.Sprintf("%s%03d", prefix, i)
		names = append(names, n)
		s.mu.Lock()
		s.names = append(s.names, n)
		s.mu.Unlock()
		s.put(t, n, store.Text(s.canary("nv")), store.PutOptions{Tags: map[string]string{"k": "v"}})
	}
	before := s.countOf(s.h.ValueReadAPIs)
	for _, n := range names {
		if _, err := s.st.Describe(ctx(t), n); err != nil {
			s.sawErr(err)
			t.Fatalf("Describe: %v", err)
		}
	}
	if got := s.collect(t, store.ListOptions{Prefix: prefix}); len(got) != len(names) {
		t.Fatalf("List = %v, want %v", keys(got), names)
	}
	if reads := s.countOf(s.h.ValueReadAPIs) - before; reads != 0 {
		t.Fatalf("Describe and List made %d value reads (%v)", reads, s.h.ValueReadAPIs)
	}
	// The counters must be able to fail: a Get does count as a value read.
	if _, err := s.st.Get(ctx(t), names[0]); err != nil {
		t.Fatal(err)
	}
	if reads := s.countOf(s.h.ValueReadAPIs) - before; reads == 0 {
		t.Fatalf("Get was not counted as a value read: ValueReadAPIs %v are wrong", s.h.ValueReadAPIs)
	}
}

func (s *suite) notFound(t *testing.T) {
	n := s.name("missing")
	for op, f := range map[string]func() error{
		"Get":      func() error { _, err := s.st.Get(ctx(t), n); return err },
		"Describe": func() error { _, err := s.st.Describe(ctx(t), n); return err },
		"Delete":   func() error { return s.st.Delete(ctx(t), n, store.DeleteOptions{}) },
	} {
		err := f()
		s.sawErr(err)
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s of a missing secret: got %v, want ErrNotFound", op, err)
		}
		if err != nil && !strings.Contains(err.Error(), n) {
			t.Errorf("%s error %q does not name the secret", op, err)
		}
	}
	if vs, ok := s.st.(store.Versioned); ok {
		m := s.name("missingver")
		s.put(t, m, store.Text(s.canary("mv")), store.PutOptions{})
		_, err := vs.GetVersion(ctx(t), m, "99999")
		s.sawErr(err)
		if !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrInvalidValue) {
			t.Errorf("GetVersion of a missing version: got %v, want ErrNotFound", err)
		}
	}
}

func gone(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrSoftDeleted)
}

func (s *suite) deleteSemantics(t *testing.T) {
	t.Run("soft", func(t *testing.T) {
		n := s.name("del")
		want := store.Text(s.canary("del"))
		s.put(t, n, want, store.PutOptions{})
		if err := s.st.Delete(ctx(t), n, store.DeleteOptions{}); err != nil {
			s.sawErr(err)
			t.Fatalf("Delete: %v", err)
		}
		_, err := s.st.Get(ctx(t), n)
		s.sawErr(err)
		if !gone(err) {
			t.Fatalf("Get after Delete: got %v, want ErrNotFound or ErrSoftDeleted", err)
		}
		_, err = s.st.Describe(ctx(t), n)
		s.sawErr(err)
		if !gone(err) {
			t.Fatalf("Describe after Delete: got %v, want ErrNotFound or ErrSoftDeleted", err)
		}
		for md, err := range s.st.List(ctx(t), store.ListOptions{Prefix: n}) {
			if err == nil && md.Name == n {
				t.Fatalf("List still yields deleted %q", n)
			}
		}
		rc, recoverable := s.st.(store.Recoverable)
		if s.h.SoftDelete != recoverable {
			t.Fatalf("Harness.SoftDelete=%v but the store implements Recoverable=%v", s.h.SoftDelete, recoverable)
		}
		if !s.h.SoftDelete {
			s.put(t, n, store.Text(s.canary("reuse")), store.PutOptions{})
			return
		}
		if s.h.DeleteBlocksName {
			_, err := s.st.Put(ctx(t), n, store.Text("x"), store.PutOptions{})
			s.sawErr(err)
			if !errors.Is(err, store.ErrSoftDeleted) {
				t.Fatalf("Put to a soft-deleted name: got %v, want ErrSoftDeleted", err)
			}
		}
		if err := rc.Recover(ctx(t), n); err != nil {
			s.sawErr(err)
			t.Fatalf("Recover: %v", err)
		}
		sameValue(t, "after Recover", s.get(t, n).Value, want)
		if err := s.st.Delete(ctx(t), n, store.DeleteOptions{}); err != nil {
			t.Fatalf("Delete again: %v", err)
		}
		if err := rc.Purge(ctx(t), n); err != nil {
			s.sawErr(err)
			t.Fatalf("Purge: %v", err)
		}
		_, err = s.st.Get(ctx(t), n)
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get after Purge: got %v, want ErrNotFound", err)
		}
		s.put(t, n, store.Text(s.canary("afterpurge")), store.PutOptions{})
	})
	t.Run("force", func(t *testing.T) {
		n := s.name("force")
		s.put(t, n, store.Text(s.canary("force")), store.PutOptions{})
		if err := s.st.Delete(ctx(t), n, store.DeleteOptions{Force: true}); err != nil {
			s.sawErr(err)
			t.Fatalf("Delete(force): %v", err)
		}
		_, err := s.st.Get(ctx(t), n)
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get after forced Delete: got %v, want ErrNotFound", err)
		}
		want := store.Text(s.canary("reborn"))
		s.put(t, n, want, store.PutOptions{})
		sameValue(t, "re-created after forced delete", s.get(t, n).Value, want)
	})
}

func (s *suite) unreachable(t *testing.T) {
	if s.h.Unreachable == nil {
		if s.h.Calls == nil {
			return // no wire
		}
		t.Fatal("Harness.Unreachable is nil: every networked store must show ErrUnavailable")
	}
	st := s.h.Unreachable()
	n := s.name("unreach")
	_, err := st.Describe(ctx(t), n)
	s.sawErr(err)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Describe against an unreachable store: got %v, want ErrUnavailable", err)
	}
	if !store.IsRetryable(err) {
		t.Fatalf("ErrUnavailable is not reported retryable")
	}
}

func (s *suite) denied(t *testing.T) {
	if s.h.Denied == nil {
		return
	}
	st := s.h.Denied()
	_, err := st.Describe(ctx(t), s.name("denied"))
	s.sawErr(err)
	if !errors.Is(err, store.ErrPermissionDenied) {
		t.Fatalf("Describe with refused credentials: got %v, want ErrPermissionDenied", err)
	}
}

func (s *suite) throttled(t *testing.T) {
	if s.h.Throttle == nil {
		return
	}
	n := s.name("throttle")
	s.h.Throttle(true)
	_, err := s.st.Describe(ctx(t), n)
	s.h.Throttle(false)
	s.sawErr(err)
	if !errors.Is(err, store.ErrThrottled) {
		t.Fatalf("Describe while every call is throttled: got %v, want ErrThrottled", err)
	}
	if !store.IsRetryable(err) {
		t.Fatalf("ErrThrottled is not reported retryable")
	}
}

// noLeaks scans every log line and error message of the runs above for every value written.
func (s *suite) noLeaks(t *testing.T) {
	var logs string
	if s.h.Logs != nil {
		logs = s.h.Logs()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	haystacks := map[string]string{"logs": logs, "errors": strings.Join(s.errs, "\n")}
	if len(s.errs) == 0 {
		t.Fatal("no errors were recorded: the suite's own error capture is broken")
	}
	var needles []string
	for _, v := range s.values {
		if len(v) < 12 {
			continue // short fixed values ("v", "x") would match anything
		}
		needles = append(needles, string(v))
		if len(v) > 64 {
			needles = append(needles, string(v[:32]), string(v[len(v)-32:]))
		}
		b64 := base64.StdEncoding.EncodeToString(v)
		needles = append(needles, b64[:min(len(b64), 32)])
		needles = append(needles, hex.EncodeToString(v)[:min(2*len(v), 32)])
	}
	// Every canary, wherever it sits in a value, is searched for on its own too.
	for _, v := range s.values {
		for _, f := range strings.Fields(string(v)) {
			if i := strings.Index(f, "kfcanary-"); i >= 0 {
				needles = append(needles, strings.Trim(f[i:], `"{},`))
			}
		}
	}
	hits := 0
	for where, hay := range haystacks {
		for _, nd := range needles {
			if nd != "" && strings.Contains(hay, nd) {
				hits++
				t.Errorf("a test value (%d bytes) appears in the %s", len(nd), where)
			}
		}
	}
	t.Logf("scanned %d bytes of logs and %d error messages for %d needles: %d hits", len(logs), len(s.errs), len(needles), hits)
}
