package azkv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyferry/keyferry/core/store"
	"github.com/keyferry/keyferry/core/store/storetest"
	kvemu "github.com/keyferry/keyferry/localtest/azkv"
	"github.com/keyferry/keyferry/localtest/fault"
	"github.com/keyferry/keyferry/localtest/oidc"
)

// fastRetry keeps the SDK's retries but shortens its backoff for tests.
var fastRetry = RetryOptions(10, 5*time.Millisecond, 200*time.Millisecond)

type vault struct {
	iss    *oidc.Issuer
	srv    *kvemu.Server
	faults *fault.Layer
}

func startVault(t *testing.T, transition time.Duration) *vault {
	t.Helper()
	iss, err := oidc.Start(oidc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = iss.Close() })
	faults := fault.New(1, 11)
	srv, err := kvemu.Start(kvemu.Options{Issuer: iss, Faults: faults, TransitionDelay: transition})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return &vault{iss: iss, srv: srv, faults: faults}
}

// managedIdentityStore is the production path: the managed-identity credential (IDENTITY_ENDPOINT /
// IDENTITY_HEADER pointing at the local issuer) and a client built on first use.
func (v *vault) managedIdentityStore(t *testing.T, name string, built *atomic.Int32) *Store {
	t.Helper()
	for k, val := range v.iss.ManagedIdentityEnv() {
		t.Setenv(k, val)
	}
	st, err := New(Options{Name: name, VaultURL: v.srv.URL(), PollInterval: 20 * time.Millisecond, PollTimeout: 20 * time.Second,
		Client: func(context.Context) (*azsecrets.Client, error) {
			if built != nil {
				built.Add(1)
			}
			// A user-assigned client id unique to this issuer: MSAL caches managed-identity tokens
			// process-wide, keyed by identity.
			return ManagedIdentityClient(v.srv.URL(), v.iss.ClientID(), &ClientOptions{Transport: v.srv.HTTPClient(), Retry: &fastRetry})
		}})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// tokenCred hands out tokens minted by the issuer with extra claims (e.g. a wrong audience).
type tokenCred struct {
	iss    *oidc.Issuer
	claims map[string]any
}

func (c tokenCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	claims := c.iss.ManagedIdentityClaims(kvemu.Resource)
	for k, v := range c.claims {
		claims[k] = v
	}
	tok, err := c.iss.Mint(claims)
	return azcore.AccessToken{Token: tok, ExpiresOn: time.Now().Add(time.Hour)}, err
}

func (v *vault) credStore(t *testing.T, name, vaultURL string, cred azcore.TokenCredential) *Store {
	t.Helper()
	st, err := New(Options{Name: name, VaultURL: vaultURL, PollInterval: 20 * time.Millisecond, PollTimeout: 20 * time.Second,
		Client: func(context.Context) (*azsecrets.Client, error) {
			return NewClient(vaultURL, cred, &ClientOptions{Transport: v.srv.HTTPClient(), Retry: &fastRetry})
		}})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func freeLoopbackURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return "https://" + addr
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestContract(t *testing.T) {
	v := startVault(t, 150*time.Millisecond) // delete, recover and purge complete asynchronously
	st := v.managedIdentityStore(t, "azure-test", nil)
	storetest.Run(t, storetest.Harness{
		Store:            st,
		Calls:            v.faults.Calls,
		ValueReadAPIs:    []string{"keyvault:GetSecret"},
		ListAPIs:         []string{"keyvault:ListSecrets", "keyvault:ListSecretVersions"},
		ServerPaging:     true,
		SoftDelete:       true,
		DeleteBlocksName: true,
		Logs:             func() string { return v.srv.Logs() + v.iss.Logs() },
		Unreachable: func() store.Store {
			return v.credStore(t, "azure-test", freeLoopbackURL(t), tokenCred{iss: v.iss})
		},
		Denied: func() store.Store {
			return v.credStore(t, "azure-test", v.srv.URL(), tokenCred{iss: v.iss, claims: map[string]any{"aud": "https://management.azure.com/"}})
		},
		Throttle: func(on bool) {
			if on {
				v.faults.SetRules(fault.Rule{API: "keyvault:*", Throttle: 1, RetryAfter: 5 * time.Millisecond})
			} else {
				v.faults.SetRules()
			}
		},
	})
}

// TestPutsUnderThrottling: 500 puts with 20% of all calls throttled complete without a failure, and
// the fault counters show the retries.
func TestPutsUnderThrottling(t *testing.T) {
	v := startVault(t, 0)
	var built atomic.Int32
	st := v.managedIdentityStore(t, "azure-throttled", &built)
	v.faults.SetRules(fault.Rule{API: "keyvault:*", Throttle: 0.2, RetryAfter: 5 * time.Millisecond})

	const puts, workers = 500, 8
	jobs := make(chan int)
	var failures atomic.Int32
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				name := fmt.Sprintf("throttled-%03d", i%100) // 100 secrets, 5 versions each
				if _, err := st.Put(ctxT(t), name, store.Text(fmt.Sprintf("value-%d", i)), store.PutOptions{}); err != nil {
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

	if n := failures.Load(); n != 0 {
		t.Fatalf("%d of %d puts failed; first: %v", n, puts, firstErr.Load())
	}
	calls := v.faults.Count("keyvault:SetSecret")
	injected := v.faults.InjectedCount("keyvault:SetSecret")
	challenges := v.srv.StatusCount(http.StatusUnauthorized)
	t.Logf("%d puts: %d SetSecret calls, %d throttles injected and retried, %d auth challenges", puts, calls, injected, challenges)
	if injected == 0 {
		t.Fatal("no throttling was injected: the test proves nothing")
	}
	if got := v.srv.StatusCount(http.StatusOK); got != puts {
		t.Fatalf("%d successful SetSecret responses, want %d", got, puts)
	}
	if calls != puts+injected+challenges {
		t.Fatalf("calls %d != puts %d + retried throttles %d + challenges %d", calls, puts, injected, challenges)
	}
	if challenges < 1 || challenges > workers {
		t.Fatalf("%d challenges, want between 1 and %d (one per concurrent first request)", challenges, workers)
	}
	if built.Load() != 1 {
		t.Fatalf("client built %d times, want once", built.Load())
	}
}

func TestClientIsBuiltLazilyAndOnce(t *testing.T) {
	var builds atomic.Int32
	fail := true
	st, err := New(Options{Name: "lazy", Client: func(context.Context) (*azsecrets.Client, error) {
		builds.Add(1)
		if fail {
			return nil, errors.New("no identity yet")
		}
		return azsecrets.NewClient("https://127.0.0.1:1", tokenCred{}, nil)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if builds.Load() != 0 {
		t.Fatal("New built the client")
	}
	_, err = st.Describe(ctxT(t), "x")
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "no identity yet") {
		t.Fatalf("builder failure: %v", err)
	}
	fail = false
	for i := 0; i < 3; i++ {
		_, _ = st.Get(ctxT(t), "bad name") // refused before the client is needed
	}
	if builds.Load() != 1 {
		t.Fatalf("builds %d, want 1 (a refused name needs no client)", builds.Load())
	}
	c1, err := st.client(ctxT(t), "get", "x")
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := st.client(ctxT(t), "get", "x")
	if c1 != c2 || builds.Load() != 2 {
		t.Fatalf("builds %d: a failed build must be retried once, then the client cached", builds.Load())
	}
}

func TestNewValidatesOptions(t *testing.T) {
	for _, o := range []Options{
		{VaultURL: "https://v.vault.azure.net"},
		{Name: "x"},
		{Name: "x", VaultURL: "http://v.vault.azure.net"},
		{Name: "x", VaultURL: "v.vault.azure.net"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
	if _, err := New(Options{Name: "x", VaultURL: "https://v.vault.azure.net"}); err != nil {
		t.Fatalf("production options: %v", err)
	}
}

func TestVersionsWithinOneSecondFollowWriteOrder(t *testing.T) {
	v := startVault(t, 0)
	st := v.managedIdentityStore(t, "azure-order", nil)
	var want []string
	for i := 0; i < 5; i++ {
		md, err := st.Put(ctxT(t), "rapid", store.Text(fmt.Sprint("v", i)), store.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want = append([]string{md.Version}, want...)
	}
	var got []string
	for vi, err := range st.Versions(ctxT(t), "rapid") {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, vi.Version)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("Versions %v, want newest first %v", got, want)
	}
	md, err := st.Describe(ctxT(t), "rapid")
	if err != nil || md.Version != want[0] {
		t.Fatalf("Describe version %q (%v), want %q", md.Version, err, want[0])
	}
	// Another Store (no write log) still gets every version, newest second first.
	other := v.credStore(t, "azure-order", v.srv.URL(), tokenCred{iss: v.iss})
	n := 0
	for _, err := range other.Versions(ctxT(t), "rapid") {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 5 {
		t.Fatalf("%d versions, want 5", n)
	}
}

func TestDescribeAndListCost(t *testing.T) {
	v := startVault(t, 0)
	st := v.managedIdentityStore(t, "azure-cost", nil)
	for i := 0; i < 30; i++ {
		if _, err := st.Put(ctxT(t), "many", store.Text(fmt.Sprint(i)), store.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 5; i++ {
		if _, err := st.Put(ctxT(t), fmt.Sprintf("cost-%d", i), store.Text("x"), store.PutOptions{Tags: map[string]string{"n": fmt.Sprint(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	before := v.faults.Calls()
	md, err := st.Describe(ctxT(t), "many")
	if err != nil {
		t.Fatal(err)
	}
	after := v.faults.Calls()
	if d := after["keyvault:ListSecretVersions"] - before["keyvault:ListSecretVersions"]; d != 2 {
		t.Fatalf("Describe of 30 versions made %d version-list calls, want 2 (25 per page)", d)
	}
	if after["keyvault:GetSecret"] != before["keyvault:GetSecret"] {
		t.Fatal("Describe read the value")
	}
	if md.Created.After(md.Updated) || md.Version == "" {
		t.Fatalf("Describe: created %v updated %v version %q", md.Created, md.Updated, md.Version)
	}

	before = v.faults.Calls()
	var names []string
	for md, err := range st.List(ctxT(t), store.ListOptions{Prefix: "COST-", PageSize: 2, Tags: map[string]string{"n": "3"}}) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, md.Name)
	}
	after = v.faults.Calls()
	if len(names) != 1 || names[0] != "cost-3" {
		t.Fatalf("List(prefix COST-, tag n=3) = %v", names)
	}
	if d := after["keyvault:ListSecrets"] - before["keyvault:ListSecrets"]; d != 3 { // 6 secrets, 2 per page
		t.Fatalf("List made %d calls with page size 2 over 6 secrets, want 3", d)
	}
}

func TestPutRefusesBeforeAnyCall(t *testing.T) {
	v := startVault(t, 0)
	st := v.managedIdentityStore(t, "azure-limits", nil)
	prov := &store.Provenance{SourceStore: "a", SourceName: "b", SourceVersion: "c", ReplicaVersion: "d", Written: time.Now()}
	tags := map[string]string{}
	for i := 0; i < 11; i++ {
		tags[fmt.Sprint("t", i)] = "v"
	}
	cases := map[string]struct {
		v    store.Value
		opts store.PutOptions
		kind error
	}{
		"11 tags + 5 provenance entries": {store.Text("v"), store.PutOptions{Tags: tags, Provenance: prov}, store.ErrInvalidTags},
		"marker in a text content type":  {store.Text("v"), store.PutOptions{ContentType: "text/plain; keyferry-encoding=base64"}, store.ErrInvalidValue},
		"content type too long":          {store.Text("v"), store.PutOptions{ContentType: strings.Repeat("c", 256)}, store.ErrInvalidValue},
		"binary content type too long":   {store.Binary([]byte{1}), store.PutOptions{ContentType: strings.Repeat("c", 230)}, store.ErrInvalidValue},
	}
	for label, c := range cases {
		before := v.faults.Count("*")
		_, err := st.Put(ctxT(t), "limits", c.v, c.opts)
		if !errors.Is(err, c.kind) {
			t.Errorf("%s: %v, want %v", label, err, c.kind)
		}
		var se *store.Error
		if !errors.As(err, &se) || se.Store != "azure-limits" || se.Name != "limits" {
			t.Errorf("%s: error does not name the store and secret: %v", label, err)
		}
		if v.faults.Count("*") != before {
			t.Errorf("%s: refused after a call went out", label)
		}
	}
	delete(tags, "t0")
	if _, err := st.Put(ctxT(t), "limits", store.Text("v"), store.PutOptions{Tags: tags, Provenance: prov}); err != nil {
		t.Fatalf("10 tags + 5 provenance entries: %v", err)
	}
}

func TestDisabledVersionAndStateErrors(t *testing.T) {
	v := startVault(t, 0)
	st := v.managedIdentityStore(t, "azure-states", nil)
	md, err := st.Put(ctxT(t), "switch", store.Text("on"), store.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := st.client(ctxT(t), "test", "")
	if err != nil {
		t.Fatal(err)
	}
	f := false
	if _, err := c.UpdateSecretProperties(ctxT(t), "switch", md.Version,
		azsecrets.UpdateSecretPropertiesParameters{SecretAttributes: &azsecrets.SecretAttributes{Enabled: &f}}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = st.Get(ctxT(t), "switch")
	if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "disabled") {
		t.Fatalf("Get of a disabled version: %v", err)
	}
	if strings.Count(err.Error(), "\n") > 0 {
		t.Fatalf("error is not one line: %q", err)
	}
	var se *ServiceError
	if !errors.As(err, &se) || se.InnerCode != "SecretDisabled" {
		t.Fatalf("cause %v", err)
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 403 {
		t.Fatal("the SDK's ResponseError is not reachable with errors.As")
	}
	vs := 0
	for vi, err := range st.Versions(ctxT(t), "switch") {
		if err != nil || vi.Enabled {
			t.Fatalf("Versions: %+v %v", vi, err)
		}
		vs++
	}
	if vs != 1 {
		t.Fatalf("%d versions", vs)
	}
	if err := st.Recover(ctxT(t), "switch"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Recover of a live secret: %v, want ErrNotFound", err)
	}
	if err := st.Purge(ctxT(t), "switch"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Purge of a live secret: %v, want ErrNotFound", err)
	}
	if _, err := st.GetVersion(ctxT(t), "switch", ""); !errors.Is(err, store.ErrInvalidValue) {
		t.Fatalf("GetVersion with no version: %v", err)
	}
	if err := st.UpdateMetadata(ctxT(t), "nothing-here", nil, nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateMetadata of a missing secret: %v", err)
	}
}

func TestBinaryStoredWithMarker(t *testing.T) {
	v := startVault(t, 0)
	st := v.managedIdentityStore(t, "azure-bin", nil)
	data := []byte{0xff, 0x00, 0xfe, 'k', 'f'}
	md, err := st.Put(ctxT(t), "blob", store.Binary(data), store.PutOptions{ContentType: "application/pkcs12"})
	if err != nil {
		t.Fatal(err)
	}
	if !md.Binary || md.ContentType != "application/pkcs12" {
		t.Fatalf("Put metadata: binary %v content type %q", md.Binary, md.ContentType)
	}
	// What another Key Vault client sees: base64 text and the marked content type.
	c, _ := st.client(ctxT(t), "test", "")
	raw, err := c.GetSecret(ctxT(t), "blob", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *raw.Value != "/wD+a2Y=" || *raw.ContentType != "application/pkcs12"+BinaryContentTypeSuffix {
		t.Fatalf("stored as %q with content type %q", *raw.Value, *raw.ContentType)
	}
	d, err := st.Describe(ctxT(t), "blob")
	if err != nil || !d.Binary || d.ContentType != "application/pkcs12" {
		t.Fatalf("Describe: %+v %v", d, err)
	}
	// A marked value that is not base64 is reported, not returned as garbage.
	if _, err := c.SetSecret(ctxT(t), "corrupt", azsecrets.SetSecretParameters{Value: ptr("not base64!"),
		ContentType: ptr(DefaultBinaryContentType + BinaryContentTypeSuffix)}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctxT(t), "corrupt"); !errors.Is(err, store.ErrInvalidValue) {
		t.Fatalf("Get of a corrupt binary value: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

// TestAsyncTransitionsAreWaitedOut: Delete returns only once the deleted secret is visible, Recover
// only once the secret is readable again, and a write right after a purge waits until the service
// releases the name (409 ObjectIsBeingDeleted is retried).
func TestAsyncTransitionsAreWaitedOut(t *testing.T) {
	v := startVault(t, 300*time.Millisecond)
	st := v.managedIdentityStore(t, "azure-async", nil)
	if _, err := st.Put(ctxT(t), "phoenix", store.Text("first"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	c, _ := st.client(ctxT(t), "test", "")

	if err := st.Delete(ctxT(t), "phoenix", store.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetDeletedSecret(ctxT(t), "phoenix", nil); err != nil {
		t.Fatalf("Delete returned before the deleted secret was visible: %v", err)
	}
	if err := st.Recover(ctxT(t), "phoenix"); err != nil {
		t.Fatal(err)
	}
	sec, err := st.Get(ctxT(t), "phoenix")
	if err != nil || string(sec.Value.Bytes()) != "first" {
		t.Fatalf("Get right after Recover: %v", err)
	}

	if err := st.Delete(ctxT(t), "phoenix", store.DeleteOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	conflicts := v.srv.StatusCount(http.StatusConflict)
	if _, err := st.Put(ctxT(t), "phoenix", store.Text("second"), store.PutOptions{}); err != nil {
		t.Fatalf("Put after a forced delete: %v", err)
	}
	if v.srv.StatusCount(http.StatusConflict) == conflicts {
		t.Fatal("the service never blocked the name after the purge: the retry path was not exercised")
	}
	sec, err = st.Get(ctxT(t), "phoenix")
	if err != nil || string(sec.Value.Bytes()) != "second" {
		t.Fatalf("Get after re-create: %v", err)
	}
	n := 0
	for _, err := range st.Versions(ctxT(t), "phoenix") {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("%d versions after purge and re-create, want 1", n)
	}
}

func TestForceDeletePurgesAnAlreadyDeletedSecret(t *testing.T) {
	v := startVault(t, 0)
	st := v.managedIdentityStore(t, "azure-force", nil)
	if _, err := st.Put(ctxT(t), "leftover", store.Text("x"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctxT(t), "leftover", store.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctxT(t), "leftover", store.DeleteOptions{Force: true}); err != nil {
		t.Fatalf("forced delete of a soft-deleted secret: %v", err)
	}
	if _, err := st.Put(ctxT(t), "leftover", store.Text("y"), store.PutOptions{}); err != nil {
		t.Fatalf("the name is still blocked: %v", err)
	}
	if err := st.Delete(ctxT(t), "never-was", store.DeleteOptions{Force: true}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("forced delete of a missing secret: %v, want ErrNotFound", err)
	}
}
