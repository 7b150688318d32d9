package awssm

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

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
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
	return &smithy.OperationError{ServiceID: "Secrets Manager", OperationName: "Op", Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{Response: resp, Err: &smithy.GenericAPIError{Code: code, Message: msg}},
		RequestID:     "req-1"}}
}

func TestMapError(t *testing.T) {
	retryAfter1 := http.Header{"Retry-After": []string{"3"}}
	cases := []struct {
		name  string
		err   error
		kind  error
		retry time.Duration
		hint  string
	}{
		{"not found", apiErr(400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.", nil), store.ErrNotFound, 0, ""},
		{"exists", apiErr(400, "ResourceExistsException", "already exists", nil), store.ErrAlreadyExists, 0, ""},
		{"aws pending deletion", apiErr(400, "InvalidRequestException", "You can't perform this operation on the secret because it was marked for deletion.", nil), store.ErrSoftDeleted, 0, "restore"},
		{"aws create while scheduled", apiErr(400, "InvalidRequestException", "You can't create this secret because a secret with this name is already scheduled for deletion.", nil), store.ErrSoftDeleted, 0, "force-delete"},
		{"moto pending deletion", apiErr(400, "InvalidRequestException", "You tried to perform the operation on a secret that's currently marked deleted.", nil), store.ErrSoftDeleted, 0, "restore"},
		{"other invalid request", apiErr(400, "InvalidRequestException", "Operation not permitted on a replica secret.", nil), store.ErrConflict, 0, ""},
		{"throttling", apiErr(400, "ThrottlingException", "Rate exceeded", retryAfter1), store.ErrThrottled, 3 * time.Second, "rate"},
		{"throttling ms header", apiErr(400, "ThrottlingException", "Rate exceeded", http.Header{"X-Amz-Retry-After": []string{"1500"}}), store.ErrThrottled, 1500 * time.Millisecond, ""},
		{"too many requests", apiErr(429, "TooManyRequestsException", "slow down", nil), store.ErrThrottled, 0, ""},
		{"hard quota", apiErr(400, "LimitExceededException", "too many versions", nil), store.ErrThrottled, 0, "10 minutes"},
		{"access denied", apiErr(400, "AccessDeniedException", "not authorized", nil), store.ErrPermissionDenied, 0, "permissions"},
		{"bad token", apiErr(400, "UnrecognizedClientException", "The security token included in the request is invalid.", nil), store.ErrPermissionDenied, 0, ""},
		{"403 unknown code", apiErr(403, "403", "<ErrorResponse/>", nil), store.ErrPermissionDenied, 0, ""},
		{"kms", apiErr(400, "DecryptionFailure", "kms", nil), store.ErrPermissionDenied, 0, "KMS"},
		{"invalid parameter", apiErr(400, "InvalidParameterException", "bad", nil), store.ErrInvalidValue, 0, ""},
		{"server", apiErr(500, "InternalServiceError", "boom", nil), store.ErrUnavailable, 0, ""},
		{"max attempts", &smithy.OperationError{Err: &retry.MaxAttemptsError{Attempt: 10, Err: apiErr(400, "ThrottlingException", "Rate exceeded", retryAfter1)}}, store.ErrThrottled, 3 * time.Second, ""},
		{"network", &smithy.OperationError{Err: &smithyhttp.RequestSendError{Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}}, store.ErrUnavailable, 0, "endpoint"},
		{"cancelled", fmt.Errorf("op: %w", context.Canceled), store.ErrUnavailable, 0, ""},
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
			if c.hint != "" && !strings.Contains(e.Hint+e.Detail, c.hint) {
				t.Errorf("hint/detail %q lacks %q", e.Hint+" / "+e.Detail, c.hint)
			}
			if !errors.Is(e, c.err) {
				t.Errorf("the SDK error is not kept as the cause")
			}
		})
	}
}

func newTestStore(t *testing.T, opts Options) *Store {
	t.Helper()
	if opts.Name == "" {
		opts.Name = "aws-test"
	}
	if opts.Client == nil {
		opts.Client = func(context.Context) (*secretsmanager.Client, error) {
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
	s := newTestStore(t, Options{RefuseARNSuffixNames: true})
	lenient := newTestStore(t, Options{})
	cases := []struct {
		name     string
		ok       bool // with RefuseARNSuffixNames
		lenient  bool // with the default rule
		wantHint string
	}{
		{"prod/db/password", true, true, ""},
		{"a", true, true, ""},
		{"abcdef", true, true, ""},
		{"x+y=z.w@v_u-t", true, true, ""},
		{"app-config", false, true, "partial ARN"}, // ends in "-" + 6 characters
		{"db-secret", false, true, "partial ARN"},  // the rule bites common names too
		{"-abcdef", false, true, "partial ARN"},    // exactly the suffix
		{"app-configs", true, true, ""},            // 7 characters after the hyphen
		{"app-confi", true, true, ""},              // 5 characters after the hyphen
		{"prod/x-AbC123", false, true, "partial ARN"},
		{"", false, false, ""},
		{"with space", false, false, ""},
		{"colon:name", false, false, ""},
		{"ünïcode", false, false, ""},
		{strings.Repeat("a", NameMaxLen), true, true, ""},
		{strings.Repeat("a", NameMaxLen+1), false, false, ""},
	}
	for _, c := range cases {
		label := c.name
		if len(label) > 40 {
			label = fmt.Sprintf("%d characters", len(label))
		}
		t.Run(label, func(t *testing.T) {
			err := s.checkName("get", c.name)
			if (err == nil) != c.ok {
				t.Fatalf("strict rule: got %v, want ok=%v", err, c.ok)
			}
			if err != nil && !errors.Is(err, store.ErrInvalidName) {
				t.Fatalf("got %v, want ErrInvalidName", err)
			}
			if c.wantHint != "" && !strings.Contains(err.Error(), c.wantHint) {
				t.Errorf("error %q does not explain the rule (%q)", err, c.wantHint)
			}
			// The declared limits agree with the check, so the planner sees the same rule.
			if lerr := s.Limits().CheckName(c.name); (lerr == nil) != c.ok {
				t.Errorf("Limits().CheckName = %v, checkName = %v", lerr, err)
			}
			if err := lenient.checkName("get", c.name); (err == nil) != c.lenient {
				t.Errorf("default rule: got %v, want ok=%v", err, c.lenient)
			}
		})
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
		{"empty value", func() error { _, err := s.Put(ctx, "ok", store.Text(""), store.PutOptions{}); return err }, store.ErrInvalidValue},
		{"too large", func() error {
			_, err := s.Put(ctx, "ok", store.Binary(make([]byte, MaxValueBytes+1)), store.PutOptions{})
			return err
		}, store.ErrTooLarge},
		{"aws: tag", func() error {
			_, err := s.Put(ctx, "ok", store.Text("v"), store.PutOptions{Tags: map[string]string{"aws:team": "x"}})
			return err
		}, store.ErrInvalidTags},
		{"short recovery window", func() error {
			return s.Delete(ctx, "ok", store.DeleteOptions{RecoveryWindow: 3 * 24 * time.Hour})
		}, store.ErrInvalidValue},
		{"store's recovery window applies to a delete that names none", func() error {
			return newTestStore(t, Options{RecoveryWindow: 3 * 24 * time.Hour}).Delete(ctx, "ok", store.DeleteOptions{})
		}, store.ErrInvalidValue},
		{"long recovery window", func() error {
			return s.Delete(ctx, "ok", store.DeleteOptions{RecoveryWindow: 31 * 24 * time.Hour})
		}, store.ErrInvalidValue},
		{"staged without stages", func() error {
			_, err := s.PutStaged(ctx, "ok", "0123456789abcdef0123456789abcdef", store.Text("v"), nil)
			return err
		}, store.ErrInvalidValue},
		{"staged short id", func() error {
			_, err := s.PutStaged(ctx, "ok", "v1", store.Text("v"), []string{"AWSPENDING"})
			return err
		}, store.ErrInvalidValue},
		{"version id", func() error { _, err := s.GetVersion(ctx, "ok", "99999"); return err }, store.ErrNotFound},
		{"update metadata tags", func() error {
			return s.UpdateMetadata(ctx, "ok", map[string]string{"keyferry-x": "y"}, nil)
		}, store.ErrInvalidTags},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if !errors.Is(err, c.kind) {
				t.Fatalf("got %v, want %v", err, c.kind)
			}
			var se *store.Error
			if !errors.As(err, &se) || se.Store != "aws-test" || se.Name != "ok" && se.Name != "app-config" {
				t.Fatalf("error %v does not name the store and the secret", err)
			}
		})
	}
}

func TestTagDiff(t *testing.T) {
	have := map[string]string{"team": "a", "owner": "ops", "aws:cloudformation:stack-name": "s",
		store.KeySourceVersion: "1", store.KeyReplicaVersion: "r1"}
	want := map[string]string{"team": "b", store.KeySourceVersion: "2"}
	set, remove := tagDiff(have, want, false)
	if len(set) != 2 || set["team"] != "b" || set[store.KeySourceVersion] != "2" {
		t.Errorf("Put set %v", set)
	}
	if !slices.Equal(remove, []string{store.KeyReplicaVersion}) {
		t.Errorf("Put removes %v, want only the stale provenance key (never foreign or aws: tags)", remove)
	}
	_, remove = tagDiff(have, want, true)
	if !slices.Equal(remove, []string{store.KeyReplicaVersion, "owner"}) {
		t.Errorf("exact update removes %v, want every other key but aws: tags", remove)
	}
	set, remove = tagDiff(want, want, true)
	if len(set) != 0 || len(remove) != 0 {
		t.Errorf("no change should touch nothing: set %v remove %v", set, remove)
	}
}

func TestSortVersions(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e := func(id string, at time.Time, stages ...string) types.SecretVersionsListEntry {
		return types.SecretVersionsListEntry{VersionId: aws.String(id), CreatedDate: aws.Time(at), VersionStages: stages}
	}
	// Listing order is creation order (as moto lists); v1..v3 share one second.
	got := sortVersions([]types.SecretVersionsListEntry{
		e("v0", t0.Add(-time.Hour)), e("v1", t0), e("v2", t0, "AWSPREVIOUS"), e("v3", t0, "AWSCURRENT"),
	})
	var ids []string
	for _, v := range got {
		ids = append(ids, v.Version)
	}
	if !slices.Equal(ids, []string{"v3", "v2", "v1", "v0"}) {
		t.Fatalf("order %v, want newest first", ids)
	}
	if !slices.Equal(got[0].Stages, []string{"AWSCURRENT"}) || !got[0].Enabled {
		t.Errorf("first %+v", got[0])
	}
}

func TestListFilters(t *testing.T) {
	f, none := listFilters(store.ListOptions{Prefix: "prod/", Tags: map[string]string{"team": "pay", "odd": "a|b"}})
	if none || len(f) != 3 {
		t.Fatalf("filters %+v none=%v", f, none)
	}
	if f[0].Key != types.FilterNameStringTypeName || f[0].Values[0] != "prod/" {
		t.Errorf("name filter %+v", f[0])
	}
	if !slices.Equal(f[1].Values, []string{"odd", "team"}) || !slices.Equal(f[2].Values, []string{"pay"}) {
		t.Errorf("tag filters %+v %+v (a value the API cannot take is left to the client-side check)", f[1], f[2])
	}
	if _, none := listFilters(store.ListOptions{Prefix: "no spaces"}); !none {
		t.Error("a prefix no name can start with should list nothing without a call")
	}
}

func TestRetryer(t *testing.T) {
	r := Retry{MaxAttempts: 5, MaxBackoff: 50 * time.Millisecond}.Retryer()
	if r.MaxAttempts() != 5 {
		t.Errorf("MaxAttempts %d", r.MaxAttempts())
	}
	if r.IsErrorRetryable(apiErr(400, "LimitExceededException", "quota", nil)) {
		t.Error("LimitExceededException is retried: it is a hard quota")
	}
	if !r.IsErrorRetryable(apiErr(400, "ThrottlingException", "Rate exceeded", nil)) {
		t.Error("ThrottlingException is not retried")
	}
	if r.IsErrorRetryable(apiErr(400, "ResourceNotFoundException", "x", nil)) {
		t.Error("ResourceNotFoundException is retried")
	}
	// Retry-After lengthens the wait, but never past MaxBackoff.
	d, err := r.RetryDelay(1, apiErr(400, "ThrottlingException", "x", http.Header{"Retry-After": []string{"1"}}))
	if err != nil || d != 50*time.Millisecond {
		t.Errorf("delay with Retry-After: %s %v, want the 50ms cap", d, err)
	}
	long := Retry{MaxBackoff: 20 * time.Second}.Retryer()
	d, _ = long.RetryDelay(1, apiErr(400, "ThrottlingException", "x", http.Header{"X-Amz-Retry-After": []string{"2500"}}))
	if d < 2500*time.Millisecond {
		t.Errorf("delay %s ignores x-amz-retry-after 2500ms", d)
	}
	if def := (Retry{}).Retryer(); def.MaxAttempts() != DefaultMaxAttempts {
		t.Errorf("default MaxAttempts %d", def.MaxAttempts())
	}
}

func TestNewRefusesIncompleteOptions(t *testing.T) {
	if _, err := New(Options{Client: func(context.Context) (*secretsmanager.Client, error) { return nil, nil }}); err == nil {
		t.Error("New without a name succeeded")
	}
	if _, err := New(Options{Name: "x"}); err == nil {
		t.Error("New without a client builder succeeded")
	}
}

func TestClientBuiltLazilyOnceAndRetriedAfterFailure(t *testing.T) {
	builds := 0
	s, err := New(Options{Name: "lazy", Client: func(context.Context) (*secretsmanager.Client, error) {
		builds++
		if builds == 1 {
			return nil, errors.New("no credentials yet")
		}
		return secretsmanager.New(secretsmanager.Options{Region: "us-east-1"}), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if builds != 0 {
		t.Fatal("New built the client")
	}
	if _, err := s.client(context.Background()); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("failed build: %v", err)
	}
	for i := 0; i < 3; i++ {
		if _, err := s.client(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if builds != 2 {
		t.Errorf("client built %d times, want 2 (one failure, then cached)", builds)
	}
}

func TestNewVersionID(t *testing.T) {
	a, b := newVersionID(), newVersionID()
	if len(a) != 36 || a == b || a[14] != '4' {
		t.Errorf("version ids %q %q", a, b)
	}
	if checkVersionID(a) != nil {
		t.Errorf("own version id %q refused", a)
	}
}

func TestStrictSuffixRuleRefusedBeforeAnyCall(t *testing.T) {
	strict := newTestStore(t, Options{RefuseARNSuffixNames: true}) // its client builder fails the test if called
	if _, err := strict.Get(context.Background(), "app-config"); !errors.Is(err, store.ErrInvalidName) {
		t.Fatalf("Get(app-config) with RefuseARNSuffixNames: got %v, want ErrInvalidName", err)
	}
}
