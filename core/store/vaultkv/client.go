package vaultkv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/hashicorp/vault/api"
)

// ClientConfig configures the client NewClient builds.
type ClientConfig struct {
	// Address is the Vault base URL; "" means VAULT_ADDR (else the client's default).
	Address string
	// CACert is a PEM CA bundle file to verify the server with; "" means VAULT_CACERT (else the system roots).
	CACert string
	// CACertPEM is a PEM CA bundle, used when CACert is "".
	CACertPEM []byte
	// Namespace is the Vault Enterprise namespace; "" means VAULT_NAMESPACE (else none).
	Namespace string
	// Auth logs in and yields the token. Nil means TokenFromEnv (VAULT_TOKEN).
	Auth api.AuthMethod
	// Timeout bounds one operation including its retries; 0 means 60 seconds.
	Timeout time.Duration
	// Retry configures the client's retries.
	Retry Retry
}

// Retry configures the Vault client's own retries (go-retryablehttp): connection errors, 5xx, 412 and 429
// are retried. A 429 or 503 carrying Retry-After waits that long (even beyond MaxWait); otherwise the wait
// grows linearly with jitter between MinWait×attempt and MaxWait×attempt.
type Retry struct {
	// MaxRetries is the number of retries after the first attempt. 0 means DefaultMaxRetries; negative
	// means none.
	MaxRetries int
	// MinWait and MaxWait bound the wait before a retry (0: 250 ms and 2 s).
	MinWait, MaxWait time.Duration
}

// DefaultMaxRetries is enough to ride out a fifth of all calls being throttled (the chance that one call
// fails 9 times in a row at 20% is 5e-7).
const DefaultMaxRetries = 8

func (r Retry) isZero() bool { return r == Retry{} }

func (r Retry) settings() (maxRetries int, minWait, maxWait time.Duration) {
	maxRetries, minWait, maxWait = r.MaxRetries, r.MinWait, r.MaxWait
	switch {
	case maxRetries == 0:
		maxRetries = DefaultMaxRetries
	case maxRetries < 0:
		maxRetries = 0
	}
	if minWait <= 0 {
		minWait = 250 * time.Millisecond
	}
	if maxWait <= 0 {
		maxWait = 2 * time.Second
	}
	if maxWait < minWait {
		maxWait = minWait
	}
	return maxRetries, minWait, maxWait
}

// Apply sets the retry settings on a client configuration before the client is built.
func (r Retry) Apply(cfg *api.Config) {
	cfg.MaxRetries, cfg.MinRetryWait, cfg.MaxRetryWait = r.settings()
	cfg.CheckRetry = CheckRetry
	// DefaultConfig's backoff already is retryablehttp.RateLimitLinearJitterBackoff, which honours
	// Retry-After on 429 and 503; it is kept.
}

// ApplyTo sets the retry settings on a built client.
func (r Retry) ApplyTo(c *api.Client) {
	n, lo, hi := r.settings()
	c.SetMaxRetries(n)
	c.SetMinRetryWait(lo)
	c.SetMaxRetryWait(hi)
	c.SetCheckRetry(CheckRetry)
}

// CheckRetry is api.DefaultRetryPolicy (retryablehttp's policy, which retries connection errors, 5xx and
// 429, plus Vault's 412) except that it never turns a retryable response into a bare error: once the
// retries are used up, the caller gets the last response, so its status code (429, 503, ...) and Vault's
// error messages reach the error mapping instead of "unexpected HTTP status".
func CheckRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	retry, perr := api.DefaultRetryPolicy(ctx, resp, err)
	if retry && err == nil && resp != nil {
		return true, nil
	}
	return retry, perr
}

// NewClient builds a Vault client from cfg and logs in with cfg.Auth.
func NewClient(ctx context.Context, cfg ClientConfig) (*api.Client, error) {
	c, err := newUnauthenticatedClient(cfg)
	if err != nil {
		return nil, err
	}
	auth := cfg.Auth
	if auth == nil {
		auth = TokenFromEnv()
	}
	if _, err := c.Auth().Login(ctx, auth); err != nil {
		return nil, fmt.Errorf("vault login: %w", err)
	}
	return c, nil
}

func newUnauthenticatedClient(cfg ClientConfig) (*api.Client, error) {
	ac := api.DefaultConfig()
	if ac.Error != nil {
		return nil, fmt.Errorf("vault client configuration: %w", ac.Error)
	}
	if cfg.Address != "" {
		ac.Address = cfg.Address
	}
	if cfg.CACert != "" || len(cfg.CACertPEM) > 0 {
		if err := ac.ConfigureTLS(&api.TLSConfig{CACert: cfg.CACert, CACertBytes: cfg.CACertPEM}); err != nil {
			return nil, fmt.Errorf("vault client TLS: %w", err)
		}
	}
	if cfg.Timeout > 0 {
		ac.Timeout = cfg.Timeout
	}
	cfg.Retry.Apply(ac)
	c, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("vault client: %w", err)
	}
	// The token comes from the auth method only (NewClient also picks up VAULT_TOKEN by itself).
	c.ClearToken()
	if cfg.Namespace != "" {
		c.SetNamespace(cfg.Namespace)
	}
	return c, nil
}

// errNoToken is returned by TokenFromEnv when VAULT_TOKEN is empty.
var errNoToken = errors.New("no Vault token: VAULT_TOKEN is empty")

// TokenFromEnv is the auth method that takes the token from the VAULT_TOKEN environment variable.
func TokenFromEnv() api.AuthMethod {
	return tokenAuth(func() string { return os.Getenv(api.EnvVaultToken) })
}

// StaticToken is the auth method that uses the given token as it is.
func StaticToken(token string) api.AuthMethod {
	return tokenAuth(func() string { return token })
}

type tokenAuth func() string

func (t tokenAuth) Login(context.Context, *api.Client) (*api.Secret, error) {
	tok := t()
	if tok == "" {
		return nil, errNoToken
	}
	return &api.Secret{Auth: &api.SecretAuth{ClientToken: tok}}, nil
}
