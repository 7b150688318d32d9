package awsssm

import (
	"errors"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// Retry configures the SDK's standard retryer for Parameter Store calls. The zero value gives the
// production settings.
type Retry struct {
	// MaxAttempts per call, the first included; 0 means DefaultMaxAttempts.
	MaxAttempts int
	// MaxBackoff caps one wait between attempts; 0 means DefaultMaxBackoff.
	MaxBackoff time.Duration
}

// Production retry settings: 10 attempts ride out sustained 20% throttling (all ten fail with probability
// 0.2^10 ≈ 1e-7); waits are the SDK's exponential jitter, at most 20 s each.
const (
	DefaultMaxAttempts = 10
	DefaultMaxBackoff  = 20 * time.Second
)

// Retryer returns the SDK's standard retryer with these settings and three changes to its defaults:
//
//   - no client-side retry quota (ratelimit.None): keyferry paces its writes itself, and the SDK's token
//     bucket would turn sustained throttling into hard failures after a few thousand attempts;
//   - TooManyUpdates (concurrent changes to one parameter) is retried like a throttle;
//   - a Retry-After (seconds) or x-amz-retry-after (milliseconds) header on a throttled response, when
//     present, lengthens the wait up to MaxBackoff.
func (r Retry) Retryer() aws.Retryer {
	attempts, maxBackoff := r.MaxAttempts, r.MaxBackoff
	if attempts <= 0 {
		attempts = DefaultMaxAttempts
	}
	if maxBackoff <= 0 {
		maxBackoff = DefaultMaxBackoff
	}
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = attempts
		o.MaxBackoff = maxBackoff
		o.RateLimiter = ratelimit.None
		o.Retryables = append(o.Retryables, retry.RetryableErrorCode{Codes: extraThrottles})
		o.Throttles = append(o.Throttles, retry.ThrottleErrorCode{Codes: extraThrottles})
		o.Backoff = retryAfterBackoff{next: retry.NewExponentialJitterBackoff(maxBackoff), max: maxBackoff}
	})
}

// extraThrottles are Parameter Store's throttle-like codes the SDK does not know.
var extraThrottles = map[string]struct{}{"TooManyUpdates": {}}

// retryAfterBackoff is the SDK's jittered backoff, lengthened to what the service asked for when it did.
type retryAfterBackoff struct {
	next retry.BackoffDelayer
	max  time.Duration
}

func (b retryAfterBackoff) BackoffDelay(attempt int, err error) (time.Duration, error) {
	d, derr := b.next.BackoffDelay(attempt, err)
	if derr != nil {
		return d, derr
	}
	if ra, ok := retryAfter(err); ok && ra > d {
		d = min(ra, b.max)
	}
	return d, nil
}

// retryAfter reads the wait a throttled response asked for: x-amz-retry-after in milliseconds, or the
// standard Retry-After in seconds.
func retryAfter(err error) (time.Duration, bool) {
	var re *awshttp.ResponseError
	if !errors.As(err, &re) || re.Response == nil || re.Response.Response == nil {
		return 0, false
	}
	h := re.Response.Header
	if v := h.Get("X-Amz-Retry-After"); v != "" {
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms > 0 {
			return time.Duration(ms) * time.Millisecond, true
		}
	}
	if v := h.Get("Retry-After"); v != "" {
		if s, err := strconv.ParseInt(v, 10, 64); err == nil && s > 0 {
			return time.Duration(s) * time.Second, true
		}
	}
	return 0, false
}

// WithRetry installs r's retryer on a Parameter Store client.
func WithRetry(r Retry) func(*ssm.Options) {
	return func(o *ssm.Options) { o.Retryer = r.Retryer() }
}

// WithEndpoint points a Parameter Store client at url (a VPC endpoint, or the local emulator in tests).
func WithEndpoint(url string) func(*ssm.Options) {
	return func(o *ssm.Options) { o.BaseEndpoint = aws.String(url) }
}

// NewClient builds a Parameter Store client from cfg with the production retry settings; optFns apply
// after them (e.g. WithEndpoint, or WithRetry with shorter waits in tests).
func NewClient(cfg aws.Config, optFns ...func(*ssm.Options)) *ssm.Client {
	return ssm.NewFromConfig(cfg, append([]func(*ssm.Options){WithRetry(Retry{})}, optFns...)...)
}
