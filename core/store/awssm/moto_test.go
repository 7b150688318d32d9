package awssm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyferry/keyferry/core/store"
	"github.com/keyferry/keyferry/core/store/storetest"
	"github.com/keyferry/keyferry/localtest/fault"
	"github.com/keyferry/keyferry/localtest/moto"
)

// One moto for the package, behind the fault layer.
var (
	motoSrv *moto.Server
	layer   *fault.Layer
	proxy   *fault.Proxy

	deniedOnce sync.Once
	deniedSrv  *moto.Server
	deniedErr  error
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var err error
	if motoSrv, err = moto.Start(ctx, moto.Options{}); err != nil {
		fmt.Fprintln(os.Stderr, "awssm tests need moto:", err)
		return 1
	}
	defer motoSrv.Stop()
	defer func() {
		if deniedSrv != nil {
			_ = deniedSrv.Stop()
		}
	}()
	layer = fault.New(1, 42)
	if proxy, err = layer.Proxy(fault.AWS, motoSrv.URL); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer proxy.Close()
	return m.Run()
}

// testRetry is the retry setting of every test client: moto's test settings.
var testRetry = Retry{MaxAttempts: moto.TestMaxAttempts, MaxBackoff: moto.TestMaxBackoff}

// clientFor builds a Secrets Manager client for endpoint with the test retry settings.
func clientFor(endpoint string) func(context.Context) (*secretsmanager.Client, error) {
	return func(context.Context) (*secretsmanager.Client, error) {
		return NewClient(moto.Config(endpoint), WithRetry(testRetry)), nil
	}
}

func newStore(t *testing.T, endpoint string, opts Options) *Store {
	t.Helper()
	if opts.Name == "" {
		opts.Name = "aws-local"
	}
	opts.Client = clientFor(endpoint)
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return "http://" + addr
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestContract(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		// The suite's names end in "-" + 6 hex characters, which the default name rule refuses.
		Store:            newStore(t, proxy.URL, Options{}),
		Calls:            layer.Calls,
		ValueReadAPIs:    []string{"secretsmanager:GetSecretValue", "secretsmanager:BatchGetSecretValue"},
		ListAPIs:         []string{"secretsmanager:ListSecrets"},
		ServerPaging:     true,
		SoftDelete:       true,
		DeleteBlocksName: true,
		Logs:             motoSrv.Logs,
		Unreachable: func() store.Store {
			return newStore(t, closedPort(t), Options{})
		},
		Denied: func() store.Store {
			// A second moto that checks credentials (and refuses the fake ones), started on first use.
			s, err := New(Options{Name: "aws-denied", Client: func(ctx context.Context) (*secretsmanager.Client, error) {
				deniedOnce.Do(func() {
					deniedSrv, deniedErr = moto.Start(ctx, moto.Options{Env: []string{"INITIAL_NO_AUTH_ACTION_COUNT=0"}})
				})
				if deniedErr != nil {
					return nil, deniedErr
				}
				return clientFor(deniedSrv.URL)(ctx)
			}})
			if err != nil {
				panic(err)
			}
			return s
		},
		Throttle: func(on bool) {
			if on {
				layer.SetRules(fault.Rule{API: "secretsmanager:*", Throttle: 1})
			} else {
				layer.SetRules()
			}
		},
	})
}

// delta returns the per-API call and injected-fault counts since before.
func delta(before, now map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range now {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// TestPutsUnderThrottling: 500 puts (250 creations, 250 updates with new provenance) while the fault
// layer throttles 20% of every Secrets Manager call. The SDK's retryer must absorb every throttle.
func TestPutsUnderThrottling(t *testing.T) {
	s := newStore(t, proxy.URL, Options{})
	ctx := ctxT(t)
	const names, workers = 250, 8
	prefix := fmt.Sprintf("kf-thr-%d/", time.Now().UnixNano())
	callsBefore, injBefore := layer.Calls(), layer.Injected()
	layer.SetRules(fault.Rule{API: "secretsmanager:*", Throttle: 0.2})
	defer layer.SetRules()

	var mu sync.Mutex
	var failures []error
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				name := fmt.Sprintf("%sn%03d", prefix, i)
				for round := 1; round <= 2; round++ {
					prov := &store.Provenance{SourceStore: "src", SourceName: name, SourceVersion: fmt.Sprint(round),
						Written: time.Date(2026, 1, 1, 0, 0, round, 0, time.UTC)}
					_, err := s.Put(ctx, name, store.Text(fmt.Sprintf("value %d of %d", round, i)),
						store.PutOptions{Tags: map[string]string{"batch": "throttle"}, Provenance: prov})
					if err != nil {
						mu.Lock()
						failures = append(failures, err)
						mu.Unlock()
					}
				}
			}
		}()
	}
	for i := 0; i < names; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	layer.SetRules()

	if len(failures) > 0 {
		t.Fatalf("%d of %d puts failed; first: %v", len(failures), 2*names, failures[0])
	}
	calls, inj := delta(callsBefore, layer.Calls()), delta(injBefore, layer.Injected())
	// Every logical call, once: creation = DescribeSecret + CreateSecret; update = DescribeSecret +
	// PutSecretValue + TagResource (the provenance changed; no key went away, so no UntagResource).
	want := map[string]int64{
		"secretsmanager:DescribeSecret": 2 * names,
		"secretsmanager:CreateSecret":   names,
		"secretsmanager:PutSecretValue": names,
		"secretsmanager:TagResource":    names,
	}
	// moto (a threaded Python server) occasionally fails a served call under concurrent load; the SDK then
	// retries it and the adapter takes the already-exists path, so allow a couple of extra served calls.
	// Fewer than the logical calls would mean a lost write.
	const slack = 2
	for api, n := range want {
		if got := calls[api] - inj[api]; got < n || got > n+slack {
			t.Errorf("%s: %d calls - %d injected throttles = %d served, want %d (+%d)", api, calls[api], inj[api], got, n, slack)
		}
	}
	for api := range calls {
		if _, ok := want[api]; !ok {
			t.Errorf("unexpected API %s called %d times", api, calls[api])
		}
	}
	total, throttled := sum(calls), sum(inj)
	if throttled == 0 {
		t.Fatal("the fault layer injected no throttles: the test proves nothing")
	}
	ratio := float64(throttled) / float64(total)
	if ratio < 0.12 || ratio > 0.28 {
		t.Errorf("injected %d of %d calls (%.1f%%), want about 20%%", throttled, total, 100*ratio)
	}
	t.Logf("500 puts: %d calls reached the fault layer, %d throttled (%.1f%%) and retried by the SDK, 0 failures",
		total, throttled, 100*ratio)

	// Everything landed: the listing has every name with the second round's provenance.
	n := 0
	for md, err := range s.List(ctx, store.ListOptions{Prefix: prefix, Tags: map[string]string{"batch": "throttle"}}) {
		if err != nil {
			t.Fatal(err)
		}
		if md.Provenance == nil || md.Provenance.SourceVersion != "2" || md.Provenance.ReplicaVersion != md.Version {
			t.Fatalf("%s: provenance %+v, version %s", md.Name, md.Provenance, md.Version)
		}
		n++
	}
	if n != names {
		t.Fatalf("listed %d secrets, want %d", n, names)
	}
	got, err := s.Get(ctx, prefix+"n007")
	if err != nil || string(got.Value.Bytes()) != "value 2 of 7" {
		t.Fatalf("Get after the run: %v (%d bytes)", err, got.Value.Len())
	}
}

// TestPutCallBudget checks that Put makes one read, one write and only the metadata calls it needs.
func TestPutCallBudget(t *testing.T) {
	s := newStore(t, proxy.URL, Options{})
	ctx := ctxT(t)
	name := fmt.Sprintf("kf-budget-%d", time.Now().UnixNano())
	prov := &store.Provenance{SourceStore: "src", SourceName: "a", SourceVersion: "1"}
	cases := []struct {
		label string
		tags  map[string]string
		prov  *store.Provenance
		want  map[string]int64
	}{
		{"create with tags", map[string]string{"team": "a"}, prov,
			map[string]int64{"secretsmanager:DescribeSecret": 1, "secretsmanager:CreateSecret": 1}},
		{"same tags, no provenance", map[string]string{"team": "a"}, nil,
			// the old provenance record is removed: keyferry did not write this value from a source
			map[string]int64{"secretsmanager:DescribeSecret": 1, "secretsmanager:PutSecretValue": 1, "secretsmanager:UntagResource": 1}},
		{"same tags again", map[string]string{"team": "a"}, nil,
			map[string]int64{"secretsmanager:DescribeSecret": 1, "secretsmanager:PutSecretValue": 1}},
		{"changed tag", map[string]string{"team": "b"}, nil,
			map[string]int64{"secretsmanager:DescribeSecret": 1, "secretsmanager:PutSecretValue": 1, "secretsmanager:TagResource": 1}},
		{"tag dropped by caller stays", nil, nil,
			map[string]int64{"secretsmanager:DescribeSecret": 1, "secretsmanager:PutSecretValue": 1}},
	}
	for i, c := range cases {
		before := layer.Calls()
		md, err := s.Put(ctx, name, store.Text(fmt.Sprintf("budget value %d", i)), store.PutOptions{Tags: c.tags, Provenance: c.prov})
		if err != nil {
			t.Fatalf("%s: %v", c.label, err)
		}
		got := delta(before, layer.Calls())
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: calls %v, want %v", c.label, got, c.want)
		}
		if c.prov != nil && (md.Provenance == nil || md.Provenance.ReplicaVersion != md.Version) {
			t.Errorf("%s: provenance %+v does not record the written version %s", c.label, md.Provenance, md.Version)
		}
	}
	md, err := s.Describe(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if md.Tags["team"] != "b" || md.Provenance != nil {
		t.Errorf("after the puts: tags %v provenance %+v", md.Tags, md.Provenance)
	}

	// UpdateMetadata with nothing to change makes only the DescribeSecret call.
	before := layer.Calls()
	if err := s.UpdateMetadata(ctx, name, map[string]string{"team": "b"}, nil); err != nil {
		t.Fatal(err)
	}
	if got := delta(before, layer.Calls()); fmt.Sprint(got) != fmt.Sprint(map[string]int64{"secretsmanager:DescribeSecret": 1}) {
		t.Errorf("no-op UpdateMetadata made %v", got)
	}
}

// TestMarkSyncedIsOneCall: the Synced mark costs one TagResource and keeps every other tag.
func TestMarkSyncedIsOneCall(t *testing.T) {
	s := newStore(t, proxy.URL, Options{})
	ctx := ctxT(t)
	name := fmt.Sprintf("kf-mark-%d", time.Now().UnixNano())
	if _, err := s.Put(ctx, name, store.Text("mark value"), store.PutOptions{Tags: map[string]string{"team": "a"}}); err != nil {
		t.Fatal(err)
	}
	before := layer.Calls()
	if err := s.MarkSynced(ctx, name, "v1/abc"); err != nil {
		t.Fatal(err)
	}
	if got := delta(before, layer.Calls()); fmt.Sprint(got) != fmt.Sprint(map[string]int64{"secretsmanager:TagResource": 1}) {
		t.Errorf("MarkSynced made %v", got)
	}
	md, err := s.Describe(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if md.Tags["team"] != "a" || md.Provenance == nil || md.Provenance.Synced != "v1/abc" {
		t.Errorf("after the mark: tags %v provenance %+v", md.Tags, md.Provenance)
	}
}

// TestSoftDeleteOnMoto pins down how moto treats a secret scheduled for deletion, and that the adapter
// reports it the same way whatever the emulator lets through.
func TestSoftDeleteOnMoto(t *testing.T) {
	s := newStore(t, proxy.URL, Options{})
	ctx := ctxT(t)
	name := fmt.Sprintf("kf-softdel-%d", time.Now().UnixNano())
	if _, err := s.Put(ctx, name, store.Text("soft delete value"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, name, store.DeleteOptions{RecoveryWindow: 7 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	before := layer.Calls()
	_, err := s.Put(ctx, name, store.Text("must not land"), store.PutOptions{})
	if !errors.Is(err, store.ErrSoftDeleted) {
		t.Fatalf("Put to a secret scheduled for deletion: %v", err)
	}
	// moto itself accepts PutSecretValue on such a secret; the adapter must not have called it.
	if got := delta(before, layer.Calls()); got["secretsmanager:PutSecretValue"] != 0 || got["secretsmanager:CreateSecret"] != 0 {
		t.Fatalf("Put wrote to a secret scheduled for deletion: %v", got)
	}
	for op, f := range map[string]func() error{
		"Get":        func() error { _, err := s.Get(ctx, name); return err },
		"Describe":   func() error { _, err := s.Describe(ctx, name); return err },
		"Delete":     func() error { return s.Delete(ctx, name, store.DeleteOptions{}) },
		"GetVersion": func() error { _, err := s.GetVersion(ctx, name, newVersionID()); return err },
	} {
		if err := f(); !errors.Is(err, store.ErrSoftDeleted) && !(op == "GetVersion" && errors.Is(err, store.ErrNotFound)) {
			t.Errorf("%s of a secret scheduled for deletion: %v", op, err)
		}
	}
	if err := s.Recover(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctx, name); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Purge of a live secret: got %v, want ErrConflict", err)
	}
	if err := s.Delete(ctx, name, store.DeleteOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, name, store.DeleteOptions{Force: true}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("forced Delete of a missing secret: got %v, want ErrNotFound", err)
	}
	if err := s.Recover(ctx, name); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Recover of a missing secret: got %v, want ErrNotFound", err)
	}
}

func TestStagesOnMoto(t *testing.T) {
	s := newStore(t, proxy.URL, Options{})
	ctx := ctxT(t)
	name := fmt.Sprintf("kf-stages-%d", time.Now().UnixNano())
	v1, err := s.Put(ctx, name, store.Text("stage one"), store.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pending := "5b1f4a36-6a1c-4f53-9d3a-0f8f5d6b7c01"
	vi, err := s.PutStaged(ctx, name, pending, store.Text("stage two"), []string{"AWSPENDING"})
	if err != nil {
		t.Fatal(err)
	}
	if vi.Version != pending || !equalSet(vi.Stages, "AWSPENDING") {
		t.Fatalf("PutStaged = %+v", vi)
	}
	if _, err := s.PutStaged(ctx, name, pending, store.Text("stage two"), []string{"AWSPENDING"}); err != nil {
		t.Fatalf("repeated PutStaged with the same id and value: %v", err)
	}
	cur, err := s.Get(ctx, name)
	if err != nil || string(cur.Value.Bytes()) != "stage one" || cur.Metadata.Version != v1.Version {
		t.Fatalf("current after staging a pending version: %v %q %s", err, cur.Value.Bytes(), cur.Metadata.Version)
	}
	if err := s.MoveStage(ctx, name, "AWSCURRENT", pending); err != nil {
		t.Fatal(err)
	}
	cur, err = s.Get(ctx, name)
	if err != nil || string(cur.Value.Bytes()) != "stage two" || cur.Metadata.Version != pending {
		t.Fatalf("current after MoveStage: %v %q %s", err, cur.Value.Bytes(), cur.Metadata.Version)
	}
	if err := s.MoveStage(ctx, name, "AWSCURRENT", pending); err != nil {
		t.Fatalf("MoveStage to the holder: %v", err)
	}
	stages := map[string][]string{}
	for v, err := range s.Versions(ctx, name) {
		if err != nil {
			t.Fatal(err)
		}
		stages[v.Version] = v.Stages
	}
	if !contains(stages[v1.Version], "AWSPREVIOUS") || !contains(stages[pending], "AWSCURRENT") {
		t.Fatalf("stages after promotion: %v", stages)
	}

	// A custom-stage version: the same id with another value is a conflict; another stage is added.
	custom := "5b1f4a36-6a1c-4f53-9d3a-0f8f5d6b7c02"
	if _, err := s.PutStaged(ctx, name, custom, store.Binary([]byte{0xff, 1, 2}), []string{"KFTEST"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutStaged(ctx, name, custom, store.Binary([]byte{0xff, 1, 3}), []string{"KFTEST"}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("same version id, other value: got %v, want ErrConflict", err)
	}
	vi, err = s.PutStaged(ctx, name, custom, store.Binary([]byte{0xff, 1, 2}), []string{"KFTEST2"})
	if err != nil || !equalSet(vi.Stages, "KFTEST", "KFTEST2") {
		t.Fatalf("same version, new stage: %+v %v", vi, err)
	}
	old, err := s.GetVersion(ctx, name, custom)
	if err != nil || !old.Value.IsBinary() || string(old.Value.Bytes()) != "\xff\x01\x02" {
		t.Fatalf("GetVersion(custom): %v", err)
	}
	if err := s.MoveStage(ctx, name, "AWSCURRENT", "5b1f4a36-6a1c-4f53-9d3a-0f8f5d6b7cff"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("MoveStage to a missing version: got %v, want ErrNotFound", err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func equalSet(list []string, want ...string) bool {
	if len(list) != len(want) {
		return false
	}
	for _, w := range want {
		if !contains(list, w) {
			return false
		}
	}
	return true
}

func TestDescribeSecretPendingDeletionViaAPI(t *testing.T) {
	// Exact moto 5.2.1 behaviour the adapter relies on or works around (see the package tests' report):
	// CreateSecret on a name scheduled for deletion → ResourceExistsException (AWS: InvalidRequestException),
	// GetSecretValue → InvalidRequestException "…currently marked deleted.", DescribeSecret → DeletedDate set.
	c := NewClient(moto.Config(motoSrv.URL), WithRetry(testRetry))
	ctx := ctxT(t)
	name := fmt.Sprintf("kf-raw-%d", time.Now().UnixNano())
	if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String("x")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(name)}); err != nil {
		t.Fatal(err)
	}
	_, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String("y")})
	if code := errorCode(err); code != "ResourceExistsException" {
		t.Errorf("moto CreateSecret on a pending deletion: %q (%v)", code, err)
	}
	_, err = c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name), VersionStage: aws.String("AWSCURRENT")})
	if e := mapError(err); !errors.Is(e, store.ErrSoftDeleted) {
		t.Errorf("moto GetSecretValue on a pending deletion maps to %v (%v)", e.Kind, err)
	}
	d, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
	if err != nil || d.DeletedDate == nil {
		t.Errorf("moto DescribeSecret on a pending deletion: %v, DeletedDate %v", err, d)
	}
}
