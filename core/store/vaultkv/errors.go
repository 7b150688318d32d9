package vaultkv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/keyferry/keyferry/core/store"
)

// mapError turns an error of the Vault client into a *store.Error. retryAfter is the Retry-After of the
// last response, if it had one.
func (s *Store) mapError(err error, op, name string, retryAfter time.Duration) error {
	if err == nil {
		return nil
	}
	var se *store.Error
	if errors.As(err, &se) {
		return store.Annotate(err, s.name, op, name)
	}
	e := &store.Error{Store: s.name, Op: op, Name: name, Err: err}
	var re *api.ResponseError
	switch {
	case errors.As(err, &re):
		msg := strings.Join(re.Errors, "; ")
		switch code := re.StatusCode; {
		case code == http.StatusNotFound:
			e.Kind = store.ErrNotFound
		case code == http.StatusBadRequest && strings.Contains(msg, "check-and-set"):
			e.Kind = store.ErrConflict
			e.Detail = "the secret's current version is not the expected one"
			e.Hint = "read it again and retry with its current version"
		case code == http.StatusBadRequest && strings.Contains(msg, "custom_metadata"):
			e.Kind = store.ErrInvalidTags
		case code == http.StatusBadRequest:
			e.Kind = store.ErrInvalidValue
		case code == http.StatusUnauthorized || code == http.StatusForbidden:
			e.Kind = store.ErrPermissionDenied
			e.Hint = fmt.Sprintf("check that the Vault token is valid and its policies allow this operation on %s", s.mount)
		case code == http.StatusMethodNotAllowed:
			e.Kind = store.ErrUnsupported
			e.Hint = fmt.Sprintf("check that %s is a KV version 2 mount", s.mount)
		case code == http.StatusConflict:
			e.Kind = store.ErrConflict
		case code == http.StatusTooManyRequests:
			e.Kind = store.ErrThrottled
			e.RetryAfter = retryAfter
			e.Hint = "Vault's rate limit quota was exceeded after every retry; slow down or raise the quota"
		default: // 412, 5xx (sealed, standby, internal error) and anything else
			e.Kind = store.ErrUnavailable
		}
	case errors.Is(err, errNoToken):
		e.Kind = store.ErrPermissionDenied
		e.Hint = "set VAULT_TOKEN or configure an auth method for this store"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		e.Kind = store.ErrUnavailable
		e.Detail = "the operation was cancelled or timed out"
	default: // connection refused, reset, TLS, DNS, "giving up after N attempts"
		e.Kind = store.ErrUnavailable
		e.Hint = "check the Vault address and that the server is reachable"
	}
	return e
}

// parseRetryAfter reads a Retry-After header (seconds or an HTTP date).
func parseRetryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(h)); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
