package gcpsm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/keyferry/keyferry/core/store"
)

func withRetryInfo(t *testing.T, c codes.Code, d time.Duration) error {
	t.Helper()
	st, err := status.New(c, "quota").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(d)})
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

// asSDK wraps a status error the way the gapic client returns it (gax converts to *apierror.APIError).
func asSDK(err error) error {
	if ae, ok := apierror.FromError(err); ok {
		return ae
	}
	return err
}

func TestClassify(t *testing.T) {
	disabled := accessPrecondition("latest")
	cases := []struct {
		name         string
		err          error
		precondition *store.Error
		kind         error
		retryAfter   time.Duration
		detail       string
	}{
		{"not found", status.Error(codes.NotFound, "Secret [projects/p/secrets/x] not found"), nil, store.ErrNotFound, 0, ""},
		{"already exists", status.Error(codes.AlreadyExists, "exists"), nil, store.ErrAlreadyExists, 0, ""},
		{"throttled with delay", withRetryInfo(t, codes.ResourceExhausted, 7*time.Second), nil, store.ErrThrottled, 7 * time.Second, "quota"},
		{"throttled via SDK error", asSDK(withRetryInfo(t, codes.ResourceExhausted, 3*time.Second)), nil, store.ErrThrottled, 3 * time.Second, "quota"},
		{"throttled without delay", status.Error(codes.ResourceExhausted, "quota"), nil, store.ErrThrottled, 0, "quota"},
		{"permission denied", status.Error(codes.PermissionDenied, "denied"), nil, store.ErrPermissionDenied, 0, ""},
		{"unauthenticated", status.Error(codes.Unauthenticated, "bad token"), nil, store.ErrPermissionDenied, 0, "refused"},
		{"unavailable", status.Error(codes.Unavailable, "down"), nil, store.ErrUnavailable, 0, ""},
		{"deadline", status.Error(codes.DeadlineExceeded, "slow"), nil, store.ErrUnavailable, 0, ""},
		{"context deadline", context.DeadlineExceeded, nil, store.ErrUnavailable, 0, "did not complete"},
		{"plain error", errors.New("dial tcp: refused"), nil, store.ErrUnavailable, 0, "did not complete"},
		{"aborted", status.Error(codes.Aborted, "etag"), nil, store.ErrConflict, 0, "changed by someone else"},
		{"disabled version", status.Error(codes.FailedPrecondition, "DISABLED"), disabled, store.ErrInvalidValue, 0, "disabled or destroyed"},
		{"precondition without context", status.Error(codes.FailedPrecondition, "etag"), nil, store.ErrConflict, 0, ""},
		{"invalid argument", status.Error(codes.InvalidArgument, "bad"), nil, store.ErrInvalidValue, 0, "invalid"},
		{"unimplemented", status.Error(codes.Unimplemented, "no"), nil, store.ErrUnsupported, 0, ""},
		{"data loss", status.Error(codes.DataLoss, "crc"), nil, store.ErrUnavailable, 0, ""},
	}
	s := &Store{opts: Options{Name: "gcp-unit"}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := s.fail(c.err, "get", "db-password", c.precondition)
			if !errors.Is(err, c.kind) {
				t.Fatalf("kind: got %v, want %v", err, c.kind)
			}
			var se *store.Error
			if !errors.As(err, &se) || se.Store != "gcp-unit" || se.Op != "get" || se.Name != "db-password" {
				t.Fatalf("error does not name store, op and secret: %#v", err)
			}
			if se.RetryAfter != c.retryAfter {
				t.Errorf("RetryAfter %s, want %s", se.RetryAfter, c.retryAfter)
			}
			if !strings.Contains(se.Detail, c.detail) {
				t.Errorf("detail %q does not say %q", se.Detail, c.detail)
			}
			if !errors.Is(err, c.err) {
				t.Errorf("the SDK error is not kept as the cause")
			}
			if got := store.IsRetryable(err); got != (c.kind == store.ErrThrottled || c.kind == store.ErrUnavailable) {
				t.Errorf("IsRetryable = %v", got)
			}
		})
	}
}

func TestLabelRules(t *testing.T) {
	cases := []struct {
		name string
		tags map[string]string
		ok   bool
	}{
		{"plain", map[string]string{"team": "payments", "env": "prod"}, true},
		{"empty value", map[string]string{"flag": ""}, true},
		{"digits, dash, underscore", map[string]string{"a1_b-2": "x_9-z"}, true},
		{"unicode lowercase and other letters", map[string]string{"équipe": "paiements", "秘密": "値"}, true},
		{"uppercase key", map[string]string{"Team": "payments"}, false},
		{"uppercase value", map[string]string{"team": "Payments"}, false},
		{"key starting with a digit", map[string]string{"1team": "x"}, false},
		{"key starting with underscore", map[string]string{"_team": "x"}, false},
		{"dot in key", map[string]string{"app.kubernetes.io": "x"}, false},
		{"slash in value", map[string]string{"path": "a/b"}, false},
		{"space in value", map[string]string{"owner": "jane doe"}, false},
		{"empty key", map[string]string{"": "x"}, false},
		{"63-character key", map[string]string{strings.Repeat("k", 63): "v"}, true},
		{"64-character key", map[string]string{strings.Repeat("k", 64): "v"}, false},
		{"64-character value", map[string]string{"k": strings.Repeat("v", 64)}, false},
		// 43 three-byte letters: 43 characters (within 63) but 129 bytes (over 128).
		{"value over 128 bytes", map[string]string{"k": strings.Repeat("値", 43)}, false},
		{"value of 126 bytes", map[string]string{"k": strings.Repeat("値", 42)}, true},
		{"reserved prefix", map[string]string{"keyferry-source-store": "x"}, false},
		{"64 labels", manyLabels(64), true},
		{"65 labels", manyLabels(65), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := checkTags(c.tags)
			if c.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !c.ok && !errors.Is(err, store.ErrInvalidTags) {
				t.Fatalf("got %v, want ErrInvalidTags", err)
			}
		})
	}
}

func manyLabels(n int) map[string]string {
	m := map[string]string{}
	for i := 0; i < n; i++ {
		m[fmt.Sprintf("l%d", i)] = "v"
	}
	return m
}

// Provenance lives in annotations, so it does not take room from the 64 labels.
func TestProvenanceDoesNotCountAgainstLabels(t *testing.T) {
	s, err := New(Options{Name: "gcp-unit", Project: "p"})
	if err != nil {
		t.Fatal(err)
	}
	prov := &store.Provenance{SourceStore: "a", SourceName: "b", SourceVersion: "c", Written: time.Now()}
	if err := s.checkPut("x", store.Text("v"), store.PutOptions{Tags: manyLabels(64), Provenance: prov}); err != nil {
		t.Fatalf("64 labels with provenance refused: %v", err)
	}
	big := &store.Provenance{SourceStore: "a", SourceName: strings.Repeat("n", 9000)}
	if err := s.checkPut("x", store.Text("v"), store.PutOptions{Provenance: big}); !errors.Is(err, store.ErrInvalidTags) {
		t.Fatalf("oversized provenance: %v", err)
	}
}

func TestNames(t *testing.T) {
	for name, ok := range map[string]bool{
		"db-password": true, "DB_Password_2": true, strings.Repeat("a", 255): true,
		"": false, strings.Repeat("a", 256): false, "prod/db": false, "a.b": false, "ünï": false, "a b": false,
	} {
		err := limits.CheckName(name)
		if ok != (err == nil) {
			t.Errorf("CheckName(%q) = %v", name, err)
		}
		if err != nil && !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("CheckName(%q) kind %v", name, err)
		}
	}
}

func TestDesiredAnnotations(t *testing.T) {
	cur := map[string]string{
		"owner":                 "infra",
		store.KeySourceStore:    "old",
		store.KeyReplicaVersion: "3",
		KeyBinary:               "1,3",
	}
	prov := &store.Provenance{SourceStore: "aws", SourceName: "n", ReplicaVersion: "5"}
	got := desiredAnnotations(cur, prov, 5)
	want := map[string]string{"owner": "infra", store.KeySourceStore: "aws", store.KeySourceName: "n",
		store.KeyReplicaVersion: "5", KeyBinary: "1,3,5"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	// No provenance: the record goes, foreign annotations and binary marks stay.
	got = desiredAnnotations(cur, nil, 0)
	want = map[string]string{"owner": "infra", KeyBinary: "1,3"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	// The marks keep the most recent 50.
	marks := map[string]string{}
	for i := int64(1); i <= 60; i++ {
		marks = desiredAnnotations(marks, nil, i)
	}
	if m := parseBinaryMarks(marks[KeyBinary]); len(m) != maxBinaryMarks || m[0] != 11 || m[len(m)-1] != 60 {
		t.Fatalf("marks %v", m)
	}
	if b := binaryVersions(map[string]string{KeyBinary: " 2, x,7,,-1"}); len(b) != 2 || !b[2] || !b[7] {
		t.Fatalf("tolerant parse: %v", b)
	}
}

func TestListFilter(t *testing.T) {
	cases := []struct {
		opts     store.ListOptions
		filter   string
		possible bool
	}{
		{store.ListOptions{}, "", true},
		{store.ListOptions{Prefix: "prod-db"}, `name:"prod-db"`, true},
		{store.ListOptions{Prefix: "p", Tags: map[string]string{"team": "pay", "env": ""}}, `name:"p" AND labels.env:* AND labels.team="pay"`, true},
		{store.ListOptions{Prefix: "prod/db"}, "", false},
		{store.ListOptions{Tags: map[string]string{"Team": "x"}}, "", false},
	}
	for _, c := range cases {
		f, ok := listFilter(c.opts)
		if f != c.filter || ok != c.possible {
			t.Errorf("listFilter(%+v) = %q, %v; want %q, %v", c.opts, f, ok, c.filter, c.possible)
		}
	}
}

func TestRetryer(t *testing.T) {
	s := RetrySettings{Initial: time.Millisecond, Max: 4 * time.Millisecond, Multiplier: 2, MaxAttempts: 3, MaxRetryAfter: time.Second}
	r := newRetryer(s)
	if d, ok := r.Retry(withRetryInfo(t, codes.ResourceExhausted, 200*time.Millisecond)); !ok || d < 200*time.Millisecond || d > 221*time.Millisecond {
		t.Fatalf("first throttle: %s %v, want the server's 200ms (+ <10%% jitter)", d, ok)
	}
	if d, ok := r.Retry(status.Error(codes.Unavailable, "down")); !ok || d > 2*time.Millisecond {
		t.Fatalf("unavailable: %s %v, want a backoff ≤ 2ms", d, ok)
	}
	if _, ok := r.Retry(status.Error(codes.Unavailable, "down")); ok {
		t.Fatal("a third failure with MaxAttempts 3 was retried")
	}
	for _, err := range []error{status.Error(codes.NotFound, "x"), status.Error(codes.FailedPrecondition, "x"),
		status.Error(codes.PermissionDenied, "x"), errors.New("plain")} {
		if _, ok := newRetryer(s).Retry(err); ok {
			t.Errorf("%v was retried", err)
		}
	}
	if _, ok := newRetryer(s).Retry(withRetryInfo(t, codes.ResourceExhausted, time.Minute)); ok {
		t.Error("a server delay beyond MaxRetryAfter was waited for")
	}
	if err := (RetrySettings{Initial: time.Second, Max: time.Millisecond, Multiplier: 2, MaxAttempts: 1}).validate(); err == nil {
		t.Error("Max < Initial accepted")
	}
}

func TestNewValidates(t *testing.T) {
	for _, o := range []Options{
		{Project: "p"},
		{Name: "n"},
		{Name: "n", Project: "Bad Project"},
		{Name: "n", Project: "p", Topics: []string{"topic-without-project"}},
		{Name: "n", Project: "p", Replication: Replication{Locations: []string{"Europe West"}}},
		{Name: "n", Project: "p", Retry: RetrySettings{Initial: time.Second}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
	s, err := New(Options{Name: "n", Project: "my-project-123", Topics: []string{"projects/p/topics/t"}})
	if err != nil || s.Type() != Type || s.Name() != "n" || s.client != nil {
		t.Fatalf("New: %v", err)
	}
}

func TestNamesFromResources(t *testing.T) {
	if got := secretID("projects/123456/secrets/db_pw"); got != "db_pw" {
		t.Errorf("secretID = %q", got)
	}
	if got := versionNumber("projects/123456/secrets/db_pw/versions/17"); got != 17 {
		t.Errorf("versionNumber = %d", got)
	}
	if got := versionNumber("projects/123456/secrets/db_pw"); got != 0 {
		t.Errorf("versionNumber without version = %d", got)
	}
}
