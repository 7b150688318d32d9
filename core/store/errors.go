package store

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// The kinds of failure every adapter maps its SDK's errors onto. Test with errors.Is.
var (
	ErrNotFound         = errors.New("not found")
	ErrAlreadyExists    = errors.New("already exists")
	ErrConflict         = errors.New("conflict")
	ErrSoftDeleted      = errors.New("deleted but recoverable")
	ErrTooLarge         = errors.New("value too large")
	ErrInvalidName      = errors.New("invalid name")
	ErrInvalidValue     = errors.New("invalid value")
	ErrInvalidTags      = errors.New("invalid tags")
	ErrThrottled        = errors.New("throttled")
	ErrPermissionDenied = errors.New("permission denied")
	ErrUnavailable      = errors.New("unavailable")
	ErrUnsupported      = errors.New("not supported by this store")
)

// Error is the error every Store returns. It names the store, the operation and the secret, carries
// one of the kinds above, and may wrap the SDK's error as its cause. It never carries a value.
type Error struct {
	Kind       error         // one of the Err* kinds above
	Store      string        // configured store name
	Op         string        // get, put, describe, list, delete, ...
	Name       string        // secret name, if any
	Detail     string        // what exactly is wrong, in words
	Hint       string        // how to fix it
	RetryAfter time.Duration // for ErrThrottled, when the service said
	Err        error         // underlying cause (SDK error), may be nil
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Store)
	if e.Op != "" {
		b.WriteString(": " + e.Op)
	}
	if e.Name != "" {
		fmt.Fprintf(&b, " %q", e.Name)
	}
	b.WriteString(": ")
	b.WriteString(e.Kind.Error())
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	if e.Hint != "" {
		b.WriteString(" — " + e.Hint)
	}
	return b.String()
}

// Unwrap exposes both the kind and the cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// RetryAfterOf returns how long the service asked the caller to wait, if err says so.
func RetryAfterOf(err error) (time.Duration, bool) {
	var se *Error
	if errors.As(err, &se) && se.RetryAfter > 0 {
		return se.RetryAfter, true
	}
	return 0, false
}

// IsRetryable reports whether an operation that failed with err may succeed if tried again later.
func IsRetryable(err error) bool {
	return errors.Is(err, ErrThrottled) || errors.Is(err, ErrUnavailable)
}
