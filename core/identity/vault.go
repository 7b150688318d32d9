package identity

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// VaultAuth logs a Vault client in with the home cloud's JWT through Vault's jwt auth method
// (PUT /v1/auth/<mount>/login {role, jwt}) and logs in again before the token's TTL runs out.
// It is a vault.AuthMethod, so client.Auth().Login(ctx, a) works as well; Ensure is the usual entry.
type VaultAuth struct {
	dir, mount, role, audience string
	home                       Home
	tokens                     *homeTokens // nil for HomeLocal
	client                     *vault.Client
	now                        func() time.Time

	mu       sync.Mutex
	obtained time.Time
	ttl      time.Duration
	logins   int
}

// Vault returns the login for a Vault peer on client (nil: a client from VAULT_ADDR and the other
// VAULT_* settings; e.VaultAddress overrides the address either way).
//
//   - aws: sts:GetWebIdentityToken for p.VaultAudience; azure: a managed-identity token for
//     p.VaultAudience; gcp: a metadata-server ID token for p.VaultAudience; each presented to the jwt
//     auth role p.VaultRole at mount p.VaultMount (default "jwt").
//   - local: the ambient token (VAULT_TOKEN); Ensure only checks that there is one.
func Vault(ctx context.Context, home Home, p Peer, e Endpoints, client *vault.Client) (*VaultAuth, error) {
	if err := checkHome(home, "vault"); err != nil {
		return nil, err
	}
	dir := direction(home, "vault")
	if client == nil {
		cfg := vault.DefaultConfig()
		if cfg.Error != nil {
			return nil, &Error{Direction: dir, Step: "Vault client configuration", Err: cfg.Error}
		}
		var err error
		if client, err = vault.NewClient(cfg); err != nil {
			return nil, &Error{Direction: dir, Step: "Vault client", Err: err}
		}
	}
	if e.VaultAddress != "" {
		if err := client.SetAddress(e.VaultAddress); err != nil {
			return nil, &Error{Direction: dir, Step: "Vault address", Err: err}
		}
	}
	v := &VaultAuth{dir: dir, home: home, client: client, now: time.Now,
		mount: strings.Trim(orDefault(p.VaultMount, DefaultVaultMount), "/"), role: p.VaultRole, audience: p.VaultAudience}
	if home == HomeLocal {
		return v, nil
	}
	if err := missing(dir, "VaultRole", p.VaultRole, "VaultAudience", p.VaultAudience); err != nil {
		return nil, err
	}
	ht, err := newHomeTokens(ctx, home, p, e, "vault")
	if err != nil {
		return nil, err
	}
	v.tokens = ht
	return v, nil
}

// Client is the Vault client this login manages.
func (v *VaultAuth) Client() *vault.Client { return v.client }

// Ensure makes sure the client holds a token that is not close to expiry: it logs in when there is
// none yet or when two thirds of the token's TTL have passed. Call it before using the client.
func (v *VaultAuth) Ensure(ctx context.Context) (*vault.Client, error) {
	if v.tokens == nil {
		if v.client.Token() == "" {
			return nil, &Error{Direction: v.dir, Step: "ambient Vault token", Err: errors.New("no token: set VAULT_TOKEN (or log in with the vault CLI)")}
		}
		return v.client, nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.logins > 0 && v.client.Token() != "" && (v.ttl == 0 || v.now().Before(v.obtained.Add(v.ttl*2/3))) {
		return v.client, nil
	}
	sec, err := v.login(ctx, v.client)
	if err != nil {
		return nil, err
	}
	v.client.SetToken(sec.Auth.ClientToken)
	v.record(sec)
	return v.client, nil
}

// Login implements vault.AuthMethod: it presents a fresh home JWT to auth/<mount>/login (the caller,
// client.Auth().Login, sets the client's token).
func (v *VaultAuth) Login(ctx context.Context, c *vault.Client) (*vault.Secret, error) {
	sec, err := v.login(ctx, c)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	v.record(sec)
	v.mu.Unlock()
	return sec, nil
}

// record notes when the token was obtained and its TTL (v.mu held).
func (v *VaultAuth) record(sec *vault.Secret) {
	v.obtained, v.ttl = v.now(), time.Duration(sec.Auth.LeaseDuration)*time.Second
	v.logins++
}

func (v *VaultAuth) login(ctx context.Context, c *vault.Client) (*vault.Secret, error) {
	step := fmt.Sprintf("Vault login at %s/v1/auth/%s/login as role %q", strings.TrimSuffix(c.Address(), "/"), v.mount, v.role)
	if v.tokens == nil {
		return nil, &Error{Direction: v.dir, Step: step, Err: errors.New("the local home uses the ambient VAULT_TOKEN and does not log in")}
	}
	ctx, a := withAttempt(ctx)
	jwt, err := v.tokens.token(ctx, v.audience)
	if err != nil {
		return nil, err
	}
	anon, err := c.Clone() // no token: a stale one must not ride along on the login request
	if err != nil {
		return nil, &Error{Direction: v.dir, Step: step, Err: err}
	}
	anon.ClearToken()
	sec, err := anon.Logical().WriteWithContext(ctx, "auth/"+v.mount+"/login", map[string]any{"role": v.role, "jwt": jwt})
	if err != nil {
		return nil, fail(v.dir, step, a, err)
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		p, _ := a.get()
		return nil, &Error{Direction: v.dir, Step: step, Presented: p, Err: errors.New("the response carries no auth.client_token")}
	}
	return sec, nil
}
