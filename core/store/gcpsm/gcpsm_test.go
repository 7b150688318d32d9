package gcpsm_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/keyferry/keyferry/core/store"
	"github.com/keyferry/keyferry/core/store/gcpsm"
	"github.com/keyferry/keyferry/core/store/storetest"
	"github.com/keyferry/keyferry/localtest/fault"
	"github.com/keyferry/keyferry/localtest/gcp"
)

const (
	project     = "kf-test"
	deniedToken = "refused-token"
)

// fastRetry keeps tests quick: short backoff, server delays honoured up to a second. 16 attempts: one
// CI run on a loaded machine saw a call throttled 10 times in a row at 20 % injected throttling.
var fastRetry = gcpsm.RetrySettings{Initial: 2 * time.Millisecond, Max: 20 * time.Millisecond, Multiplier: 2,
	MaxAttempts: 16, MaxRetryAfter: time.Second, Timeout: 30 * time.Second}

type env struct {
	layer *fault.Layer
	sm    *gcp.SecretManager
}

func startEnv(t *testing.T, extra ...grpc.UnaryServerInterceptor) *env {
	t.Helper()
	layer := fault.New(1, 42)
	sm, err := gcp.StartSecretManager(gcp.SecretManagerOptions{Fault: layer,
		Interceptors: append([]grpc.UnaryServerInterceptor{gcp.DenyToken(deniedToken)}, extra...)})
	if err != nil {
		t.Fatalf("start the Secret Manager emulator: %v", err)
	}
	t.Cleanup(sm.Stop)
	return &env{layer: layer, sm: sm}
}

func (e *env) store(t *testing.T, name string, mut func(*gcpsm.Options)) *gcpsm.Store {
	t.Helper()
	o := gcpsm.Options{Name: name, Project: project, ClientOptions: e.sm.ClientOptions(), Retry: fastRetry}
	if mut != nil {
		mut(&o)
	}
	s, err := gcpsm.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func (e *env) rawClient(t *testing.T) *secretmanager.Client {
	t.Helper()
	c, err := secretmanager.NewClient(context.Background(), e.sm.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestContract(t *testing.T) {
	e := startEnv(t)
	st := e.store(t, "gcp-test", nil)
	storetest.Run(t, storetest.Harness{
		Store:         st,
		Calls:         e.layer.Calls,
		ValueReadAPIs: []string{"secretmanager:AccessSecretVersion"},
		ListAPIs:      []string{"secretmanager:ListSecrets"},
		ServerPaging:  true,
		SoftDelete:    false,
		Logs:          e.sm.Logs,
		Unreachable: func() store.Store {
			return e.store(t, "gcp-unreachable", func(o *gcpsm.Options) { o.ClientOptions = gcp.EndpointOptions(closedAddr(t)) })
		},
		Denied: func() store.Store {
			return e.store(t, "gcp-denied", func(o *gcpsm.Options) { o.ClientOptions = e.sm.ClientOptionsWithToken(deniedToken) })
		},
		Throttle: func(on bool) {
			if on {
				e.layer.SetRules(fault.Rule{API: "secretmanager:*", Throttle: 1, RetryAfter: 5 * time.Millisecond})
			} else {
				e.layer.SetRules()
			}
		},
		Cleanup: func(ctx context.Context, names []string) {
			for _, n := range names {
				_ = st.Delete(ctx, n, store.DeleteOptions{})
			}
		},
	})
}

// TestThrottledPuts: with 20% of every call throttled, 500 puts complete without a failure, and the
// fault counters show that every throttled call was retried and nothing else was.
func TestThrottledPuts(t *testing.T) {
	e := startEnv(t)
	st := e.store(t, "gcp-load", nil)
	ctx := testCtx(t)
	e.layer.SetRules(fault.Rule{API: "secretmanager:*", Throttle: 0.2, RetryAfter: 5 * time.Millisecond})
	e.layer.ResetCounters()

	const (
		workers  = 8
		secrets  = 100
		puts     = 500
		perName  = puts / secrets
		run      = "kfload"
		prefixFm = run + "-%03d"
	)
	var failures atomic.Int64
	var firstErr sync.Once
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			// Each worker owns its secrets, so that the only contention is the injected throttling.
			for i := w; i < secrets; i += workers {
				name := fmt.Sprintf(prefixFm, i)
				for j := 0; j < perName; j++ {
					prov := &store.Provenance{SourceStore: "aws-prod", SourceName: name, SourceVersion: fmt.Sprint(j + 1)}
					_, err := st.Put(ctx, name, store.Text(fmt.Sprintf("value-%d-%d", i, j)), store.PutOptions{
						Tags: map[string]string{"load": "yes"}, Provenance: prov})
					if err != nil {
						failures.Add(1)
						firstErr.Do(func() { t.Errorf("put %s #%d: %v", name, j+1, err) })
					}
				}
			}
		}(w)
	}
	wg.Wait()
	calls, injected := e.layer.Count("secretmanager:*"), e.layer.InjectedCount("secretmanager:*")
	e.layer.SetRules()
	if n := failures.Load(); n != 0 {
		t.Fatalf("%d of %d puts failed", n, puts)
	}
	// A first put is GetSecret (not found) + CreateSecret + AddSecretVersion + UpdateSecret (the replica
	// version in the provenance); a later one is GetSecret + AddSecretVersion + UpdateSecret.
	wantServed := int64(secrets*4 + (puts-secrets)*3)
	t.Logf("%d puts: %d calls reached the server, %d throttled and retried (%.1f%%), %d served",
		puts, calls, injected, 100*float64(injected)/float64(calls), calls-injected)
	if injected == 0 {
		t.Fatal("no call was throttled: the fault layer is not in front of the store")
	}
	if calls-injected != wantServed {
		t.Fatalf("served calls = %d, want %d (calls %d - retries %d)", calls-injected, wantServed, calls, injected)
	}
	if ratio := float64(injected) / float64(calls); ratio < 0.12 || ratio > 0.28 {
		t.Fatalf("throttled share %.3f is far from the 0.2 asked for", ratio)
	}
	for i := 0; i < secrets; i++ {
		name := fmt.Sprintf(prefixFm, i)
		sec, err := st.Get(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("value-%d-%d", i, perName-1); string(sec.Value.Bytes()) != want {
			t.Fatalf("%s holds %s, want the last value written", name, sec.Value)
		}
		if sec.Metadata.Version != fmt.Sprint(perName) || sec.Metadata.Provenance == nil ||
			sec.Metadata.Provenance.ReplicaVersion != sec.Metadata.Version {
			t.Fatalf("%s: version %q, provenance %+v", name, sec.Metadata.Version, sec.Metadata.Provenance)
		}
	}
}

// TestCreatedSecretSettings: replication and topics go on secrets keyferry creates, provenance goes in
// annotations (never labels), and the binary mark names the version it describes.
func TestCreatedSecretSettings(t *testing.T) {
	e := startEnv(t)
	topic := "projects/" + project + "/topics/secret-events"
	st := e.store(t, "gcp-settings", func(o *gcpsm.Options) {
		o.Replication = gcpsm.Replication{Locations: []string{"europe-west1", "europe-west4"}}
		o.Topics = []string{topic}
	})
	ctx := testCtx(t)
	raw := e.rawClient(t)
	prov := &store.Provenance{SourceStore: "vault", SourceName: "kv/app", SourceVersion: "4"}
	md, err := st.Put(ctx, "settings", store.Binary([]byte("binary but valid utf-8")), store.PutOptions{
		Tags: map[string]string{"team": "payments"}, Provenance: prov})
	if err != nil {
		t.Fatal(err)
	}
	sec, err := raw.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: "projects/" + project + "/secrets/settings"})
	if err != nil {
		t.Fatal(err)
	}
	var locs []string
	for _, r := range sec.GetReplication().GetUserManaged().GetReplicas() {
		locs = append(locs, r.GetLocation())
	}
	if strings.Join(locs, ",") != "europe-west1,europe-west4" {
		t.Errorf("replication locations %v", locs)
	}
	if len(sec.GetTopics()) != 1 || sec.GetTopics()[0].GetName() != topic {
		t.Errorf("topics %v", sec.GetTopics())
	}
	for k := range sec.GetLabels() {
		if strings.HasPrefix(k, store.ProvenancePrefix) {
			t.Errorf("provenance key %q in labels", k)
		}
	}
	a := sec.GetAnnotations()
	if a[store.KeySourceStore] != "vault" || a[store.KeyReplicaVersion] != md.Version || a[gcpsm.KeyBinary] != md.Version {
		t.Errorf("annotations %v, version %s", a, md.Version)
	}

	// A foreign text write afterwards is not taken for binary: the mark names version 1 only.
	if _, err := raw.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{Parent: sec.GetName(),
		Payload: &secretmanagerpb.SecretPayload{Data: []byte("foreign text")}}); err != nil {
		t.Fatal(err)
	}
	got, err := st.Get(ctx, "settings")
	if err != nil {
		t.Fatal(err)
	}
	if got.Value.IsBinary() || got.Metadata.Version != "2" || got.Metadata.Provenance.ReplicaVersion != "1" {
		t.Errorf("after a foreign write: %s, version %s, provenance %+v", got.Value, got.Metadata.Version, got.Metadata.Provenance)
	}
	old, err := st.GetVersion(ctx, "settings", "1")
	if err != nil || !old.Value.IsBinary() {
		t.Errorf("version 1 should still read as binary: %v, %v", old.Value, err)
	}
	// Foreign binary (invalid UTF-8) reads back as binary without a mark.
	if _, err := raw.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{Parent: sec.GetName(),
		Payload: &secretmanagerpb.SecretPayload{Data: []byte{0xff, 0x00, 0xfe}}}); err != nil {
		t.Fatal(err)
	}
	if got, err := st.Get(ctx, "settings"); err != nil || !got.Value.IsBinary() {
		t.Errorf("invalid UTF-8 from a foreign write: %v, %v", got.Value, err)
	}

	// A Put without provenance removes the record (it no longer describes the current value) and leaves
	// the labels when Tags is nil.
	if _, err := st.Put(ctx, "settings", store.Text("by hand"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	d, err := st.Describe(ctx, "settings")
	if err != nil {
		t.Fatal(err)
	}
	if d.Provenance != nil || d.Tags["team"] != "payments" || d.Version != "4" || d.Binary {
		t.Errorf("after a put without provenance: %+v", d)
	}
}

// TestDisabledCurrentVersion: the current version is the newest one; when it is disabled Get says so
// instead of serving an older value.
func TestDisabledCurrentVersion(t *testing.T) {
	e := startEnv(t)
	st := e.store(t, "gcp-disabled", nil)
	ctx := testCtx(t)
	for _, v := range []string{"first", "second"} {
		if _, err := st.Put(ctx, "dis", store.Text(v), store.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	raw := e.rawClient(t)
	if _, err := raw.DisableSecretVersion(ctx, &secretmanagerpb.DisableSecretVersionRequest{
		Name: "projects/" + project + "/secrets/dis/versions/2"}); err != nil {
		t.Fatal(err)
	}
	_, err := st.Get(ctx, "dis")
	if !errors.Is(err, store.ErrInvalidValue) || !strings.Contains(err.Error(), "disabled or destroyed") {
		t.Fatalf("Get with a disabled current version: %v", err)
	}
	md, err := st.Describe(ctx, "dis")
	if err != nil || md.Version != "2" {
		t.Fatalf("Describe: %+v, %v", md, err)
	}
	var enabled []bool
	for vi, err := range st.Versions(ctx, "dis") {
		if err != nil {
			t.Fatal(err)
		}
		enabled = append(enabled, vi.Enabled)
	}
	if fmt.Sprint(enabled) != "[false true]" {
		t.Fatalf("Versions enabled flags %v, want [false true]", enabled)
	}
}

// TestConcurrentMetadataUpdate: when someone else changes the metadata between keyferry's read and its
// update, the etag no longer matches; keyferry re-reads once and keeps their change, and reports
// ErrConflict if it keeps happening.
func TestConcurrentMetadataUpdate(t *testing.T) {
	var raw *secretmanager.Client
	var interfere atomic.Int64 // how many of keyferry's UpdateSecret calls to interfere with
	name := "projects/" + project + "/secrets/etag"
	meddle := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		if strings.HasSuffix(info.FullMethod, "/UpdateSecret") && len(md.Get("x-kf-test")) == 0 && interfere.Add(-1) >= 0 {
			c := metadata.AppendToOutgoingContext(context.Background(), "x-kf-test", "other-writer")
			sec, err := raw.GetSecret(c, &secretmanagerpb.GetSecretRequest{Name: name})
			if err == nil {
				sec.Annotations = map[string]string{"owner": fmt.Sprint("someone-else-", interfere.Load())}
				_, err = raw.UpdateSecret(c, &secretmanagerpb.UpdateSecretRequest{Secret: sec, UpdateMask: fieldMask("annotations")})
			}
			if err != nil {
				return nil, err
			}
		}
		return h(ctx, req)
	}
	e := startEnv(t, meddle)
	raw = e.rawClient(t)
	st := e.store(t, "gcp-etag", nil)
	ctx := testCtx(t)
	if _, err := st.Put(ctx, "etag", store.Text("v"), store.PutOptions{Tags: map[string]string{"a": "1"}}); err != nil {
		t.Fatal(err)
	}

	interfere.Store(1)
	before := e.layer.Count("secretmanager:UpdateSecret")
	if err := st.UpdateMetadata(ctx, "etag", map[string]string{"a": "2"}, nil); err != nil {
		t.Fatal(err)
	}
	sec, err := raw.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	if sec.GetLabels()["a"] != "2" || !strings.HasPrefix(sec.GetAnnotations()["owner"], "someone-else") {
		t.Fatalf("labels %v annotations %v: one of the two writes was lost", sec.GetLabels(), sec.GetAnnotations())
	}
	if n := e.layer.Count("secretmanager:UpdateSecret") - before; n != 3 {
		t.Fatalf("%d UpdateSecret calls, want 3 (keyferry's refused one, the other writer's, keyferry's second)", n)
	}

	interfere.Store(2)
	err = st.UpdateMetadata(ctx, "etag", map[string]string{"a": "3"}, nil)
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("UpdateMetadata losing the race twice: %v, want ErrConflict", err)
	}
}

func TestNoCallForImpossibleListing(t *testing.T) {
	e := startEnv(t)
	st := e.store(t, "gcp-list", nil)
	ctx := testCtx(t)
	before := e.layer.Count("secretmanager:*")
	for _, o := range []store.ListOptions{{Prefix: "has space"}, {Tags: map[string]string{"Upper": "x"}}} {
		for _, err := range st.List(ctx, o) {
			t.Fatalf("List(%+v) yielded (err %v)", o, err)
		}
	}
	if after := e.layer.Count("secretmanager:*"); after != before {
		t.Fatalf("impossible listings made %d calls", after-before)
	}
}

func TestLazyClient(t *testing.T) {
	e := startEnv(t)
	var builds atomic.Int64
	st := e.store(t, "gcp-lazy", func(o *gcpsm.Options) {
		o.ClientOptions = nil
		o.Client = func(ctx context.Context) (*secretmanager.Client, error) {
			if builds.Add(1) == 1 {
				return nil, errors.New("no credentials yet")
			}
			return secretmanager.NewClient(ctx, e.sm.ClientOptions()...)
		}
	})
	if builds.Load() != 0 {
		t.Fatal("New built the client")
	}
	ctx := testCtx(t)
	if _, err := st.Describe(ctx, "lazy"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("first use with a failing builder: %v", err)
	}
	for i := 0; i < 3; i++ {
		if _, err := st.Describe(ctx, "lazy"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Describe: %v", err)
		}
	}
	if n := builds.Load(); n != 2 {
		t.Fatalf("client built %d times, want 2 (one failure, then cached)", n)
	}
}

func fieldMask(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }

func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// TestCreateInTwoWrites: Create makes a new secret and its first version in two calls and no read, with
// the provenance record already naming version 1 (a clean replica), keeps a binary value binary, and
// refuses an existing secret with ErrAlreadyExists without adding a version.
func TestCreateInTwoWrites(t *testing.T) {
	e := startEnv(t)
	st := e.store(t, "gcp-create", nil)
	ctx := testCtx(t)
	prov := &store.Provenance{SourceStore: "aws", SourceName: "db", SourceVersion: "v7"}
	e.layer.ResetCounters()
	md, err := st.Create(ctx, "created", store.Binary([]byte{0xff, 0x00, 0x01}), store.PutOptions{
		Tags: map[string]string{"team": "a"}, Provenance: prov})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.layer.Calls(); fmt.Sprint(got) != fmt.Sprint(map[string]int64{"secretmanager:AddSecretVersion": 1, "secretmanager:CreateSecret": 1}) {
		t.Errorf("Create made %v, want one CreateSecret and one AddSecretVersion", got)
	}
	if md.Version != "1" {
		t.Errorf("version %q", md.Version)
	}
	d, err := st.Describe(ctx, "created")
	if err != nil {
		t.Fatal(err)
	}
	if d.Provenance == nil || d.Provenance.ReplicaVersion != "1" || d.Provenance.SourceVersion != "v7" || d.Tags["team"] != "a" {
		t.Errorf("described %+v tags %v", d.Provenance, d.Tags)
	}
	sec, err := st.Get(ctx, "created")
	if err != nil || !sec.Value.IsBinary() || !bytes.Equal(sec.Value.Bytes(), []byte{0xff, 0x00, 0x01}) {
		t.Errorf("Get: %v binary=%v", err, sec.Value.IsBinary())
	}
	_, err = st.Create(ctx, "created", store.Text("again"), store.PutOptions{})
	if !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("Create on an existing secret: %v, want ErrAlreadyExists", err)
	}
	if d2, _ := st.Describe(ctx, "created"); d2.Version != "1" {
		t.Errorf("a refused Create added version %s", d2.Version)
	}
}

// TestPutKeepsOtherLabels: Put adds or changes the labels it is given and keeps the others (another
// owner's, or keyferry's rotation state), as the Store contract says.
func TestPutKeepsOtherLabels(t *testing.T) {
	e := startEnv(t)
	st := e.store(t, "gcp-labels", nil)
	ctx := testCtx(t)
	if _, err := st.Put(ctx, "db", store.Text("v1"), store.PutOptions{Tags: map[string]string{"team": "pay", "keyferry_rotated": "x"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, "db", store.Text("v2"), store.PutOptions{Tags: map[string]string{"team": "payments", "env": "prod"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, "db", store.Text("v3"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	md, err := st.Describe(ctx, "db")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"team": "payments", "env": "prod", "keyferry_rotated": "x"}
	for k, v := range want {
		if md.Tags[k] != v {
			t.Errorf("label %s = %q, want %q (all: %v)", k, md.Tags[k], v, md.Tags)
		}
	}
	if len(md.Tags) != len(want) {
		t.Errorf("labels %v, want %v", md.Tags, want)
	}
}
