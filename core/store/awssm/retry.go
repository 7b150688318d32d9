package awssm

import (
	"errors"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"
)

// Retry configures the SDK's standard retryer for Secrets Manager calls. The zero value gives the
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
//   - LimitExceededException is not retried: the SDK counts it as a throttle, but Secrets Manager uses it
//     for hard quotas (versions per secret, secrets per account) that do not clear within a backoff;
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
		o.Retryables = append([]retry.IsErrorRetryable{retry.IsErrorRetryableFunc(hardQuota)}, o.Retryables...)
		o.Backoff = retryAfterBackoff{next: retry.NewExponentialJitterBackoff(maxBackoff), max: maxBackoff}
	})
}

// hardQuota refuses to retry LimitExceededException (and leaves every other error to the SDK's checks).
func hardQuota(err error) aws.Ternary {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "LimitExceededException" {
		return aws.FalseTernary
	}
	return aws.UnknownTernary
}

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

// WithRetry installs r's retryer on a Secrets Manager client.
func WithRetry(r Retry) func(*secretsmanager.Options) {
	return func(o *secretsmanager.Options) { o.Retryer = r.Retryer() }
}

// WithEndpoint points a Secrets Manager client at url (a VPC endpoint, or the local emulator in tests).
func WithEndpoint(url string) func(*secretsmanager.Options) {
	return func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(url) }
}

// NewClient builds a Secrets Manager client from cfg with the production retry settings; optFns apply
// after them (e.g. WithEndpoint, or WithRetry with shorter waits in tests).
func NewClient(cfg aws.Config, optFns ...func(*secretsmanager.Options)) *secretsmanager.Client {
	return secretsmanager.NewFromConfig(cfg, append([]func(*secretsmanager.Options){WithRetry(Retry{})}, optFns...)...)
}
