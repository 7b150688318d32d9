package awsssm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/keyferry/keyferry/core/store"
)

// apiErr builds the error chain the SDK returns for an API error response.
func apiErr(status int, code, msg string, header http.Header) error {
	if header == nil {
		header = http.Header{}
	}
	resp := &smithyhttp.Response{Response: &http.Response{StatusCode: status, Header: header}}
	return &smithy.OperationError{ServiceID: "SSM", OperationName: "Op", Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{Response: resp, Err: &smithy.GenericAPIError{Code: code, Message: msg}},
		RequestID:     "req-1"}}
}

func TestMapError(t *testing.T) {
	cases := []struct {
		name  string
		err   error
		kind  error
		retry time.Duration
	}{
		{"parameter not found", apiErr(400, "ParameterNotFound", "Parameter /x not found.", nil), store.ErrNotFound, 0},
		{"version not found", apiErr(400, "ParameterVersionNotFound", "could not find version 99", nil), store.ErrNotFound, 0},
		{"tags of missing", apiErr(400, "InvalidResourceId", "Invalid Resource Id", nil), store.ErrNotFound, 0},
		{"exists", apiErr(400, "ParameterAlreadyExists", "The parameter already exists.", nil), store.ErrAlreadyExists, 0},
		{"throttling", apiErr(400, "ThrottlingException", "Rate exceeded", http.Header{"Retry-After": []string{"2"}}), store.ErrThrottled, 2 * time.Second},
		{"too many updates", apiErr(400, "TooManyUpdates", "concurrent updates", nil), store.ErrThrottled, 0},
		{"denied", apiErr(400, "AccessDeniedException", "No access to reserved parameter name: /aws/x.", nil), store.ErrPermissionDenied, 0},
		{"403 undecodable", apiErr(403, "403", "<ErrorResponse/>", nil), store.ErrPermissionDenied, 0},
		{"validation", apiErr(400, "ValidationException", "tags and overwrite can't be used together", nil), store.ErrInvalidValue, 0},
		{"bad key", apiErr(400, "InvalidKeyId", "bad key", nil), store.ErrInvalidValue, 0},
		{"too deep", apiErr(400, "HierarchyLevelLimitExceededException", "15 levels", nil), store.ErrInvalidName, 0},
		{"labelled oldest", apiErr(400, "ParameterMaxVersionLimitExceeded", "label", nil), store.ErrConflict, 0},
		{"server", apiErr(500, "InternalServerError", "boom", nil), store.ErrUnavailable, 0},
		{"max attempts", &smithy.OperationError{Err: &retry.MaxAttemptsError{Attempt: 10, Err: apiErr(400, "ThrottlingException", "x", nil)}}, store.ErrThrottled, 0},
		{"network", &smithy.OperationError{Err: &smithyhttp.RequestSendError{Err: &net.OpError{Op: "dial", Err: errors.New("refused")}}}, store.ErrUnavailable, 0},
		{"cancelled", fmt.Errorf("op: %w", context.DeadlineExceeded), store.ErrUnavailable, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := mapError(c.err)
			if !errors.Is(e, c.kind) {
				t.Fatalf("kind %v, want %v (%v)", e.Kind, c.kind, e)
			}
			if e.RetryAfter != c.retry {
				t.Errorf("RetryAfter %s, want %s", e.RetryAfter, c.retry)
			}
			if !errors.Is(e, c.err) {
				t.Error("the SDK error is not kept as the cause")
			}
		})
	}
}

func newTestStore(t *testing.T, opts Options) *Store {
	t.Helper()
	if opts.Name == "" {
		opts.Name = "ssm-test"
	}
	if opts.Client == nil {
		opts.Client = func(context.Context) (*ssm.Client, error) {
			t.Fatal("the client was built for a call that should have been refused")
			return nil, nil
		}
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNameRules(t *testing.T) {
	l := newTestStore(t, Options{}).Limits()
	deep := strings.Repeat("/l", MaxDepth)
	cases := []struct {
		label, name string
		ok          bool
	}{
		{"plain", "db-password", true},
		{"dots and underscores", "app.db_password-1", true},
		{"hierarchy", "/prod/db/password", true},
		{"one level with slash", "/password", true},
		{"15 levels", deep, true},
		{"16 levels", deep + "/x", false},
		{"slash not leading", "prod/db", false},
		{"trailing slash", "/prod/", false},
		{"double slash", "/prod//db", false},
		{"aws prefix", "awsdb", false},
		{"AWS prefix", "AWS-db", false},
		{"aWs prefix", "aWs.x", false},
		{"ssm prefix", "ssm_param", false},
		{"SsM prefix", "/SsM/param", false},
		{"/aws path", "/aws/service/x", false},
		{"aws deeper is fine", "/prod/aws/x", true},
		{"a", "a", true},
		{"aw", "aw", true},
		{"awx", "awx", true},
		{"as", "as", true},
		{"s", "s", true},
		{"ss", "ss", true},
		{"ssx", "ssx", true},
		{"sm", "sm", true},
		{"/aw", "/aw", true},
		{"digits", "0aws", true},
		{"space", "db password", false},
		{"colon", "db:1", false},
		{"unicode", "pässword", false},
		{"empty", "", false},
		{"longest", strings.Repeat("n", NameMaxLen), true},
		{"too long", strings.Repeat("n", NameMaxLen+1), false},
	}
	for _, c := range cases {
		t.Run(c.label, func(t *testing.T) {
			err := l.CheckName(c.name)
			if (err == nil) != c.ok {
				t.Fatalf("CheckName(%q) = %v, want ok=%v", c.name, err, c.ok)
			}
			if err != nil && !errors.Is(err, store.ErrInvalidName) {
				t.Fatalf("got %v, want ErrInvalidName", err)
			}
		})
	}
}

func TestTiers(t *testing.T) {
	for _, c := range []struct {
		tier string
		max  int
	}{{"", MaxStandardValueBytes}, {"Standard", MaxStandardValueBytes}, {"advanced", MaxAdvancedValueBytes}} {
		s := newTestStore(t, Options{Tier: c.tier})
		if got := s.Limits().MaxValueBytes; got != c.max {
			t.Errorf("tier %q: MaxValueBytes %d, want %d", c.tier, got, c.max)
		}
	}
	if _, err := New(Options{Name: "x", Tier: "Intelligent-Tiering", Client: func(context.Context) (*ssm.Client, error) { return nil, nil }}); err == nil {
		t.Error("an unknown tier was accepted")
	}
	if s := newTestStore(t, Options{}); s.opts.KMSKeyID != DefaultKMSKeyID {
		t.Errorf("default KMS key %q", s.opts.KMSKeyID)
	}
}

func TestRefusedBeforeAnyCall(t *testing.T) {
	s := newTestStore(t, Options{}) // its client builder fails the test if called
	ctx := context.Background()
	cases := []struct {
		name string
		call func() error
		kind error
	}{
		{"binary", func() error { _, err := s.Put(ctx, "ok", store.Binary([]byte{1, 2}), store.PutOptions{}); return err }, store.ErrInvalidValue},
		{"empty", func() error { _, err := s.Put(ctx, "ok", store.Text(""), store.PutOptions{}); return err }, store.ErrInvalidValue},
		{"standard tier too large", func() error {
			_, err := s.Put(ctx, "ok", store.Text(strings.Repeat("x", MaxStandardValueBytes+1)), store.PutOptions{})
			return err
		}, store.ErrTooLarge},
		{"multibyte counted in bytes", func() error {
			_, err := s.Put(ctx, "ok", store.Text(strings.Repeat("é", MaxStandardValueBytes/2+1)), store.PutOptions{})
			return err
		}, store.ErrTooLarge},
		{"tag characters", func() error {
			_, err := s.Put(ctx, "ok", store.Text("v"), store.PutOptions{Tags: map[string]string{"team": "a|b"}})
			return err
		}, store.ErrInvalidTags},
		{"aws: tag", func() error {
			_, err := s.Put(ctx, "ok", store.Text("v"), store.PutOptions{Tags: map[string]string{"AWS:x": "y"}})
			return err
		}, store.ErrInvalidTags},
		{"reserved name", func() error { _, err := s.Get(ctx, "ssm-param"); return err }, store.ErrInvalidName},
		{"version not a number", func() error { _, err := s.GetVersion(ctx, "ok", "latest"); return err }, store.ErrNotFound},
		{"version zero", func() error { _, err := s.GetVersion(ctx, "ok", "0"); return err }, store.ErrNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if !errors.Is(err, c.kind) {
				t.Fatalf("got %v, want %v", err, c.kind)
			}
			var se *store.Error
			if !errors.As(err, &se) || se.Store != "ssm-test" {
				t.Fatalf("error %v does not name the store", err)
			}
		})
	}
}

func TestCanonicalNames(t *testing.T) {
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"/db", "db", true},
		{"db", "db", true},
		{"/a/b", "a/b", false},
		{"/a/b", "/a/b", true},
		{"/db", "/db2", false},
	} {
		if got := sameParameter(c.a, c.b); got != c.same {
			t.Errorf("sameParameter(%q, %q) = %v", c.a, c.b, got)
		}
	}
}

func TestListFilters(t *testing.T) {
	f, none := listFilters(store.ListOptions{Prefix: "/prod/", Tags: map[string]string{"team": "pay", "empty": "", "bad": "x|y", "bad|key": "v"}})
	if none {
		t.Fatal("none")
	}
	var keys []string
	for _, x := range f {
		keys = append(keys, *x.Key+"="+strings.Join(x.Values, ","))
	}
	want := []string{"Name=/prod/", "tag:bad=x|y", "tag:empty=", "tag:team=pay"}
	if !slices.Equal(keys, want) {
		t.Errorf("filters %v, want %v (a key the API cannot take is left to the client-side check)", keys, want)
	}
	if _, none := listFilters(store.ListOptions{Prefix: "bad prefix"}); !none {
		t.Error("a prefix no name can start with should list nothing without a call")
	}
}

func TestTagDiff(t *testing.T) {
	have := map[string]string{"team": "a", "owner": "ops", store.KeyReplicaVersion: "3"}
	set, remove := tagDiff(have, map[string]string{"team": "a"}, false)
	if len(set) != 0 || !slices.Equal(remove, []string{store.KeyReplicaVersion}) {
		t.Errorf("Put diff: set %v remove %v", set, remove)
	}
	set, remove = tagDiff(have, map[string]string{"team": "b"}, true)
	if set["team"] != "b" || !slices.Equal(remove, []string{store.KeyReplicaVersion, "owner"}) {
		t.Errorf("exact diff: set %v remove %v", set, remove)
	}
}

func TestRetryer(t *testing.T) {
	r := Retry{MaxAttempts: 4, MaxBackoff: 30 * time.Millisecond}.Retryer()
	if r.MaxAttempts() != 4 {
		t.Errorf("MaxAttempts %d", r.MaxAttempts())
	}
	for code, want := range map[string]bool{"ThrottlingException": true, "TooManyUpdates": true, "ParameterNotFound": false,
		"ValidationException": false} {
		if got := r.IsErrorRetryable(apiErr(400, code, "x", nil)); got != want {
			t.Errorf("%s retryable = %v, want %v", code, got, want)
		}
	}
	if d, _ := r.RetryDelay(1, apiErr(400, "ThrottlingException", "x", http.Header{"Retry-After": []string{"5"}})); d != 30*time.Millisecond {
		t.Errorf("Retry-After delay %s, want the 30ms cap", d)
	}
}
