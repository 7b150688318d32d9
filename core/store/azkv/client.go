package azkv

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

// ClientOptions configure NewClient.
type ClientOptions struct {
	// Transport carries the requests; for a local vault, an *http.Client trusting its CA.
	Transport policy.Transporter
	// Retry overrides DefaultRetryOptions. A nil ShouldRetry gets this package's (which also waits out
	// the service's transient "being deleted / being recovered" conflicts).
	Retry *policy.RetryOptions
	// DisableChallengeResourceVerification lets the vault's challenge name a resource outside the vault's
	// domain. It is turned on automatically for loopback vault URLs (local emulators).
	DisableChallengeResourceVerification bool
	// PerCallPolicies are added to the client's pipeline (after this package's page-size policy).
	PerCallPolicies []policy.Policy
}

// DefaultRetryOptions is what NewClient uses: ten retries with exponential backoff from one second up
// to a minute, honouring Retry-After (azcore reads retry-after-ms, x-ms-retry-after-ms and Retry-After).
// That rides out sustained throttling (at 20% throttling a call fails only if 11 tries in a row are
// throttled) and the seconds a delete or purge takes to release a name.
func DefaultRetryOptions() policy.RetryOptions {
	return RetryOptions(10, time.Second, time.Minute)
}

// RetryOptions returns retry settings with this package's retry decision: transport errors, 408, 429,
// 500, 502, 503, 504, and 409 conflicts whose inner code says a delete, purge or recover is still in
// progress (ObjectIsBeingDeleted, ObjectIsBeingRecovered). maxDelay also caps the Retry-After the
// client accepts: azcore does not retry when the service asks for a longer wait.
func RetryOptions(maxRetries int, baseDelay, maxDelay time.Duration) policy.RetryOptions {
	return policy.RetryOptions{MaxRetries: int32(maxRetries), RetryDelay: baseDelay, MaxRetryDelay: maxDelay,
		ShouldRetry: shouldRetry}
}

func shouldRetry(resp *http.Response, err error) bool {
	if err != nil {
		return true // transport error (context errors and non-retriable errors never get here)
	}
	switch resp.StatusCode {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	case http.StatusConflict:
		body, err := runtime.Payload(resp) // buffered: the body can still be read afterwards
		if err != nil {
			return false
		}
		switch innerCode(body) {
		case codeBeingDeleted, codeBeingRecovered:
			return true
		}
	}
	return false
}

// NewClient builds an azsecrets client for vaultURL with this package's pipeline: the retry settings
// above, a policy that applies ListOptions.PageSize (as maxresults) to listings, and, for loopback
// vault URLs, challenge resource verification turned off.
func NewClient(vaultURL string, cred azcore.TokenCredential, o *ClientOptions) (*azsecrets.Client, error) {
	if o == nil {
		o = &ClientOptions{}
	}
	retry := DefaultRetryOptions()
	if o.Retry != nil {
		retry = *o.Retry
		if retry.ShouldRetry == nil {
			retry.ShouldRetry = shouldRetry
		}
	}
	disable := o.DisableChallengeResourceVerification
	if u, err := url.Parse(vaultURL); err == nil {
		if ip := net.ParseIP(u.Hostname()); (ip != nil && ip.IsLoopback()) || u.Hostname() == "localhost" {
			disable = true
		}
	}
	return azsecrets.NewClient(vaultURL, cred, &azsecrets.ClientOptions{
		ClientOptions: policy.ClientOptions{
			Transport:       o.Transport,
			Retry:           retry,
			PerCallPolicies: append([]policy.Policy{pageSizePolicy{}}, o.PerCallPolicies...),
		},
		DisableChallengeResourceVerification: disable,
	})
}

// ManagedIdentityClient builds a client authenticating with the managed identity of the Azure Function
// or App Service it runs in (IDENTITY_ENDPOINT / IDENTITY_HEADER); clientID selects a user-assigned
// identity ("" = system-assigned). No static secret is involved.
func ManagedIdentityClient(vaultURL, clientID string, o *ClientOptions) (*azsecrets.Client, error) {
	var mo *azidentity.ManagedIdentityCredentialOptions
	if clientID != "" {
		mo = &azidentity.ManagedIdentityCredentialOptions{ID: azidentity.ClientID(clientID)}
	}
	if o != nil && o.Transport != nil {
		if mo == nil {
			mo = &azidentity.ManagedIdentityCredentialOptions{}
		}
		mo.ClientOptions.Transport = o.Transport
	}
	cred, err := azidentity.NewManagedIdentityCredential(mo)
	if err != nil {
		return nil, err
	}
	return NewClient(vaultURL, cred, o)
}

type pageSizeKey struct{}

// withPageSize asks the listing requests made with ctx for n results per page.
func withPageSize(ctx context.Context, n int) context.Context {
	return context.WithValue(ctx, pageSizeKey{}, n)
}

// pageSizePolicy sets maxresults on the first page of a listing (azsecrets v1.5 has no option for it;
// the service carries it into its nextLink).
type pageSizePolicy struct{}

func (pageSizePolicy) Do(req *policy.Request) (*http.Response, error) {
	raw := req.Raw()
	if n, ok := raw.Context().Value(pageSizeKey{}).(int); ok && n > 0 && raw.Method == http.MethodGet {
		q := raw.URL.Query()
		if q.Get("$skiptoken") == "" && q.Get("maxresults") == "" {
			q.Set("maxresults", strconv.Itoa(n))
			raw.URL.RawQuery = q.Encode()
		}
	}
	return req.Next()
}

// Service error codes that matter to the mapping.
const (
	codeDeletedButRecoverable = "ObjectIsDeletedButRecoverable"
	codeBeingDeleted          = "ObjectIsBeingDeleted"
	codeBeingRecovered        = "ObjectIsBeingRecovered"
	codeSecretDisabled        = "SecretDisabled"
	codeSecretTooLarge        = "SecretTooLarge"
)

type serviceErrorBody struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		InnerError struct {
			Code string `json:"code"`
		} `json:"innererror"`
	} `json:"error"`
}

func innerCode(body []byte) string {
	var b serviceErrorBody
	if json.Unmarshal(body, &b) != nil {
		return ""
	}
	return b.Error.InnerError.Code
}
