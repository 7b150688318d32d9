package vaultkv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/keyferry/keyferry/core/store"
	"github.com/keyferry/keyferry/core/store/storetest"
	"github.com/keyferry/keyferry/localtest/fault"
	"github.com/keyferry/keyferry/localtest/vault"
)

// One Vault dev server serves every test of the package; TestMain stops it.
var (
	devOnce sync.Once
	dev     *vault.Server
	devErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if dev != nil {
		if err := dev.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	os.Exit(code)
}

// devServer starts the shared dev server on first use. A missing binary fails the test (it never skips):
// the error names `make vault`.
func devServer(t *testing.T) *vault.Server {
	t.Helper()
	devOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		dev, devErr = vault.Start(ctx, vault.Options{})
	})
	if devErr != nil {
		t.Fatal(devErr)
	}
	return dev
}

// fastRetry keeps tests quick; throttles still wait for Retry-After.
var fastRetry = Retry{MaxRetries: 2, MinWait: 10 * time.Millisecond, MaxWait: 50 * time.Millisecond}

func newTestStore(t *testing.T, name, addr, token string, retry Retry) *Store {
	t.Helper()
	st, err := New(Options{Name: name, Config: ClientConfig{Address: addr, Auth: StaticToken(token), Retry: retry, Timeout: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// behindFault puts the fault layer in front of the dev server.
func behindFault(t *testing.T, seed uint64) (*fault.Layer, *fault.Proxy) {
	t.Helper()
	srv := devServer(t)
	layer := fault.New(1, seed)
	p, err := layer.Proxy(fault.Vault, srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return layer, p
}

func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + l.Addr().String()
	_ = l.Close()
	return addr
}

func TestContract(t *testing.T) {
	srv := devServer(t)
	layer, p := behindFault(t, 1)
	st := newTestStore(t, "vault-contract", p.URL, srv.RootToken, fastRetry)
	storetest.Run(t, storetest.Harness{
		Store:            st,
		Calls:            layer.Calls,
		ValueReadAPIs:    []string{"vault:kv-read"},
		ListAPIs:         []string{"vault:kv-list"},
		ServerPaging:     false,
		SoftDelete:       true,
		DeleteBlocksName: false,
		Logs:             srv.Logs,
		Unreachable: func() store.Store {
			return newTestStore(t, "vault-contract", closedAddr(t), srv.RootToken, Retry{MaxRetries: -1})
		},
		Denied: func() store.Store {
			return newTestStore(t, "vault-contract", p.URL, "hvs.not-a-real-token", fastRetry)
		},
		Throttle: func(on bool) {
			if on {
				layer.SetRules(fault.Rule{API: "vault:*", Throttle: 1})
			} else {
				layer.SetRules()
			}
		},
		Cleanup: func(ctx context.Context, names []string) {
			for _, n := range names {
				_ = st.Delete(ctx, n, store.DeleteOptions{Force: true})
			}
		},
	})
}

// TestPutsRideOutThrottling: with a fifth of all calls throttled (429 + Retry-After), 500 puts complete
// without a failure, and the counters show every throttle was retried exactly once more.
func TestPutsRideOutThrottling(t *testing.T) {
	srv := devServer(t)
	layer, p := behindFault(t, 20)
	st := newTestStore(t, "vault-throttle", p.URL, srv.RootToken,
		Retry{MaxRetries: 10, MinWait: 10 * time.Millisecond, MaxWait: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := st.client(ctx); err != nil { // build the client before counting
		t.Fatal(err)
	}
	layer.ResetCounters()
	layer.SetRules(fault.Rule{API: "vault:*", Throttle: 0.2})

	const puts, secrets, workers = 500, 50, 25
	run := fmt.Sprintf("kfthrottle-%d", time.Now().UnixNano())
	jobs := make(chan int)
	var failures atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				name := fmt.Sprintf("%s/s%02d", run, i%secrets)
				if _, err := st.Put(ctx, name, store.Text(fmt.Sprintf("value %d", i)), store.PutOptions{}); err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	for i := 0; i < puts; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	layer.SetRules()

	calls, injected := layer.Count("vault:kv-write"), layer.InjectedCount("vault:kv-write")
	t.Logf("%d puts: %d kv-write calls, %d throttled and retried, %d failures", puts, calls, injected, failures.Load())
	if n := failures.Load(); n != 0 {
		t.Fatalf("%d of %d puts failed; first: %v", n, puts, firstErr.Load())
	}
	if injected == 0 {
		t.Fatal("the fault layer injected no throttles: the test proves nothing")
	}
	if calls != puts+injected {
		t.Fatalf("kv-write calls = %d, want puts + retries = %d + %d", calls, puts, injected)
	}
	// Throttled calls never reached Vault, so every secret holds exactly its share of versions.
	for i := 0; i < secrets; i++ {
		name := fmt.Sprintf("%s/s%02d", run, i)
		md, err := st.Describe(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprint(puts / secrets); md.Version != want {
			t.Errorf("%s: version %s, want %s", name, md.Version, want)
		}
		_ = st.Delete(ctx, name, store.DeleteOptions{Force: true})
	}
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func uniq(label string) string { return fmt.Sprintf("kftest-%s-%d", label, time.Now().UnixNano()) }

// TestForeignDataReadsAsJSON: a secret written by another tool with fields of its own reads back as the
// JSON object of its data; a keyferry write replaces the whole map (the old version keeps its fields).
func TestForeignDataReadsAsJSON(t *testing.T) {
	srv := devServer(t)
	ctx := testCtx(t)
	st := newTestStore(t, "vault", srv.Addr, srv.RootToken, fastRetry)
	c, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	name := uniq("foreign")
	if _, err := c.KVv2("secret").Put(ctx, name, map[string]any{"user": "app", "password": "p<&>w", "port": 5432}); err != nil {
		t.Fatal(err)
	}
	got, err := st.Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"password":"p<&>w","port":5432,"user":"app"}`; string(got.Value.Bytes()) != want || got.Value.IsBinary() ||
		got.Metadata.ContentType != ContentTypeJSON {
		t.Fatalf("foreign secret read as %s %q (%q), want text %q (%s)", got.Value.Kind(), got.Value.Bytes(),
			got.Metadata.ContentType, want, ContentTypeJSON)
	}
	if _, err := st.Put(ctx, name, store.Text("replaced"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	raw, err := c.KVv2("secret").Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw.Data) != 1 || raw.Data["value"] != "replaced" {
		t.Fatalf("after a keyferry write the data map is %v, want only value", raw.Data)
	}
	old, err := st.GetVersion(ctx, name, "1")
	if err != nil || old.Metadata.ContentType != ContentTypeJSON {
		t.Fatalf("version 1 after the write: %v (%q)", err, old.Metadata.ContentType)
	}
}

func TestPutIf(t *testing.T) {
	srv := devServer(t)
	ctx := testCtx(t)
	st := newTestStore(t, "vault", srv.Addr, srv.RootToken, fastRetry)
	name := uniq("cas")
	md, err := st.PutIf(ctx, name, store.Text("first value"), store.PutOptions{}, "")
	if err != nil || md.Version != "1" {
		t.Fatalf("PutIf(absent) = %+v, %v", md, err)
	}
	if _, err := st.PutIf(ctx, name, store.Text("second value"), store.PutOptions{}, ""); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("PutIf(absent) on an existing secret: got %v, want ErrConflict", err)
	}
	md, err = st.PutIf(ctx, name, store.Text("second value"), store.PutOptions{}, "1")
	if err != nil || md.Version != "2" {
		t.Fatalf("PutIf(1) = %+v, %v", md, err)
	}
	for _, stale := range []string{"1", "3", "x"} {
		if _, err := st.PutIf(ctx, name, store.Text("third value"), store.PutOptions{}, stale); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("PutIf(%q) with current version 2: got %v, want ErrConflict", stale, err)
		}
	}
	got, err := st.Get(ctx, name)
	if err != nil || string(got.Value.Bytes()) != "second value" || got.Metadata.Version != "2" {
		t.Fatalf("after refused writes: %s %v", got.Metadata.Version, err)
	}
}

func TestTagsAndProvenanceAcrossPuts(t *testing.T) {
	srv := devServer(t)
	ctx := testCtx(t)
	st := newTestStore(t, "vault", srv.Addr, srv.RootToken, fastRetry)
	name := uniq("prov")
	prov := &store.Provenance{SourceStore: "aws-prod", SourceName: "prod/db", SourceVersion: "v-1",
		Written: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	md, err := st.Put(ctx, name, store.Text("v1 value"), store.PutOptions{Tags: map[string]string{"team": "pay"}, Provenance: prov})
	if err != nil {
		t.Fatal(err)
	}
	if md.Provenance == nil || md.Provenance.ReplicaVersion != "1" || md.Tags["team"] != "pay" {
		t.Fatalf("Put returned %+v / %+v, want the replica version filled in", md, md.Provenance)
	}
	if prov.ReplicaVersion != "" {
		t.Fatal("Put modified the caller's provenance")
	}
	// A Put with neither tags nor provenance leaves custom_metadata alone: the record now names
	// version 1 while the current version is 2, which shows someone else wrote it.
	if _, err := st.Put(ctx, name, store.Text("v2 value"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	d, err := st.Describe(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if d.Version != "2" || d.Tags["team"] != "pay" || d.Provenance == nil || d.Provenance.ReplicaVersion != "1" {
		t.Fatalf("after an untagged Put: %+v / %+v", d, d.Provenance)
	}
	// Empty (non-nil) tags and no provenance clear keyferry's record and keep the user's tags (removing
	// a user tag is UpdateMetadata's job).
	if _, err := st.Put(ctx, name, store.Text("v3 value"), store.PutOptions{Tags: map[string]string{}}); err != nil {
		t.Fatal(err)
	}
	d, err = st.Describe(ctx, name)
	if err != nil || d.Tags["team"] != "pay" || len(d.Tags) != 1 || d.Provenance != nil {
		t.Fatalf("after a Put with empty tags: %+v %v", d, err)
	}
	// Vault's custom_metadata rules are enforced before any call, also for the provenance record.
	long := &store.Provenance{SourceStore: "s", SourceName: strings.Repeat("n", 513)}
	if _, err := st.Put(ctx, name, store.Text("v4 value"), store.PutOptions{Provenance: long}); !errors.Is(err, store.ErrInvalidTags) {
		t.Fatalf("Put with a 513-byte provenance value: got %v, want ErrInvalidTags", err)
	}
	if d, _ := st.Describe(ctx, name); d.Version != "3" {
		t.Fatalf("a refused Put wrote version %s", d.Version)
	}
}

func TestSoftDeleteDetails(t *testing.T) {
	srv := devServer(t)
	ctx := testCtx(t)
	st := newTestStore(t, "vault", srv.Addr, srv.RootToken, fastRetry)
	name := uniq("soft")
	if _, err := st.Put(ctx, name, store.Text("one value"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx, name); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Purge of a live secret: got %v, want ErrConflict", err)
	}
	if err := st.Recover(ctx, name); err != nil {
		t.Fatalf("Recover of a live secret: %v", err)
	}
	for i := 0; i < 2; i++ { // the second Delete is a no-op
		if err := st.Delete(ctx, name, store.DeleteOptions{}); err != nil {
			t.Fatalf("Delete #%d: %v", i+1, err)
		}
	}
	if _, err := st.Get(ctx, name); !errors.Is(err, store.ErrSoftDeleted) {
		t.Fatalf("Get after Delete: got %v, want ErrSoftDeleted", err)
	}
	if _, err := st.GetVersion(ctx, name, "1"); !errors.Is(err, store.ErrSoftDeleted) {
		t.Fatalf("GetVersion(1) after Delete: got %v, want ErrSoftDeleted", err)
	}
	// The name is not blocked: a Put writes version 2 and the deleted version 1 stays listed, disabled.
	if md, err := st.Put(ctx, name, store.Text("two value"), store.PutOptions{}); err != nil || md.Version != "2" {
		t.Fatalf("Put after Delete: %+v %v", md, err)
	}
	var infos []store.VersionInfo
	for vi, err := range st.Versions(ctx, name) {
		if err != nil {
			t.Fatal(err)
		}
		infos = append(infos, vi)
	}
	if len(infos) != 2 || infos[0].Version != "2" || !infos[0].Enabled || infos[1].Version != "1" || infos[1].Enabled {
		t.Fatalf("Versions = %+v, want 2 (enabled), 1 (disabled)", infos)
	}
	if err := st.Delete(ctx, name, store.DeleteOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, name, store.DeleteOptions{Force: true}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("forced Delete of a missing secret: got %v, want ErrNotFound", err)
	}
	for range st.Versions(ctx, name) {
		break
	}
	if err := st.Recover(ctx, name); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Recover of a missing secret: got %v, want ErrNotFound", err)
	}
}

func TestListWalksTheTree(t *testing.T) {
	srv := devServer(t)
	layer, p := behindFault(t, 3)
	ctx := testCtx(t)
	st := newTestStore(t, "vault", p.URL, srv.RootToken, fastRetry)
	root := uniq("list")
	names := []string{"a/x", "a/b/y", "a/b/c/z", "ab/w", "c", "a.txt"}
	for i, n := range names {
		tags := map[string]string{"i": fmt.Sprint(i)}
		if i%2 == 0 {
			tags["even"] = "yes"
		}
		if _, err := st.Put(ctx, root+"/"+n, store.Text("list value"), store.PutOptions{Tags: tags}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Delete(ctx, root+"/a/b/c/z", store.DeleteOptions{}); err != nil { // soft-deleted: not listed
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, n := range names {
			_ = st.Delete(context.Background(), root+"/"+n, store.DeleteOptions{Force: true})
		}
	})
	list := func(opts store.ListOptions) []string {
		t.Helper()
		var out []string
		for md, err := range st.List(ctx, opts) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, strings.TrimPrefix(md.Name, root+"/"))
		}
		return out
	}
	before := layer.Count("vault:kv-read")
	cases := []struct {
		opts store.ListOptions
		want string
	}{
		{store.ListOptions{Prefix: root + "/"}, "a.txt c a/x a/b/y ab/w"},
		{store.ListOptions{Prefix: root + "/a"}, "a.txt a/x a/b/y ab/w"},
		{store.ListOptions{Prefix: root + "/a/"}, "a/x a/b/y"},
		{store.ListOptions{Prefix: root + "/a/b", PageSize: 1}, "a/b/y"},
		{store.ListOptions{Prefix: root + "/", Tags: map[string]string{"even": "yes"}}, "c a/x"},
		{store.ListOptions{Prefix: root + "/nothing/"}, ""},
	}
	for _, c := range cases {
		if got := strings.Join(list(c.opts), " "); got != c.want {
			t.Errorf("List(%q, tags %v) = %q, want %q", strings.TrimPrefix(c.opts.Prefix, root), c.opts.Tags, got, c.want)
		}
	}
	if n := layer.Count("vault:kv-read") - before; n != 0 {
		t.Fatalf("List read %d values", n)
	}
	for _, err := range st.List(ctx, store.ListOptions{Prefix: "../x"}) {
		if !errors.Is(err, store.ErrInvalidName) {
			t.Fatalf("List with a prefix leaving the mount: got %v, want ErrInvalidName", err)
		}
	}
}

func TestOtherMounts(t *testing.T) {
	srv := devServer(t)
	ctx := testCtx(t)
	mount := fmt.Sprintf("kv2-%d", time.Now().UnixNano())
	if err := srv.EnableKV(ctx, mount); err != nil {
		t.Fatal(err)
	}
	st, err := New(Options{Name: "vault", Mount: mount + "/", Config: ClientConfig{Address: srv.Addr, Auth: StaticToken(srv.RootToken), Retry: fastRetry}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, "app/db", store.Binary([]byte{0xff, 1}), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, err := st.Get(ctx, "app/db"); err != nil || !got.Value.Equal(store.Binary([]byte{0xff, 1})) {
		t.Fatalf("Get from %s: %v", mount, err)
	}

	// A KV version 1 mount is refused before anything is written to it.
	c, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	v1 := "kv1-" + mount
	if err := c.Sys().MountWithContext(ctx, v1, &api.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}); err != nil {
		t.Fatal(err)
	}
	st1, err := New(Options{Name: "vault", Mount: v1, Config: ClientConfig{Address: srv.Addr, Auth: StaticToken(srv.RootToken), Retry: fastRetry}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st1.Put(ctx, "app/db", store.Text("v"), store.PutOptions{}); !errors.Is(err, store.ErrUnsupported) {
		t.Fatalf("Put into a KV v1 mount: got %v, want ErrUnsupported", err)
	}
	keys, err := c.Logical().ListWithContext(ctx, v1)
	if err != nil || keys != nil {
		t.Fatalf("the KV v1 mount holds %v (%v), want nothing", keys, err)
	}
}

// TestVaultRateLimitQuota: Vault's own rate-limit quota (429 with Retry-After) is ridden out by the
// client's retries.
func TestVaultRateLimitQuota(t *testing.T) {
	srv := devServer(t)
	layer, p := behindFault(t, 4)
	ctx := testCtx(t)
	c, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	mount := fmt.Sprintf("kvq-%d", time.Now().UnixNano())
	if err := srv.EnableKV(ctx, mount); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Logical().WriteWithContext(ctx, "sys/quotas/config", map[string]any{"enable_rate_limit_response_headers": true}); err != nil {
		t.Fatal(err)
	}
	quota := "sys/quotas/rate-limit/" + mount
	if _, err := c.Logical().WriteWithContext(ctx, quota, map[string]any{"path": mount + "/", "rate": 2, "interval": "1s"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = c.Logical().DeleteWithContext(context.Background(), quota) })

	st, err := New(Options{Name: "vault", Mount: mount, Config: ClientConfig{Address: p.URL, Auth: StaticToken(srv.RootToken),
		Retry: Retry{MaxRetries: 10, MinWait: 10 * time.Millisecond, MaxWait: 50 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	const puts = 8
	errs := make(chan error, puts)
	for i := 0; i < puts; i++ {
		go func() {
			_, err := st.Put(ctx, fmt.Sprintf("q%d", i), store.Text("quota value"), store.PutOptions{})
			errs <- err
		}()
	}
	for i := 0; i < puts; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("Put under Vault's quota: %v", err)
		}
	}
	if n := layer.Count("vault:kv-write"); n <= puts {
		t.Fatalf("%d kv-write calls for %d puts at 2/s: Vault's quota never throttled, the test proves nothing", n, puts)
	} else {
		t.Logf("%d puts under a 2/s quota took %d kv-write calls", puts, n)
	}

	// Without retries, the quota's 429 is ErrThrottled with Vault's Retry-After.
	st0, err := New(Options{Name: "vault", Mount: mount, Config: ClientConfig{Address: srv.Addr, Auth: StaticToken(srv.RootToken), Retry: Retry{MaxRetries: -1}}})
	if err != nil {
		t.Fatal(err)
	}
	var throttled error
	for i := 0; i < 10 && throttled == nil; i++ {
		if _, err := st0.Describe(ctx, "q0"); errors.Is(err, store.ErrThrottled) {
			throttled = err
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if throttled == nil {
		t.Fatal("10 quick reads under a 2/s quota were never throttled")
	}
	if ra, ok := store.RetryAfterOf(throttled); !ok || ra <= 0 {
		t.Fatalf("Vault's 429 gave no RetryAfter: %v", throttled)
	}
}

// TestPutReportsAFailedMetadataWrite: the value is written first; if its tags and provenance then fail,
// the error says which version holds the value, and the old record stays (naming an older version).
func TestPutReportsAFailedMetadataWrite(t *testing.T) {
	srv := devServer(t)
	layer, p := behindFault(t, 5)
	ctx := testCtx(t)
	st := newTestStore(t, "vault", p.URL, srv.RootToken, Retry{MaxRetries: -1})
	name := uniq("partial")
	prov := &store.Provenance{SourceStore: "aws", SourceName: "a", SourceVersion: "1"}
	if _, err := st.Put(ctx, name, store.Text("first value"), store.PutOptions{Provenance: prov}); err != nil {
		t.Fatal(err)
	}
	layer.SetRules(fault.Rule{API: "vault:kv-metadata-write", ServerError: 1})
	prov2 := &store.Provenance{SourceStore: "aws", SourceName: "a", SourceVersion: "2"}
	_, err := st.Put(ctx, name, store.Text("second value"), store.PutOptions{Provenance: prov2})
	layer.SetRules()
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "written as version 2") {
		t.Fatalf("Put with a failing metadata write: got %v", err)
	}
	got, err := st.Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Value.Bytes()) != "second value" || got.Metadata.Provenance == nil ||
		got.Metadata.Provenance.SourceVersion != "1" || got.Metadata.Provenance.ReplicaVersion != "1" {
		t.Fatalf("after the partial write: version %s, provenance %+v", got.Metadata.Version, got.Metadata.Provenance)
	}
}

func TestUpdateMetadata(t *testing.T) {
	srv := devServer(t)
	ctx := testCtx(t)
	st := newTestStore(t, "vault", srv.Addr, srv.RootToken, fastRetry)
	name := uniq("meta")
	if err := st.UpdateMetadata(ctx, name, map[string]string{"a": "b"}, nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateMetadata of a missing secret: got %v, want ErrNotFound", err)
	}
	if _, err := st.Describe(ctx, name); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateMetadata created %q: %v", name, err)
	}
	if _, err := st.Put(ctx, name, store.Text("meta value"), store.PutOptions{Tags: map[string]string{"old": "1", "keep": "x"},
		Provenance: &store.Provenance{SourceStore: "s", SourceName: "n"}}); err != nil {
		t.Fatal(err)
	}
	if err := st.UpdateMetadata(ctx, name, map[string]string{"keep": "y", "new": "2"}, nil); err != nil {
		t.Fatal(err)
	}
	d, err := st.Describe(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Tags) != 2 || d.Tags["keep"] != "y" || d.Tags["new"] != "2" || d.Provenance != nil || d.Version != "1" {
		t.Fatalf("after UpdateMetadata: tags %v, provenance %+v, version %s", d.Tags, d.Provenance, d.Version)
	}
	if err := st.UpdateMetadata(ctx, name, map[string]string{"k": ""}, nil); !errors.Is(err, store.ErrInvalidTags) {
		t.Fatalf("UpdateMetadata with an empty value: got %v, want ErrInvalidTags", err)
	}
}
