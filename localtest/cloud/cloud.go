// Package cloud composes the local cloud: every emulator of localtest started on 127.0.0.1, each behind
// the fault layer, plus a keyferry.yaml describing them as `local: true` stores and the environment the
// stores' credential chains read (fake AWS keys, the managed-identity endpoint, the Vault dev token).
// The demo and end-to-end tests use it; Stop stops every process it started, by PID.
//
// With Options.Federation the cloud also runs the token services of workload identity federation
// (localtest/idp, localtest/oidc) and every store accepts only what federation yields: Key Vault only
// tokens of the Entra tenant (whose issuer also serves the Azure function's managed identity), Secret
// Manager (over TLS) only access tokens of the Google STS / IAM Credentials fake or of a metadata server,
// Vault only jwt logins of the three functions' identities (one mount per home, bound audience and
// subject, a policy on the KV mount), and the AWS APIs only requests signed with the Lambda's execution
// role (moto's keys) or a session the STS fake issued. Config then carries the `identity:` blocks, and
// FunctionEnv gives each function its own cloud's identity only.
package cloud

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyferry/keyferry/core/stores"
	"github.com/keyferry/keyferry/localtest/azkv"
	"github.com/keyferry/keyferry/localtest/events"
	"github.com/keyferry/keyferry/localtest/fault"
	"github.com/keyferry/keyferry/localtest/gcp"
	"github.com/keyferry/keyferry/localtest/moto"
	"github.com/keyferry/keyferry/localtest/oidc"
	"github.com/keyferry/keyferry/localtest/vault"
	"google.golang.org/grpc"
)

// Part names.
const (
	AWS    = "aws"    // moto: Secrets Manager and SSM
	Azure  = "azure"  // Key Vault emulator + local identity issuer
	GCP    = "gcp"    // Secret Manager emulator (in-process)
	PubSub = "pubsub" // gcloud Pub/Sub emulator
	Vault  = "vault"  // Vault dev server
)

// AllParts is every part, in start order.
var AllParts = []string{AWS, Azure, GCP, PubSub, Vault}

// Project is the GCP project of the local cloud.
const Project = "keyferry-local"

// SecretTopic is the Pub/Sub topic the local GCP store sets on the secrets it creates; Secret Manager's
// notifications for them are published there (when the Pub/Sub part runs).
const SecretTopic = "projects/" + Project + "/topics/keyferry-secrets"

// VaultName is the Key Vault's name in its Event Grid events.
const VaultName = "keyferry-local"

// Options configure Start.
type Options struct {
	// Parts to start; nil means AllParts. The file store needs no part.
	Parts []string
	// Scale multiplies the quotas the fault layers enforce (when a caller sets rules); 0 means 1.
	Scale float64
	// Dir holds the generated configuration, CA files and the file store; "" means a new temporary
	// directory, removed by Stop.
	Dir string
	// Logf reports progress; nil is quiet.
	Logf func(format string, args ...any)
	// Federation makes the stores accept only credentials obtained by workload identity federation
	// (see the package documentation and Cloud.Federation).
	Federation bool
}

// Cloud is a running local cloud.
type Cloud struct {
	Dir string

	Moto     *moto.Server
	AWSFault *fault.Layer
	AWSProxy *fault.Proxy
	Trail    *events.Trail // between the fault layer and moto: EventBridge events for writes

	// Notifier publishes Secret Manager notifications to the Pub/Sub emulator (GCP and Pub/Sub parts).
	Notifier *gcp.Notifier

	Issuer     *oidc.Issuer
	KeyVault   *azkv.Server
	AzureFault *fault.Layer

	SecretManager *gcp.SecretManager
	GCPFault      *fault.Layer
	PubSub        *gcp.PubSub

	Vault      *vault.Server
	VaultFault *fault.Layer
	VaultProxy *fault.Proxy

	// Federation holds the token services (Options.Federation; nil otherwise).
	Federation *Federation

	ownDir   bool
	mu       sync.Mutex
	stops    []func()
	awsSink  atomic.Pointer[func([]byte)]
	kvSink   atomic.Pointer[func([]byte)]
	notifier atomic.Pointer[gcp.Notifier]
}

// OnAWSEvent sets where the EventBridge events of AWS writes go (a function's event source); nil drops
// them, as an account without rules does.
func (c *Cloud) OnAWSEvent(f func(event []byte)) { c.awsSink.Store(&f) }

// OnAzureEvent sets where the Key Vault's Event Grid events go; nil drops them.
func (c *Cloud) OnAzureEvent(f func(event []byte)) { c.kvSink.Store(&f) }

func deliver(p *atomic.Pointer[func([]byte)], ev []byte) {
	if f := p.Load(); f != nil && *f != nil {
		(*f)(ev)
	}
}

// Start starts the requested parts concurrently. If any part fails, everything already started is
// stopped again and the error names the part.
func Start(ctx context.Context, opts Options) (*Cloud, error) {
	parts := opts.Parts
	if parts == nil {
		parts = AllParts
	}
	scale := opts.Scale
	if scale <= 0 {
		scale = 1
	}
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	c := &Cloud{Dir: opts.Dir}
	if c.Dir == "" {
		d, err := os.MkdirTemp("", "keyferry-localcloud-")
		if err != nil {
			return nil, err
		}
		c.Dir, c.ownDir = d, true
	}
	if opts.Federation {
		if err := c.startFederation(); err != nil {
			c.Stop()
			return nil, fmt.Errorf("local cloud: starting the token services: %w", err)
		}
	}
	starters := map[string]func(context.Context) error{
		AWS:    func(ctx context.Context) error { return c.startAWS(ctx, scale) },
		Azure:  func(ctx context.Context) error { return c.startAzure(scale) },
		GCP:    func(ctx context.Context) error { return c.startGCP(scale) },
		PubSub: c.startPubSub,
		Vault:  func(ctx context.Context) error { return c.startVault(ctx, scale) },
	}
	var wg sync.WaitGroup
	errs := make([]error, len(parts))
	for i, p := range parts {
		start, ok := starters[p]
		if !ok {
			c.Stop()
			return nil, fmt.Errorf("local cloud: unknown part %q (parts: %s)", p, strings.Join(AllParts, ", "))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			if err := start(ctx); err != nil {
				errs[i] = fmt.Errorf("local cloud: starting %s: %w", p, err)
				return
			}
			logf("%-7s ready in %s", p, time.Since(t0).Round(time.Millisecond))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.Stop()
		return nil, err
	}
	if err := os.MkdirAll(c.FileStoreDir(), 0o700); err != nil {
		c.Stop()
		return nil, err
	}
	if c.SecretManager != nil && c.PubSub != nil {
		if err := c.startNotifications(ctx); err != nil {
			c.Stop()
			return nil, fmt.Errorf("local cloud: Secret Manager notifications: %w", err)
		}
	}
	return c, nil
}

func (c *Cloud) onStop(f func()) {
	c.mu.Lock()
	c.stops = append(c.stops, f)
	c.mu.Unlock()
}

// Stop stops every part (in reverse start order) and removes a temporary directory. It is safe to call
// more than once.
func (c *Cloud) Stop() {
	c.mu.Lock()
	stops := c.stops
	c.stops = nil
	c.mu.Unlock()
	for i := len(stops) - 1; i >= 0; i-- {
		stops[i]()
	}
	if c.ownDir && c.Dir != "" {
		_ = os.RemoveAll(c.Dir)
	}
}

func (c *Cloud) startAWS(ctx context.Context, scale float64) error {
	m, err := moto.Start(ctx, moto.Options{})
	if err != nil {
		return err
	}
	c.onStop(func() { _ = m.Stop() })
	tr, err := events.StartTrail(m.URL, func(ev []byte) { deliver(&c.awsSink, ev) })
	if err != nil {
		return err
	}
	c.onStop(func() { _ = tr.Close() })
	backend := tr.URL
	if f := c.Federation; f != nil {
		check, err := startTap(tr.URL, f.awsCredentialCheck, nil)
		if err != nil {
			return err
		}
		c.onStop(func() { _ = check.Close() })
		backend = check.URL
	}
	l := fault.New(scale, 1)
	p, err := l.Proxy(fault.AWS, backend)
	if err != nil {
		return err
	}
	c.onStop(func() { _ = p.Close() })
	c.Moto, c.AWSFault, c.AWSProxy, c.Trail = m, l, p, tr
	return nil
}

func (c *Cloud) startAzure(scale float64) error {
	var iss *oidc.Issuer
	var ca *oidc.CA
	if f := c.Federation; f != nil {
		iss, ca = f.Tenant, f.CA // Entra's tokens, the managed identity's included
	} else {
		var err error
		if iss, err = oidc.Start(oidc.Options{}); err != nil {
			return err
		}
		c.onStop(func() { _ = iss.Close() })
	}
	l := fault.New(scale, 2)
	kv, err := azkv.Start(azkv.Options{Faults: l, Issuer: iss, CA: ca, VaultName: VaultName,
		Events: func(ev []byte) { deliver(&c.kvSink, ev) }})
	if err != nil {
		return err
	}
	c.onStop(func() { _ = kv.Close() })
	if err := os.WriteFile(c.keyVaultCAFile(), kv.CACertPEM(), 0o600); err != nil {
		return err
	}
	c.Issuer, c.KeyVault, c.AzureFault = iss, kv, l
	return nil
}

func (c *Cloud) startGCP(scale float64) error {
	l := fault.New(scale, 3)
	notify := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if n := c.notifier.Load(); n != nil {
			return n.Interceptor(ctx, req, info, h)
		}
		return h(ctx, req)
	}
	o := gcp.SecretManagerOptions{Fault: l, Interceptors: []grpc.UnaryServerInterceptor{notify}}
	if f := c.Federation; f != nil {
		tc, err := f.CA.ServerTLSConfig()
		if err != nil {
			return err
		}
		o.TLS, o.Authenticate = tc, f.gcpPrincipal
	}
	sm, err := gcp.StartSecretManager(o)
	if err != nil {
		return err
	}
	c.onStop(sm.Stop)
	c.SecretManager, c.GCPFault = sm, l
	return nil
}

// startNotifications connects Secret Manager to the Pub/Sub emulator and creates SecretTopic.
func (c *Cloud) startNotifications(ctx context.Context) error {
	n, err := gcp.NewNotifier(ctx, c.PubSub.Host(), Project, nil)
	if err != nil {
		return err
	}
	c.onStop(func() { _ = n.Close() })
	if err := n.CreateTopic(ctx, SecretTopic); err != nil {
		return err
	}
	c.Notifier = n
	c.notifier.Store(n)
	return nil
}

func (c *Cloud) startPubSub(ctx context.Context) error {
	ps, err := gcp.StartPubSub(ctx, gcp.PubSubOptions{})
	if err != nil {
		return err
	}
	c.onStop(ps.Stop)
	c.PubSub = ps
	return nil
}

func (c *Cloud) startVault(ctx context.Context, scale float64) error {
	v, err := vault.Start(ctx, vault.Options{})
	if err != nil {
		return err
	}
	c.onStop(func() { _ = v.Stop() })
	backend := v.Addr
	if f := c.Federation; f != nil {
		if err := f.configureVault(ctx, v); err != nil {
			return err
		}
		logins, err := startTap(v.Addr, func(rp *httputil.ReverseProxy) http.Handler { return rp }, f.vaultLoginCounter)
		if err != nil {
			return err
		}
		c.onStop(func() { _ = logins.Close() })
		backend = logins.URL
	}
	l := fault.New(scale, 4)
	p, err := l.Proxy(fault.Vault, backend)
	if err != nil {
		return err
	}
	c.onStop(func() { _ = p.Close() })
	c.Vault, c.VaultFault, c.VaultProxy = v, l, p
	return nil
}

func (c *Cloud) keyVaultCAFile() string { return filepath.Join(c.Dir, "keyvault-ca.pem") }

// FileStoreDir is the directory of the local file store.
func (c *Cloud) FileStoreDir() string { return filepath.Join(c.Dir, "filestore") }

// Config is a keyferry.yaml with one store per running part (all `local: true`) plus the file store.
// In the federated cloud each store says, in `identity:`, how the functions of the other clouds reach it
// (the roles, app registration, workload identity providers and Vault jwt mounts of Federation), and
// Secret Manager is reached over TLS.
func (c *Cloud) Config() string {
	f := c.Federation
	var b strings.Builder
	b.WriteString("# The local cloud: every store runs on this machine. Generated by localtest/cloud.\nstores:\n")
	if c.AWSProxy != nil {
		awsIdentity := ""
		if f != nil {
			awsIdentity = fmt.Sprintf("    identity:\n      azure: {role_arn: %s, audience: %q}\n      gcp: {role_arn: %s, audience: %s}\n",
				RoleFromAzure, AWSAudienceFromAzure, RoleFromGCP, AWSAudienceFromGCP)
		}
		fmt.Fprintf(&b, "  aws:\n    type: aws-secretsmanager\n    region: %s\n    local: true\n    endpoint: %s\n%s", moto.Region, c.AWSProxy.URL, awsIdentity)
		fmt.Fprintf(&b, "  aws-ssm:\n    type: aws-ssm\n    region: %s\n    local: true\n    endpoint: %s\n%s", moto.Region, c.AWSProxy.URL, awsIdentity)
	}
	if c.KeyVault != nil {
		fmt.Fprintf(&b, "  azure:\n    type: azure-keyvault\n    vault: %s\n    local: true\n    ca_file: %s\n", c.KeyVault.URL(), c.keyVaultCAFile())
		if f != nil {
			fmt.Fprintf(&b, "    identity: {tenant_id: %s, client_id: %s}\n", f.Tenant.TenantID(), f.KeyVaultClientID)
		}
	}
	if c.SecretManager != nil {
		if f != nil {
			fmt.Fprintf(&b, "  gcp:\n    type: gcp-secretmanager\n    project: %s\n    local: true\n    endpoint: https://%s\n    ca_file: %s\n",
				Project, c.SecretManager.Addr(), f.CAFile)
			fmt.Fprintf(&b, "    identity:\n      service_account: %s\n      aws: {audience: %q}\n      azure: {audience: %q, token_audience: %q}\n",
				ReplicatorServiceAccount, GCPProviderAWS, GCPProviderAzure, GCPTokenAudienceFromAzure)
		} else {
			fmt.Fprintf(&b, "  gcp:\n    type: gcp-secretmanager\n    project: %s\n    local: true\n    endpoint: http://%s\n", Project, c.SecretManager.Addr())
		}
		if c.Notifier != nil {
			fmt.Fprintf(&b, "    topics: [%s]\n", SecretTopic)
		}
	}
	if c.VaultProxy != nil {
		fmt.Fprintf(&b, "  vault:\n    type: vault-kv\n    address: %s\n    mount: secret\n    local: true\n", c.VaultProxy.URL)
		if f != nil {
			fmt.Fprintf(&b, "    identity:\n      role: %s\n", VaultRole)
			for _, home := range []string{AWS, Azure, GCP} {
				aud := VaultAudience
				if home == Azure {
					aud = VaultAudienceFromAzure
				}
				fmt.Fprintf(&b, "      %s: {mount: %s, audience: %q}\n", home, VaultMounts[home], aud)
			}
		}
	}
	fmt.Fprintf(&b, "  file:\n    type: file\n    path: %s\n", c.FileStoreDir())
	return b.String()
}

// WriteConfig writes Config to Dir/keyferry.yaml and returns its path.
func (c *Cloud) WriteConfig() (string, error) {
	p := filepath.Join(c.Dir, "keyferry.yaml")
	return p, os.WriteFile(p, []byte(c.Config()), 0o600)
}

// Env is the environment the local stores' credential chains read. It holds only the emulators'
// throwaway credentials. In the federated cloud it is the operator's (this process, the CLI): the
// Lambda's role keys, the tenant's managed identity, Vault's root token and Application Default
// Credentials from the operator's metadata server; the functions get FunctionEnv instead.
func (c *Cloud) Env() map[string]string {
	env := map[string]string{}
	if f := c.Federation; f != nil {
		env["GCE_METADATA_HOST"], env["CLOUDSDK_CONFIG"], env["GOOGLE_APPLICATION_CREDENTIALS"] = f.Operator.Host(), c.operatorGcloudDir(), ""
	}
	if c.Moto != nil {
		env["AWS_ACCESS_KEY_ID"] = moto.AccessKeyID
		env["AWS_SECRET_ACCESS_KEY"] = moto.SecretAccessKey
		env["AWS_REGION"] = moto.Region
		env["AWS_EC2_METADATA_DISABLED"] = "true"
		env["AWS_CONFIG_FILE"] = os.DevNull // a developer's own profiles never reach the local cloud
		env["AWS_SHARED_CREDENTIALS_FILE"] = os.DevNull
	}
	if c.Issuer != nil {
		for k, v := range c.Issuer.ManagedIdentityEnv() {
			env[k] = v
		}
		// By client ID: a process that uses several local clouds in turn must not get an earlier one's
		// token from MSAL's process-wide cache.
		env[stores.EnvLocalManagedIdentity] = c.Issuer.ClientID()
	}
	if c.Vault != nil {
		env["VAULT_TOKEN"] = c.Vault.RootToken
	}
	if c.PubSub != nil {
		env["PUBSUB_EMULATOR_HOST"] = c.PubSub.Host()
	}
	return env
}

// SetEnv sets Env in this process and returns a function restoring the previous values.
func (c *Cloud) SetEnv() (restore func()) {
	type old struct {
		v  string
		ok bool
	}
	saved := map[string]old{}
	for k, v := range c.Env() {
		ov, ok := os.LookupEnv(k)
		saved[k] = old{ov, ok}
		_ = os.Setenv(k, v)
	}
	return func() {
		for k, o := range saved {
			if o.ok {
				_ = os.Setenv(k, o.v)
			} else {
				_ = os.Unsetenv(k)
			}
		}
	}
}

// Faults returns the fault layer of each running part, by store name of the generated config.
func (c *Cloud) Faults() map[string]*fault.Layer {
	m := map[string]*fault.Layer{}
	if c.AWSFault != nil {
		m["aws"], m["aws-ssm"] = c.AWSFault, c.AWSFault
	}
	if c.AzureFault != nil {
		m["azure"] = c.AzureFault
	}
	if c.GCPFault != nil {
		m["gcp"] = c.GCPFault
	}
	if c.VaultFault != nil {
		m["vault"] = c.VaultFault
	}
	return m
}

// Logs returns the captured output of every part, each under a heading.
func (c *Cloud) Logs() string {
	parts := map[string]func() string{}
	if c.Moto != nil {
		parts["moto"] = c.Moto.Logs
	}
	if c.Issuer != nil {
		parts["identity"] = c.Issuer.Logs
	}
	if c.KeyVault != nil {
		parts["keyvault"] = c.KeyVault.Logs
	}
	if c.SecretManager != nil {
		parts["secretmanager"] = c.SecretManager.Logs
	}
	if c.PubSub != nil {
		parts["pubsub"] = c.PubSub.Logs
	}
	if c.Vault != nil {
		parts["vault"] = c.Vault.Logs
	}
	if f := c.Federation; f != nil {
		parts["identity-google"], parts["identity-aws-outbound"] = f.Google.Logs, f.Outbound.Logs
	}
	names := make([]string, 0, len(parts))
	for n := range parts {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "==> %s <==\n%s\n", n, parts[n]())
	}
	return b.String()
}
