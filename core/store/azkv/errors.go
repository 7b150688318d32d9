package azkv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/keyferry/keyferry/core/store"
)

// ServiceError is the service's answer to a failed call, in one line (the SDK's own error text is a
// multi-line dump). It unwraps to the *azcore.ResponseError.
type ServiceError struct {
	Status     int
	Code       string // error.code, e.g. SecretNotFound, Conflict, BadParameter
	InnerCode  string // error.innererror.code, e.g. ObjectIsDeletedButRecoverable
	Message    string // error.message (the service's messages never contain secret values)
	RetryAfter time.Duration
	resp       *azcore.ResponseError
}

func (e *ServiceError) Error() string {
	code := e.Code
	if e.InnerCode != "" {
		code += "/" + e.InnerCode
	}
	msg := strings.Join(strings.Fields(e.Message), " ")
	return fmt.Sprintf("Key Vault answered HTTP %d %s: %s", e.Status, code, msg)
}

func (e *ServiceError) Unwrap() error { return e.resp }

func serviceError(re *azcore.ResponseError) *ServiceError {
	se := &ServiceError{Status: re.StatusCode, Code: re.ErrorCode, resp: re}
	if re.RawResponse == nil {
		return se
	}
	if body, err := runtime.Payload(re.RawResponse); err == nil {
		var b serviceErrorBody
		if json.Unmarshal(body, &b) == nil {
			if b.Error.Code != "" {
				se.Code = b.Error.Code
			}
			se.Message, se.InnerCode = b.Error.Message, b.Error.InnerError.Code
		}
	}
	se.RetryAfter = retryAfter(re.RawResponse.Header)
	return se
}

// retryAfter reads the wait the service asked for, in azcore's order of preference.
func retryAfter(h http.Header) time.Duration {
	for _, k := range []string{"retry-after-ms", "x-ms-retry-after-ms"} {
		if ms, err := strconv.ParseInt(h.Get(k), 10, 64); err == nil && ms > 0 {
			return time.Duration(ms) * time.Millisecond
		}
	}
	v := h.Get("Retry-After")
	if s, err := strconv.ParseInt(v, 10, 64); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

func isStatus(err error, status int) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == status
}

// fail maps an SDK error onto the store's typed errors.
func (s *Store) fail(op, name string, err error) error {
	e := &store.Error{Store: s.opts.Name, Op: op, Name: name}
	var re *azcore.ResponseError
	var afe *azidentity.AuthenticationFailedError
	switch {
	case errors.As(err, &re):
		se := serviceError(re)
		e.Err = se
		s.classify(e, se)
	case errors.As(err, &afe):
		e.Kind, e.Err = store.ErrPermissionDenied, err
		e.Detail = "the credential could not get a token for Key Vault"
		e.Hint = "check the managed identity (IDENTITY_ENDPOINT/IDENTITY_HEADER in Azure Functions) or the configured credential"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		e.Kind, e.Err = store.ErrUnavailable, err
		e.Detail = "the call was cancelled or timed out"
	default:
		e.Kind, e.Err = store.ErrUnavailable, err
		e.Detail = "the vault could not be reached"
		e.Hint = "check the vault URL, DNS and network access (private endpoints, firewall)"
	}
	return e
}

func (s *Store) classify(e *store.Error, se *ServiceError) {
	switch se.Status {
	case http.StatusNotFound:
		e.Kind = store.ErrNotFound
	case http.StatusConflict:
		switch se.InnerCode {
		case codeDeletedButRecoverable:
			e.Kind = store.ErrSoftDeleted
			e.Detail = "the name belongs to a soft-deleted secret"
			e.Hint = "recover the secret (or purge it) before writing to this name"
		case codeBeingDeleted, codeBeingRecovered:
			e.Kind = store.ErrConflict
			e.Detail = "a delete, purge or recover of this secret is still in progress"
			e.Hint = "retry in a few seconds"
		default:
			e.Kind = store.ErrConflict
		}
	case http.StatusTooManyRequests:
		e.Kind, e.RetryAfter = store.ErrThrottled, se.RetryAfter
		e.Hint = "the vault's request quota is exhausted; slow down (per vault: 300 secret writes and 4,000 other calls per 10 s)"
	case http.StatusUnauthorized:
		e.Kind = store.ErrPermissionDenied
		e.Detail = "the vault refused the token"
		e.Hint = "the token must be issued by the vault's tenant for the audience https://vault.azure.net"
	case http.StatusForbidden:
		switch {
		case se.InnerCode == codeSecretDisabled:
			e.Kind = store.ErrConflict
			e.Detail = "the requested version is disabled"
			e.Hint = "enable the version or write a new one"
		case strings.Contains(strings.ToLower(se.Message), "purge protection"):
			e.Kind = store.ErrPermissionDenied
			e.Detail = "the vault has purge protection"
			e.Hint = "soft-deleted secrets are purged by the service after the retention period; recover it instead"
		default:
			e.Kind = store.ErrPermissionDenied
			e.Hint = "grant the identity the Key Vault role (RBAC) or access policy this operation needs"
		}
	case http.StatusBadRequest:
		switch {
		case se.InnerCode == codeSecretTooLarge:
			e.Kind = store.ErrTooLarge
		case strings.Contains(se.Message, "invalid name"):
			e.Kind = store.ErrInvalidName
		case strings.Contains(strings.ToLower(se.Message), "tag"):
			e.Kind = store.ErrInvalidTags
		default:
			e.Kind = store.ErrInvalidValue
		}
	case http.StatusRequestEntityTooLarge:
		e.Kind = store.ErrTooLarge
	default:
		e.Kind = store.ErrUnavailable
		if se.Status >= 500 {
			e.Detail = "the service failed"
		}
	}
}
