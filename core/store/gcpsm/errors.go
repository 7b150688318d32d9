package gcpsm

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/googleapis/gax-go/v2"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/keyferry/keyferry/core/store"
)

// fail maps an SDK error onto a *store.Error naming the store, the operation and the secret. precondition,
// if not nil, is what FAILED_PRECONDITION means for this call (a disabled version on reads, an etag
// mismatch on updates); without it FAILED_PRECONDITION is ErrConflict.
func (s *Store) fail(err error, op, name string, precondition *store.Error) error {
	var se *store.Error
	if errors.As(err, &se) {
		return store.Annotate(err, s.opts.Name, op, name)
	}
	e := classify(err, precondition)
	e.Store, e.Op, e.Name = s.opts.Name, op, name
	return e
}

// classify turns an SDK error into a *store.Error (without store, op and name).
func classify(err error, precondition *store.Error) *store.Error {
	st, ok := status.FromError(err)
	if !ok {
		// No gRPC status: the context ended, or the transport failed before any answer.
		return &store.Error{Kind: store.ErrUnavailable, Detail: "the call did not complete", Err: err}
	}
	e := &store.Error{Err: err}
	switch st.Code() {
	case codes.NotFound:
		e.Kind = store.ErrNotFound
	case codes.AlreadyExists:
		e.Kind = store.ErrAlreadyExists
	case codes.ResourceExhausted:
		e.Kind = store.ErrThrottled
		e.Detail = "Secret Manager quota exceeded"
		e.Hint = "lower the request rate or raise the project's Secret Manager quota"
		if d, ok := retryDelay(st); ok {
			e.RetryAfter = d
		}
	case codes.PermissionDenied:
		e.Kind = store.ErrPermissionDenied
		e.Hint = "grant the caller the Secret Manager role it needs on the project or secret " +
			"(e.g. roles/secretmanager.secretAccessor to read, roles/secretmanager.admin to create and label)"
	case codes.Unauthenticated:
		e.Kind = store.ErrPermissionDenied
		e.Detail = "the credentials were refused"
		e.Hint = "refresh or fix the credentials (Application Default Credentials, workload identity)"
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Internal, codes.Unknown, codes.DataLoss:
		e.Kind = store.ErrUnavailable
	case codes.Aborted:
		e.Kind = store.ErrConflict
		e.Detail = "the secret was changed by someone else at the same time"
		e.Hint = "try again"
	case codes.FailedPrecondition:
		if precondition != nil {
			e.Kind, e.Detail, e.Hint = precondition.Kind, precondition.Detail, precondition.Hint
		} else {
			e.Kind = store.ErrConflict
			e.Detail = "the secret is not in a state that allows this"
		}
	case codes.InvalidArgument, codes.OutOfRange:
		e.Kind = store.ErrInvalidValue
		e.Detail = "Secret Manager refused the request as invalid"
	case codes.Unimplemented:
		e.Kind = store.ErrUnsupported
	default:
		e.Kind = store.ErrUnavailable
	}
	return e
}

func isCode(err error, c codes.Code) bool {
	if err == nil {
		return false
	}
	st, ok := status.FromError(err)
	return ok && st.Code() == c
}

// retryDelay is the delay the server asked for in a RetryInfo detail.
func retryDelay(st *status.Status) (time.Duration, bool) {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			return ri.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}

// RetrySettings configure the gax retryer every call goes through. RESOURCE_EXHAUSTED and UNAVAILABLE are
// retried with exponential backoff (full jitter, as gax.Backoff), waiting at least the delay the server
// asks for in RetryInfo.
type RetrySettings struct {
	Initial    time.Duration // first backoff ceiling
	Max        time.Duration // largest backoff ceiling
	Multiplier float64       // ceiling growth per retry (> 1)
	// MaxAttempts bounds the attempts per call, the first one included.
	MaxAttempts int
	// MaxRetryAfter: a server-requested delay longer than this ends the retries at once, so the caller
	// gets ErrThrottled with RetryAfter instead of a long silent wait.
	MaxRetryAfter time.Duration
	// Timeout bounds each call, retries included, when the context has no deadline of its own.
	Timeout time.Duration
}

// DefaultRetry rides out Secret Manager's per-minute quotas and short outages: 8 attempts, backoff
// 0.5 s doubling to 30 s, server delays up to a minute honoured, 2 minutes per call.
func DefaultRetry() RetrySettings {
	return RetrySettings{Initial: 500 * time.Millisecond, Max: 30 * time.Second, Multiplier: 2, MaxAttempts: 8,
		MaxRetryAfter: time.Minute, Timeout: 2 * time.Minute}
}

func (r RetrySettings) validate() error {
	switch {
	case r.Initial <= 0 || r.Max < r.Initial:
		return fmt.Errorf("retry settings: need 0 < Initial (%s) <= Max (%s)", r.Initial, r.Max)
	case r.Multiplier < 1:
		return fmt.Errorf("retry settings: Multiplier %v must be at least 1", r.Multiplier)
	case r.MaxAttempts < 1:
		return fmt.Errorf("retry settings: MaxAttempts %d must be at least 1", r.MaxAttempts)
	case r.MaxRetryAfter < 0 || r.Timeout < 0:
		return errors.New("retry settings: MaxRetryAfter and Timeout must not be negative")
	}
	return nil
}

// CallOptions are the gax call options that apply r to one RPC.
func (r RetrySettings) CallOptions() []gax.CallOption {
	opts := []gax.CallOption{gax.WithRetry(func() gax.Retryer { return newRetryer(r) })}
	if r.Timeout > 0 {
		opts = append(opts, gax.WithTimeout(r.Timeout))
	}
	return opts
}

// retryer is a gax.Retryer: gax.Invoke runs the attempts and sleeps; this only decides.
type retryer struct {
	s        RetrySettings
	bo       gax.Backoff
	attempts int
}

func newRetryer(s RetrySettings) *retryer {
	return &retryer{s: s, bo: gax.Backoff{Initial: s.Initial, Max: s.Max, Multiplier: s.Multiplier}}
}

func (r *retryer) Retry(err error) (time.Duration, bool) {
	r.attempts++
	if r.attempts >= r.s.MaxAttempts {
		return 0, false
	}
	st, ok := status.FromError(err)
	if !ok || (st.Code() != codes.ResourceExhausted && st.Code() != codes.Unavailable) {
		return 0, false
	}
	pause := r.bo.Pause()
	if d, ok := retryDelay(st); ok {
		if r.s.MaxRetryAfter > 0 && d > r.s.MaxRetryAfter {
			return 0, false
		}
		if d > pause {
			// Honour the server's delay, with a little jitter so that throttled callers spread out.
			pause = d + time.Duration(rand.Int64N(int64(d/10)+1))
		}
	}
	return pause, true
}
