package vaultkv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/keyferry/keyferry/core/store"
)

func TestValueConvention(t *testing.T) {
	bin := []byte{0xff, 0x00, 0xfe, 'a'}
	cases := []struct {
		label string
		data  map[string]any
		want  store.Value
		ctype string
	}{
		{"text", map[string]any{"value": "hello"}, store.Text("hello"), ""},
		{"empty text", map[string]any{"value": ""}, store.Text(""), ""},
		{"base64-looking text stays text", map[string]any{"value": "aGVsbG8="}, store.Text("aGVsbG8="), ""},
		{"binary", map[string]any{"value": "/wD+YQ==", "encoding": "base64"}, store.Binary(bin), ""},
		{"empty binary", map[string]any{"value": "", "encoding": "base64"}, store.Binary(nil), ""},
		{"bad base64 is not decoded", map[string]any{"value": "not base64!", "encoding": "base64"},
			store.Text(`{"encoding":"base64","value":"not base64!"}`), ContentTypeJSON},
		{"unpadded base64 is not decoded", map[string]any{"value": "/wD+YQ", "encoding": "base64"},
			store.Text(`{"encoding":"base64","value":"/wD+YQ"}`), ContentTypeJSON},
		{"other encoding", map[string]any{"value": "x", "encoding": "hex"},
			store.Text(`{"encoding":"hex","value":"x"}`), ContentTypeJSON},
		{"foreign fields, sorted, no HTML escaping", map[string]any{"user": "app", "password": "p<&>", "port": json.Number("5432")},
			store.Text(`{"password":"p<&>","port":5432,"user":"app"}`), ContentTypeJSON},
		{"value plus extra field", map[string]any{"value": "v", "note": "n"}, store.Text(`{"note":"n","value":"v"}`), ContentTypeJSON},
		{"non-string value", map[string]any{"value": json.Number("7")}, store.Text(`{"value":7}`), ContentTypeJSON},
		{"nested", map[string]any{"b": map[string]any{"y": true, "x": nil}, "a": []any{"1"}},
			store.Text(`{"a":["1"],"b":{"x":null,"y":true}}`), ContentTypeJSON},
		{"empty map", map[string]any{}, store.Text(`{}`), ContentTypeJSON},
	}
	for _, c := range cases {
		t.Run(c.label, func(t *testing.T) {
			got, ctype, err := decodeValue(c.data)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(c.want) || ctype != c.ctype {
				t.Fatalf("decode %v = %s %q (%q), want %s %q (%q)", c.data, got.Kind(), got.Bytes(), ctype, c.want.Kind(), c.want.Bytes(), c.ctype)
			}
		})
	}
}

func TestValueRoundTrip(t *testing.T) {
	for _, v := range []store.Value{
		store.Text(""), store.Text("plain"), store.Text("aGVsbG8="), store.Text(`{"value":"x","encoding":"base64"}`),
		store.Text("<&> \u2028 \x00 \"q\""), store.Binary(nil), store.Binary([]byte{0xff, 0xfe, 0, 1}),
		store.Binary([]byte("looks like text")),
	} {
		// Through JSON, as Vault stores and returns it.
		js, err := json.Marshal(encodeValue(v))
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(strings.NewReader(string(js)))
		dec.UseNumber()
		var data map[string]any
		if err := dec.Decode(&data); err != nil {
			t.Fatal(err)
		}
		got, ctype, err := decodeValue(data)
		if err != nil || !got.Equal(v) || ctype != "" {
			t.Errorf("round trip of %s %q: got %s %q %q %v", v.Kind(), v.Bytes(), got.Kind(), got.Bytes(), ctype, err)
		}
	}
}

func TestNameRule(t *testing.T) {
	ok := []string{"a", "app/db/password", "A-b_c.d@e=f", ".hidden", "a..b", "x/.y", strings.Repeat("n", MaxNameLen)}
	bad := []string{"", "/a", "a/", "a//b", ".", "..", "a/../b", "a/./b", "...", "a b", "a+b", "a*", "ümlaut",
		"a\\b", "a?b", "a#b", "a%2F", strings.Repeat("n", MaxNameLen+1)}
	l := (&Store{}).Limits()
	for _, n := range ok {
		if err := l.CheckName(n); err != nil {
			t.Errorf("CheckName(%q) = %v, want ok", n, err)
		}
	}
	for _, n := range bad {
		if err := l.CheckName(n); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("CheckName(%q) = %v, want ErrInvalidName", n, err)
		}
	}
}

func TestStoredSize(t *testing.T) {
	fits := store.Text(strings.Repeat("x", MaxValueBytes))
	if err := checkStoredSize(fits, encodeValue(fits)); err != nil {
		t.Fatalf("the largest plain text is refused: %v", err)
	}
	bin := store.Binary(make([]byte, MaxValueBytes/4*3))
	if err := checkStoredSize(bin, encodeValue(bin)); err != nil {
		t.Fatalf("the largest binary is refused: %v", err)
	}
	// 200 KiB of control characters pass the declared limit but take 6 bytes each in JSON.
	escaped := store.Text(strings.Repeat("\x01", 200<<10))
	if err := limits.CheckValue(escaped); err != nil {
		t.Fatalf("declared limit: %v", err)
	}
	err := checkStoredSize(escaped, encodeValue(escaped))
	if !errors.Is(err, store.ErrTooLarge) || !strings.Contains(err.Error(), "JSON-escaped") {
		t.Fatalf("escaped text: got %v, want ErrTooLarge naming the JSON form", err)
	}
}

func TestCustomMetadataRules(t *testing.T) {
	many := map[string]string{}
	for i := 0; i < 65; i++ {
		many[fmt.Sprintf("k%d", i)] = "v"
	}
	cases := []struct {
		label string
		m     map[string]string
		ok    bool
	}{
		{"ok", map[string]string{"team": "payments", "note": "ünïcödé ok"}, true},
		{"64 entries", func() map[string]string { m := map[string]string{}; maps64(m); return m }(), true},
		{"65 entries", many, false},
		{"empty value", map[string]string{"k": ""}, false},
		{"key 129 bytes", map[string]string{strings.Repeat("k", 129): "v"}, false},
		{"key 128 bytes", map[string]string{strings.Repeat("k", 128): "v"}, true},
		{"key of 100 runes but 200 bytes", map[string]string{strings.Repeat("é", 100): "v"}, false},
		{"value 513 bytes", map[string]string{"k": strings.Repeat("v", 513)}, false},
		{"value of 300 runes but 600 bytes", map[string]string{"k": strings.Repeat("é", 300)}, false},
		{"newline in value", map[string]string{"k": "a\nb"}, false},
		{"tab in key", map[string]string{"a\tb": "v"}, false},
		{"invalid UTF-8", map[string]string{"k": "\xff"}, false},
	}
	for _, c := range cases {
		err := checkCustomMetadata(c.m)
		if c.ok && err != nil {
			t.Errorf("%s: %v", c.label, err)
		}
		if !c.ok && !errors.Is(err, store.ErrInvalidTags) {
			t.Errorf("%s: got %v, want ErrInvalidTags", c.label, err)
		}
	}
}

func maps64(m map[string]string) {
	for i := 0; i < 64; i++ {
		m[fmt.Sprintf("k%d", i)] = "v"
	}
}

func TestMapError(t *testing.T) {
	s := &Store{name: "v", mount: "secret"}
	resp := func(code int, msgs ...string) error {
		return &api.ResponseError{HTTPMethod: "GET", URL: "http://x/v1/secret/data/a", StatusCode: code, Errors: msgs}
	}
	cases := []struct {
		label string
		err   error
		kind  error
	}{
		{"404", resp(404), store.ErrNotFound},
		{"cas", fmt.Errorf("wrapped: %w", resp(400, "check-and-set parameter did not match the current version")), store.ErrConflict},
		{"custom metadata", resp(400, "custom_metadata validation failed: ..."), store.ErrInvalidTags},
		{"400", resp(400, "no data provided"), store.ErrInvalidValue},
		{"403", resp(403, "permission denied"), store.ErrPermissionDenied},
		{"401", resp(401), store.ErrPermissionDenied},
		{"405", resp(405), store.ErrUnsupported},
		{"429", resp(429, "rate limit quota exceeded"), store.ErrThrottled},
		{"412", resp(412), store.ErrUnavailable},
		{"500", resp(500), store.ErrUnavailable},
		{"503", resp(503, "Vault is sealed"), store.ErrUnavailable},
		{"network", errors.New(`Get "http://127.0.0.1:1/v1/x": dial tcp: connection refused`), store.ErrUnavailable},
		{"retries exhausted", errors.New("GET http://x giving up after 3 attempt(s)"), store.ErrUnavailable},
		{"cancelled", context.Canceled, store.ErrUnavailable},
		{"no token", fmt.Errorf("vault login: %w", errNoToken), store.ErrPermissionDenied},
		{"typed", &store.Error{Kind: store.ErrSoftDeleted}, store.ErrSoftDeleted},
	}
	for _, c := range cases {
		err := s.mapError(c.err, "get", "a", 3*time.Second)
		var se *store.Error
		if !errors.As(err, &se) || !errors.Is(err, c.kind) || se.Store != "v" || se.Op != "get" || se.Name != "a" {
			t.Errorf("%s: got %#v, want kind %v naming store, op and secret", c.label, err, c.kind)
		}
		if c.kind == store.ErrThrottled && se.RetryAfter != 3*time.Second {
			t.Errorf("429: RetryAfter %v, want 3s", se.RetryAfter)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for h, want := range map[string]time.Duration{
		"": 0, "0": 0, "2": 2 * time.Second, " 7 ": 7 * time.Second, "-1": 0, "soon": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
	} {
		if got := parseRetryAfter(h, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", h, got, want)
		}
	}
}

// fakeVault answers the few calls the unit tests make. status decides the answer to the n-th call of
// the metadata endpoint (1-based); 0 means 200 with a live secret.
type fakeVault struct {
	mountType, mountVersion string
	status                  func(n int64) (code int, retryAfter string)
	metaCalls, mountCalls   atomic.Int64
	other                   atomic.Int64
}

func (f *fakeVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch {
	case strings.HasPrefix(r.URL.Path, "/v1/sys/internal/ui/mounts/"):
		f.mountCalls.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{
			"type": f.mountType, "options": map[string]any{"version": f.mountVersion}, "path": "secret/"}})
	case strings.HasPrefix(r.URL.Path, "/v1/secret/metadata/"):
		n := f.metaCalls.Add(1)
		if f.status != nil {
			if code, ra := f.status(n); code != 0 {
				if ra != "" {
					w.Header().Set("Retry-After", ra)
				}
				w.WriteHeader(code)
				_, _ = fmt.Fprintf(w, `{"errors":["status %d"]}`, code)
				return
			}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{
			"current_version": 1, "created_time": "2026-01-02T03:04:05.123456789Z",
			"custom_metadata": map[string]any{"team": "a", store.KeySourceStore: "aws", store.KeySourceName: "x"},
			"versions":        map[string]any{"1": map[string]any{"created_time": "2026-01-02T03:04:05.123456789Z", "deletion_time": "", "destroyed": false}},
		}})
	default:
		f.other.Add(1)
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"errors":[]}`))
	}
}

func newFake(t *testing.T, f *fakeVault) *httptest.Server {
	t.Helper()
	if f.mountType == "" {
		f.mountType, f.mountVersion = "kv", "2"
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv
}

func TestDescribeAgainstFake(t *testing.T) {
	f := &fakeVault{}
	srv := newFake(t, f)
	st := newTestStore(t, "v", srv.URL, "tok", Retry{MaxRetries: -1})
	md, err := st.Describe(context.Background(), "a/b")
	if err != nil {
		t.Fatal(err)
	}
	if md.Name != "a/b" || md.Version != "1" || md.Tags["team"] != "a" || md.Provenance == nil ||
		md.Provenance.SourceStore != "aws" || md.Created.IsZero() || md.Updated.IsZero() {
		t.Fatalf("Describe = %+v", md)
	}
	if _, ok := md.Tags[store.KeySourceStore]; ok {
		t.Fatalf("provenance leaked into tags: %v", md.Tags)
	}
}

func TestClientIsLazyAndBuiltOnce(t *testing.T) {
	f := &fakeVault{}
	srv := newFake(t, f)
	var builds atomic.Int64
	fail := true
	st, err := New(Options{Name: "v", Client: func(ctx context.Context) (*api.Client, error) {
		builds.Add(1)
		if fail {
			return nil, errors.New("login refused")
		}
		c, err := newUnauthenticatedClient(ClientConfig{Address: srv.URL, Retry: Retry{MaxRetries: -1}})
		if err == nil {
			c.SetToken("tok")
		}
		return c, err
	}})
	if err != nil {
		t.Fatal(err)
	}
	if builds.Load() != 0 {
		t.Fatal("New built the client")
	}
	// A refused input never builds the client.
	if _, err := st.Put(context.Background(), "bad name", store.Text("v"), store.PutOptions{}); !errors.Is(err, store.ErrInvalidName) {
		t.Fatalf("Put(bad name) = %v", err)
	}
	if builds.Load() != 0 {
		t.Fatal("a refused Put built the client")
	}
	// A failed build is reported and tried again next time.
	if _, err := st.Describe(context.Background(), "a"); !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "login refused") {
		t.Fatalf("Describe with a failing builder = %v", err)
	}
	fail = false
	for i := 0; i < 3; i++ {
		if _, err := st.Describe(context.Background(), "a"); err != nil {
			t.Fatal(err)
		}
	}
	if b := builds.Load(); b != 2 {
		t.Fatalf("builder called %d times, want 2 (one failure, then once)", b)
	}
	if m := f.mountCalls.Load(); m != 1 {
		t.Fatalf("mount checked %d times, want once", m)
	}
}

func TestRefusesNonKV2Mount(t *testing.T) {
	f := &fakeVault{mountType: "kv", mountVersion: "1"}
	srv := newFake(t, f)
	st := newTestStore(t, "v", srv.URL, "tok", Retry{MaxRetries: -1})
	_, err := st.Put(context.Background(), "a", store.Text("v"), store.PutOptions{})
	if !errors.Is(err, store.ErrUnsupported) || !strings.Contains(err.Error(), "kv version 2") {
		t.Fatalf("Put into a KV v1 mount: got %v, want ErrUnsupported", err)
	}
	if n := f.other.Load() + f.metaCalls.Load(); n != 0 {
		t.Fatalf("%d calls went to the KV v1 mount", n)
	}
}

func TestNoTokenIsPermissionDenied(t *testing.T) {
	t.Setenv("VAULT_TOKEN", "")
	st, err := New(Options{Name: "v", Config: ClientConfig{Address: "http://127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.Describe(context.Background(), "a")
	if !errors.Is(err, store.ErrPermissionDenied) || !strings.Contains(err.Error(), "VAULT_TOKEN") {
		t.Fatalf("Describe without a token: got %v", err)
	}
}

func TestTokenFromEnv(t *testing.T) {
	f := &fakeVault{mountType: "kv", mountVersion: "2"}
	var seen atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Header.Get("X-Vault-Token"))
		f.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Setenv("VAULT_TOKEN", "from-env")
	st, err := New(Options{Name: "v", Config: ClientConfig{Address: srv.URL, Retry: Retry{MaxRetries: -1}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Describe(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	if got, _ := seen.Load().(string); got != "from-env" {
		t.Fatalf("token sent = %q, want the VAULT_TOKEN value", got)
	}
}

func TestRetriesThrottlingAndHonoursRetryAfter(t *testing.T) {
	// Two 429s with Retry-After: 1, then success.
	f := &fakeVault{status: func(n int64) (int, string) {
		if n <= 2 {
			return http.StatusTooManyRequests, "1"
		}
		return 0, ""
	}}
	srv := newFake(t, f)
	st := newTestStore(t, "v", srv.URL, "tok", Retry{MaxRetries: 3, MinWait: time.Millisecond, MaxWait: 2 * time.Millisecond})
	start := time.Now()
	if _, err := st.Describe(context.Background(), "a"); err != nil {
		t.Fatalf("Describe after two throttles: %v", err)
	}
	if n := f.metaCalls.Load(); n != 3 {
		t.Fatalf("metadata calls = %d, want 3", n)
	}
	// MinWait/MaxWait are milliseconds: only Retry-After explains two waits of a second.
	if waited := time.Since(start); waited < 1900*time.Millisecond {
		t.Fatalf("waited %v over two throttles with Retry-After: 1, want about 2s", waited)
	}
}

func TestThrottledAfterRetriesCarriesRetryAfter(t *testing.T) {
	f := &fakeVault{status: func(int64) (int, string) { return http.StatusTooManyRequests, "0" }}
	srv := newFake(t, f)
	st := newTestStore(t, "v", srv.URL, "tok", Retry{MaxRetries: 2, MinWait: time.Millisecond, MaxWait: time.Millisecond})
	_, err := st.Describe(context.Background(), "a")
	if !errors.Is(err, store.ErrThrottled) || !store.IsRetryable(err) {
		t.Fatalf("always throttled: got %v, want ErrThrottled", err)
	}
	if n := f.metaCalls.Load(); n != 3 {
		t.Fatalf("metadata calls = %d, want 1 + 2 retries", n)
	}

	f2 := &fakeVault{status: func(int64) (int, string) { return http.StatusTooManyRequests, "17" }}
	srv2 := newFake(t, f2)
	st2 := newTestStore(t, "v", srv2.URL, "tok", Retry{MaxRetries: -1})
	_, err = st2.Describe(context.Background(), "a")
	if ra, ok := store.RetryAfterOf(err); !ok || ra != 17*time.Second {
		t.Fatalf("RetryAfter of %v = %v, want 17s", err, ra)
	}
}

func TestServerErrorsAreRetriedThenUnavailable(t *testing.T) {
	f := &fakeVault{status: func(n int64) (int, string) {
		if n == 1 {
			return http.StatusInternalServerError, ""
		}
		return 0, ""
	}}
	srv := newFake(t, f)
	st := newTestStore(t, "v", srv.URL, "tok", Retry{MaxRetries: 2, MinWait: time.Millisecond, MaxWait: time.Millisecond})
	if _, err := st.Describe(context.Background(), "a"); err != nil {
		t.Fatalf("Describe after one 500: %v", err)
	}

	f2 := &fakeVault{status: func(int64) (int, string) { return http.StatusServiceUnavailable, "" }}
	srv2 := newFake(t, f2)
	st2 := newTestStore(t, "v", srv2.URL, "tok", Retry{MaxRetries: 1, MinWait: time.Millisecond, MaxWait: time.Millisecond})
	_, err := st2.Describe(context.Background(), "a")
	var re *api.ResponseError
	if !errors.Is(err, store.ErrUnavailable) || !errors.As(err, &re) || re.StatusCode != 503 {
		t.Fatalf("always 503: got %v, want ErrUnavailable wrapping the 503 response", err)
	}
	if n := f2.metaCalls.Load(); n != 2 {
		t.Fatalf("metadata calls = %d, want 2", n)
	}
}
