package awsssm

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
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

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
		fmt.Fprintln(os.Stderr, "awsssm tests need moto:", err)
		return 1
	}
	defer motoSrv.Stop()
	defer func() {
		if deniedSrv != nil {
			_ = deniedSrv.Stop()
		}
	}()
	layer = fault.New(1, 7)
	if proxy, err = layer.Proxy(fault.AWS, motoSrv.URL); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer proxy.Close()
	return m.Run()
}

var testRetry = Retry{MaxAttempts: moto.TestMaxAttempts, MaxBackoff: moto.TestMaxBackoff}

func clientFor(endpoint string) func(context.Context) (*ssm.Client, error) {
	return func(context.Context) (*ssm.Client, error) {
		return NewClient(moto.Config(endpoint), WithRetry(testRetry)), nil
	}
}

func newStore(t *testing.T, endpoint string, opts Options) *Store {
	t.Helper()
	if opts.Name == "" {
		opts.Name = "ssm-local"
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
		Store:         newStore(t, proxy.URL, Options{KMSKeyID: "alias/keyferry-test"}),
		Calls:         layer.Calls,
		ValueReadAPIs: []string{"ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath", "ssm:GetParameterHistory"},
		ListAPIs:      []string{"ssm:DescribeParameters"},
		// Parameter Store pages DescribeParameters, but moto 5.2.1 ignores MaxResults and always pages by
		// 10, so the suite's 7-item listing is one page there; TestListPagesLazily covers paging.
		ServerPaging:     false,
		SoftDelete:       false,
		DeleteBlocksName: false,
		Logs:             motoSrv.Logs,
		Unreachable: func() store.Store {
			return newStore(t, closedPort(t), Options{})
		},
		Denied: func() store.Store {
			// A second moto that checks credentials (and refuses the fake ones), started on first use.
			s, err := New(Options{Name: "ssm-denied", Client: func(ctx context.Context) (*ssm.Client, error) {
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
				layer.SetRules(fault.Rule{API: "ssm:*", Throttle: 1})
			} else {
				layer.SetRules()
			}
		},
	})
}

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

// TestPutsUnderThrottling: 500 puts (250 creations, 250 overwrites with new provenance) while the fault
// layer throttles 20% of every SSM call. The SDK's retryer must absorb every throttle.
func TestPutsUnderThrottling(t *testing.T) {
	s := newStore(t, proxy.URL, Options{})
	ctx := ctxT(t)
	const names, workers = 250, 8
	prefix := fmt.Sprintf("/kf-thr-%d/", time.Now().UnixNano())
	callsBefore, injBefore := layer.Calls(), layer.Injected()
	layer.SetRules(fault.Rule{API: "ssm:*", Throttle: 0.2})
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
					prov := &store.Provenance{SourceStore: "src", SourceName: name, SourceVersion: fmt.Sprint(round)}
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
	// Every logical call, once: creation = ListTagsForResource (absent) + PutParameter with tags; overwrite
	// = ListTagsForResource + PutParameter + AddTagsToResource (the provenance changed).
	want := map[string]int64{
		"ssm:ListTagsForResource": 2 * names,
		"ssm:PutParameter":        2 * names,
		"ssm:AddTagsToResource":   names,
	}
	for api, n := range want {
		if got := calls[api] - inj[api]; got != n {
			t.Errorf("%s: %d calls - %d injected throttles = %d served, want %d", api, calls[api], inj[api], got, n)
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

	n := 0
	for md, err := range s.List(ctx, store.ListOptions{Prefix: prefix, Tags: map[string]string{"batch": "throttle"}}) {
		if err != nil {
			t.Fatal(err)
		}
		if md.Version != "2" || md.Provenance == nil || md.Provenance.SourceVersion != "2" {
			t.Fatalf("%s: version %s provenance %+v", md.Name, md.Version, md.Provenance)
		}
		n++
	}
	if n != names {
		t.Fatalf("listed %d parameters, want %d", n, names)
	}
	got, err := s.Get(ctx, prefix+"n007")
	if err != nil || string(got.Value.Bytes()) != "value 2 of 7" {
		t.Fatalf("Get after the run: %v", err)
	}
}

// TestListPagesLazily lists 23 parameters across DescribeParameters pages (moto: 10 per page) and stops
// early without fetching the rest.
func TestListPagesLazily(t *testing.T) {
	s := newStore(t, proxy.URL, Options{})
	ctx := ctxT(t)
	prefix := fmt.Sprintf("kf-page-%d-", time.Now().UnixNano())
	for i := 0; i < 23; i++ {
		tags := map[string]string{}
		if i%2 == 0 {
			tags["parity"] = "even"
		}
		if _, err := s.Put(ctx, fmt.Sprintf("%s%02d", prefix, i), store.Text("page value"), store.PutOptions{Tags: tags}); err != nil {
			t.Fatal(err)
		}
	}
	// A one-level name with a leading "/" that shares the prefix after the slash: moto's BeginsWith
	// matches it too, the client-side check must not.
	if _, err := s.Put(ctx, "/"+prefix+"slash", store.Text("other"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	count := func(opts store.ListOptions, stopAfter int) (int, int64) {
		before := layer.Calls()["ssm:DescribeParameters"]
		n := 0
		for _, err := range s.List(ctx, opts) {
			if err != nil {
				t.Fatal(err)
			}
			if n++; n == stopAfter {
				break
			}
		}
		return n, layer.Calls()["ssm:DescribeParameters"] - before
	}
	if n, pages := count(store.ListOptions{Prefix: prefix, PageSize: 5}, 0); n != 23 || pages != 3 {
		t.Errorf("full listing: %d names in %d pages, want 23 in 3", n, pages)
	}
	if n, pages := count(store.ListOptions{Prefix: prefix}, 4); n != 4 || pages != 1 {
		t.Errorf("early stop: %d names, %d pages fetched, want 4 from 1", n, pages)
	}
	if n, _ := count(store.ListOptions{Prefix: prefix, Tags: map[string]string{"parity": "even"}}, 0); n != 12 {
		t.Errorf("tag filter: %d names, want 12", n)
	}
}

// TestPutCallBudget checks Put's calls: one read, one write, and only the tag calls needed; PutParameter
// never carries Tags with Overwrite.
func TestPutCallBudget(t *testing.T) {
	s := newStore(t, proxy.URL, Options{})
	ctx := ctxT(t)
	name := fmt.Sprintf("/kf/budget/%d", time.Now().UnixNano())
	prov := &store.Provenance{SourceStore: "src", SourceName: "a", SourceVersion: "1"}
	cases := []struct {
		label string
		tags  map[string]string
		prov  *store.Provenance
		want  map[string]int64
	}{
		{"create with tags", map[string]string{"team": "a"}, prov,
			map[string]int64{"ssm:ListTagsForResource": 1, "ssm:PutParameter": 1}},
		{"same tags and provenance", map[string]string{"team": "a"}, prov,
			map[string]int64{"ssm:ListTagsForResource": 1, "ssm:PutParameter": 1}},
		{"changed tag", map[string]string{"team": "b"}, prov,
			map[string]int64{"ssm:ListTagsForResource": 1, "ssm:PutParameter": 1, "ssm:AddTagsToResource": 1}},
		{"provenance dropped", map[string]string{"team": "b"}, nil,
			map[string]int64{"ssm:ListTagsForResource": 1, "ssm:PutParameter": 1, "ssm:RemoveTagsFromResource": 1}},
	}
	for i, c := range cases {
		before := layer.Calls()
		md, err := s.Put(ctx, name, store.Text(fmt.Sprintf("budget value %d", i)), store.PutOptions{Tags: c.tags, Provenance: c.prov})
		if err != nil {
			t.Fatalf("%s: %v", c.label, err)
		}
		if got := delta(before, layer.Calls()); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: calls %v, want %v", c.label, got, c.want)
		}
		if md.Version != fmt.Sprint(i+1) {
			t.Errorf("%s: version %s, want %d", c.label, md.Version, i+1)
		}
	}
	md, err := s.Describe(ctx, name)
	if err != nil || md.Tags["team"] != "b" || md.Provenance != nil || md.Version != "4" {
		t.Fatalf("Describe after the puts: %+v %v", md, err)
	}
	before := layer.Calls()
	if err := s.UpdateMetadata(ctx, name, map[string]string{"team": "b"}, nil); err != nil {
		t.Fatal(err)
	}
	if got := delta(before, layer.Calls()); fmt.Sprint(got) != fmt.Sprint(map[string]int64{"ssm:ListTagsForResource": 1}) {
		t.Errorf("no-op UpdateMetadata made %v", got)
	}
	// The parameter is a SecureString under the configured key, in the standard tier.
	c := NewClient(moto.Config(motoSrv.URL), WithRetry(testRetry))
	out, err := c.DescribeParameters(ctx, &ssm.DescribeParametersInput{ParameterFilters: []types.ParameterStringFilter{
		{Key: aws.String("Name"), Option: aws.String("Equals"), Values: []string{name}}}})
	if err != nil || len(out.Parameters) != 1 {
		t.Fatalf("DescribeParameters: %v", err)
	}
	if p := out.Parameters[0]; p.Type != types.ParameterTypeSecureString || aws.ToString(p.KeyId) != DefaultKMSKeyID || p.Tier != types.ParameterTierStandard {
		t.Errorf("parameter type %s key %s tier %s", p.Type, aws.ToString(p.KeyId), p.Tier)
	}
}

// TestLeadingSlashIsSameParameter pins down that Parameter Store (and moto) treat "/x" and "x" as one
// parameter at the top level, and that Describe finds it under either spelling.
func TestLeadingSlashIsSameParameter(t *testing.T) {
	s := newStore(t, proxy.URL, Options{})
	ctx := ctxT(t)
	name := fmt.Sprintf("kf-slash-%d", time.Now().UnixNano())
	if _, err := s.Put(ctx, "/"+name, store.Text("slash value"), store.PutOptions{Tags: map[string]string{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	sec, err := s.Get(ctx, name)
	if err != nil || string(sec.Value.Bytes()) != "slash value" || sec.Metadata.Tags["k"] != "v" {
		t.Fatalf("Get without the slash: %v", err)
	}
	if _, err := s.Describe(ctx, name); err != nil {
		t.Fatalf("Describe without the slash: %v", err)
	}
	md, err := s.Put(ctx, name, store.Text("second"), store.PutOptions{})
	if err != nil || md.Version != "2" {
		t.Fatalf("Put without the slash: version %s, %v (want 2: the same parameter)", md.Version, err)
	}
}

func TestAdvancedTier(t *testing.T) {
	s := newStore(t, proxy.URL, Options{Tier: TierAdvanced})
	ctx := ctxT(t)
	name := fmt.Sprintf("kf-adv-%d", time.Now().UnixNano())
	big := make([]byte, MaxAdvancedValueBytes)
	for i := range big {
		big[i] = 'a' + byte(i%26)
	}
	if _, err := s.Put(ctx, name, store.Text(string(big)), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, name)
	if err != nil || got.Value.Len() != MaxAdvancedValueBytes {
		t.Fatalf("Get: %v", err)
	}
	if _, err := s.Put(ctx, name, store.Text(string(big)+"x"), store.PutOptions{}); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("8,193 bytes: got %v, want ErrTooLarge", err)
	}
}
