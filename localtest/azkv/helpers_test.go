package azkv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyferry/keyferry/localtest/fault"
	"github.com/keyferry/keyferry/localtest/oidc"
)

type env struct {
	iss *oidc.Issuer
	srv *Server
}

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	iss, err := oidc.Start(oidc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = iss.Close() })
	opts.Issuer = iss
	if opts.Faults == nil {
		opts.Faults = fault.New(1, 7)
	}
	srv, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return &env{iss: iss, srv: srv}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// mintCred is a TokenCredential handing out tokens minted by the issuer with extra claims.
type mintCred struct {
	iss    *oidc.Issuer
	claims map[string]any
}

func (c mintCred) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	claims := c.iss.ManagedIdentityClaims(Resource)
	for k, v := range c.claims {
		claims[k] = v
	}
	tok, err := c.iss.Mint(claims)
	if err != nil {
		return azcore.AccessToken{}, err
	}
	return azcore.AccessToken{Token: tok, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// client returns an azsecrets client for the vault using cred (nil: the managed-identity credential
// pointed at the issuer through IDENTITY_ENDPOINT/IDENTITY_HEADER, as in Azure Functions).
func (e *env) client(t *testing.T, cred azcore.TokenCredential, perCall ...policy.Policy) *azsecrets.Client {
	t.Helper()
	if cred == nil {
		for k, v := range e.iss.ManagedIdentityEnv() {
			t.Setenv(k, v)
		}
		// MSAL caches managed-identity tokens process-wide, keyed by identity: a user-assigned client id
		// unique to this issuer keeps one test's tokens out of another's.
		mi, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
			ID: azidentity.ClientID(e.iss.ClientID())})
		if err != nil {
			t.Fatal(err)
		}
		cred = mi
	}
	c, err := azsecrets.NewClient(e.srv.URL(), cred, &azsecrets.ClientOptions{
		ClientOptions: policy.ClientOptions{
			Transport:       e.srv.HTTPClient(),
			Retry:           policy.RetryOptions{MaxRetries: 3, RetryDelay: 5 * time.Millisecond, MaxRetryDelay: 50 * time.Millisecond},
			PerCallPolicies: perCall,
		},
		DisableChallengeResourceVerification: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// respErr asserts err is an *azcore.ResponseError with the status and code, and returns the inner code.
func respErr(t *testing.T, err error, status int, code string) string {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("got %v, want an HTTP %d %s response error", err, status, code)
	}
	if re.StatusCode != status || re.ErrorCode != code {
		t.Fatalf("got HTTP %d %q, want %d %q (%v)", re.StatusCode, re.ErrorCode, status, code, err)
	}
	body := readBody(re)
	var e struct {
		Error struct {
			Message    string `json:"message"`
			InnerError struct {
				Code string `json:"code"`
			} `json:"innererror"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q is not the service's JSON error shape: %v", body, err)
	}
	if e.Error.Message == "" {
		t.Fatalf("error body %q has no message", body)
	}
	return e.Error.InnerError.Code
}

func errMessage(t *testing.T, err error) string {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("not a response error: %v", err)
	}
	body := readBody(re)
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	return e.Error.Message
}

// readBody reads an error response's body and puts it back for the next reader.
func readBody(re *azcore.ResponseError) []byte {
	body, _ := io.ReadAll(re.RawResponse.Body)
	re.RawResponse.Body = io.NopCloser(bytes.NewReader(body))
	return body
}

// maxResults is a per-call policy asking first list pages for n results (azsecrets has no option for it).
type maxResults int

func (n maxResults) Do(req *policy.Request) (*http.Response, error) {
	q := req.Raw().URL.Query()
	if req.Raw().Method == http.MethodGet && q.Get("$skiptoken") == "" {
		q.Set("maxresults", strconv.Itoa(int(n)))
		req.Raw().URL.RawQuery = q.Encode()
	}
	return req.Next()
}

func ptr[T any](v T) *T { return &v }

func set(t *testing.T, c *azsecrets.Client, name, value string, p azsecrets.SetSecretParameters) azsecrets.SetSecretResponse {
	t.Helper()
	p.Value = &value
	resp, err := c.SetSecret(ctxT(t), name, p, nil)
	if err != nil {
		t.Fatalf("SetSecret(%q): %v", name, err)
	}
	return resp
}

// raw sends a request with a valid token straight to the vault (no SDK), for what the SDK cannot send.
func (e *env) raw(t *testing.T, method, pathAndQuery string) (*http.Response, []byte) {
	t.Helper()
	tok, err := e.iss.Mint(e.iss.ManagedIdentityClaims(Resource))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctxT(t), method, e.srv.URL()+pathAndQuery, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := e.srv.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}
