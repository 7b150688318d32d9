package azkv

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/keyferry/keyferry/core/store"
)

func TestValueEncoding(t *testing.T) {
	cases := []struct {
		name        string
		v           store.Value
		ct          string
		wantRaw     string
		wantCT      string
		wantUserCT  string
		wantErrKind error
	}{
		{"text", store.Text("hello"), "", "hello", "", "", nil},
		{"text keeps its content type", store.Text("{}"), "application/json", "{}", "application/json", "application/json", nil},
		{"base64-looking text stays text", store.Text("aGVsbG8="), "", "aGVsbG8=", "", "", nil},
		{"binary", store.Binary([]byte{0xff, 0}), "", "/wA=", "application/octet-stream; keyferry-encoding=base64", "application/octet-stream", nil},
		{"binary with content type", store.Binary([]byte("x")), "application/pkcs12", "eA==", "application/pkcs12; keyferry-encoding=base64", "application/pkcs12", nil},
		{"text may not carry the marker", store.Text("x"), "a; keyferry-encoding=base64", "", "", "", store.ErrInvalidValue},
		{"text content type over 255", store.Text("x"), strings.Repeat("c", 256), "", "", "", store.ErrInvalidValue},
		{"text content type of 255", store.Text("x"), strings.Repeat("c", 255), "x", strings.Repeat("c", 255), strings.Repeat("c", 255), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw, ct, err := encodeValue(c.v, c.ct)
			if c.wantErrKind != nil {
				if !errors.Is(err, c.wantErrKind) {
					t.Fatalf("err %v, want %v", err, c.wantErrKind)
				}
				return
			}
			if err != nil || raw != c.wantRaw || ct != c.wantCT {
				t.Fatalf("encode = %q, %q, %v; want %q, %q", raw, ct, err, c.wantRaw, c.wantCT)
			}
			back, userCT, err := decodeValue(raw, ct)
			if err != nil || !back.Equal(c.v) || userCT != c.wantUserCT {
				t.Fatalf("decode = %s, %q, %v; want the original value and %q", back, userCT, err, c.wantUserCT)
			}
		})
	}
	if _, _, err := decodeValue("%%%", "x"+BinaryContentTypeSuffix); err == nil {
		t.Fatal("a marked value that is not base64 decoded without error")
	}
}

func responseError(status int, body string, header http.Header) *azcore.ResponseError {
	if header == nil {
		header = http.Header{}
	}
	return &azcore.ResponseError{StatusCode: status, ErrorCode: "", RawResponse: &http.Response{
		StatusCode: status, Header: header, Body: io.NopCloser(bytes.NewReader([]byte(body))),
		Request: &http.Request{Method: http.MethodGet, URL: &url.URL{Scheme: "https", Host: "v", Path: "/secrets/x"}}}}
}

func TestErrorMapping(t *testing.T) {
	st, _ := New(Options{Name: "kv", VaultURL: "https://v.vault.azure.net"})
	body := func(code, inner, msg string) string {
		b := `{"error":{"code":"` + code + `","message":"` + msg + `"`
		if inner != "" {
			b += `,"innererror":{"code":"` + inner + `"}`
		}
		return b + `}}`
	}
	cases := []struct {
		name  string
		err   error
		kind  error
		retry time.Duration
	}{
		{"404", responseError(404, body("SecretNotFound", "", "A secret with (name/id) x was not found"), nil), store.ErrNotFound, 0},
		{"409 recoverable", responseError(409, body("Conflict", "ObjectIsDeletedButRecoverable", "deleted but recoverable"), nil), store.ErrSoftDeleted, 0},
		{"409 being deleted", responseError(409, body("Conflict", "ObjectIsBeingDeleted", "Secret is currently being deleted."), nil), store.ErrConflict, 0},
		{"409 other", responseError(409, body("Conflict", "", "conflict"), nil), store.ErrConflict, 0},
		{"429 retry-after-ms", responseError(429, body("Throttled", "", "too many"), http.Header{"Retry-After-Ms": {"250"}, "Retry-After": {"1"}}), store.ErrThrottled, 250 * time.Millisecond},
		{"429 retry-after", responseError(429, body("Throttled", "", "too many"), http.Header{"Retry-After": {"3"}}), store.ErrThrottled, 3 * time.Second},
		{"401", responseError(401, body("Unauthorized", "", "AKV10022: Invalid audience."), nil), store.ErrPermissionDenied, 0},
		{"403 rbac", responseError(403, body("Forbidden", "ForbiddenByRbac", "Caller is not authorized"), nil), store.ErrPermissionDenied, 0},
		{"403 disabled", responseError(403, body("Forbidden", "SecretDisabled", "Operation get is not allowed on a disabled secret."), nil), store.ErrConflict, 0},
		{"400 too large", responseError(400, body("BadParameter", "SecretTooLarge", "Secret is beyond the maximum permitted length"), nil), store.ErrTooLarge, 0},
		{"400 name", responseError(400, body("BadParameter", "", "The request URI contains an invalid name: a_b"), nil), store.ErrInvalidName, 0},
		{"400 other", responseError(400, body("BadParameter", "", "bad"), nil), store.ErrInvalidValue, 0},
		{"503", responseError(503, body("ServiceUnavailable", "", "later"), nil), store.ErrUnavailable, 0},
		{"transport", &url.Error{Op: "Get", URL: "https://v", Err: errors.New("connection refused")}, store.ErrUnavailable, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := st.fail("get", "x", c.err)
			if !errors.Is(err, c.kind) {
				t.Fatalf("%v: kind %v", err, c.kind)
			}
			if d, _ := store.RetryAfterOf(err); d != c.retry {
				t.Fatalf("RetryAfter %v, want %v", d, c.retry)
			}
			if !strings.Contains(err.Error(), `"x"`) || !strings.HasPrefix(err.Error(), "kv: get") {
				t.Fatalf("error %q does not name the store, op and secret", err)
			}
		})
	}
}

func TestShouldRetry(t *testing.T) {
	resp := func(status int, body string) *http.Response {
		return &http.Response{StatusCode: status, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body))}
	}
	cases := []struct {
		name string
		resp *http.Response
		err  error
		want bool
	}{
		{"transport error", nil, errors.New("reset"), true},
		{"429", resp(429, ""), nil, true},
		{"503", resp(503, ""), nil, true},
		{"409 being deleted", resp(409, `{"error":{"code":"Conflict","innererror":{"code":"ObjectIsBeingDeleted"}}}`), nil, true},
		{"409 being recovered", resp(409, `{"error":{"code":"Conflict","innererror":{"code":"ObjectIsBeingRecovered"}}}`), nil, true},
		{"409 deleted but recoverable", resp(409, `{"error":{"code":"Conflict","innererror":{"code":"ObjectIsDeletedButRecoverable"}}}`), nil, false},
		{"404", resp(404, ""), nil, false},
		{"401", resp(401, ""), nil, false},
	}
	for _, c := range cases {
		if got := shouldRetry(c.resp, c.err); got != c.want {
			t.Errorf("%s: shouldRetry = %v, want %v", c.name, got, c.want)
		}
	}
	// The body stays readable for the error the caller gets.
	r := resp(409, `{"error":{"code":"Conflict","innererror":{"code":"ObjectIsBeingDeleted"}}}`)
	shouldRetry(r, nil)
	if b, _ := io.ReadAll(r.Body); !strings.Contains(string(b), "ObjectIsBeingDeleted") {
		t.Fatal("shouldRetry consumed the response body")
	}
}
