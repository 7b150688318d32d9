package cloud

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/keyferry/keyferry/core/stores"
	"github.com/keyferry/keyferry/localtest/idp"
	"github.com/keyferry/keyferry/localtest/moto"
	"github.com/keyferry/keyferry/localtest/oidc"
	"github.com/keyferry/keyferry/localtest/vault"
)

// The identities of the federated local cloud (Options.Federation). The AWS account is moto's.
const (
	Account = "123456789012"
	// LambdaFunction is the AWS function's name; LambdaRole its execution role, whose credentials are
	// moto's keys; LambdaCaller the role session Lambda runs it as.
	LambdaFunction = "keyferry"
	LambdaRole     = "arn:aws:iam::" + Account + ":role/keyferry-lambda"
	LambdaCaller   = "arn:aws:sts::" + Account + ":assumed-role/keyferry-lambda/" + LambdaFunction
	// RoleFromAzure and RoleFromGCP are the roles the Azure and GCP functions assume (their trust
	// policies name the Entra tenant and Google, the functions' identities and audiences).
	RoleFromAzure = "arn:aws:iam::" + Account + ":role/keyferry-from-azure"
	RoleFromGCP   = "arn:aws:iam::" + Account + ":role/keyferry-from-gcp"
	// AWSAudienceFromAzure is the App ID URI the Azure function's managed identity requests for AWS;
	// AWSAudienceFromGCP the audience of the GCP function's ID tokens for AWS.
	AWSAudienceFromAzure = "api://aws-federation"
	AWSAudienceFromGCP   = "sts.amazonaws.com"

	// GCPProjectNumber numbers the project holding the workload identity pool GCPPool.
	GCPProjectNumber = "424242424242"
	GCPPool          = "projects/" + GCPProjectNumber + "/locations/global/workloadIdentityPools/keyferry"
	// GCPProviderAWS and GCPProviderAzure are the pool's providers for the AWS and Azure functions.
	GCPProviderAWS   = "//iam.googleapis.com/" + GCPPool + "/providers/from-aws"
	GCPProviderAzure = "//iam.googleapis.com/" + GCPPool + "/providers/from-azure"
	// GCPTokenAudienceFromAzure is the App ID URI the Azure function's managed identity requests for
	// Google STS (an allowed audience of GCPProviderAzure).
	GCPTokenAudienceFromAzure = "api://gcp-federation"
	// ReplicatorServiceAccount is impersonated by the federated AWS and Azure functions;
	// FunctionServiceAccount is the GCP function's runtime service account.
	ReplicatorServiceAccount = "keyferry-replicator@" + Project + ".iam.gserviceaccount.com"
	FunctionServiceAccount   = "keyferry-fn@" + Project + ".iam.gserviceaccount.com"

	// VaultRole is the jwt auth role of every function, on one mount per home (VaultMounts), with the
	// audiences VaultAudience (AWS and GCP tokens) and VaultAudienceFromAzure (the managed identity's
	// App ID URI); its tokens carry VaultPolicy only.
	VaultRole              = "keyferry"
	VaultAudience          = "vault.keyferry"
	VaultAudienceFromAzure = "api://vault-federation"
	VaultPolicy            = "keyferry-kv"
)

// VaultMounts are the jwt auth mounts, by home cloud.
var VaultMounts = map[string]string{AWS: "jwt-aws", Azure: "jwt-azure", GCP: "jwt-gcp"}

// Federation is the workload identity of the local cloud's functions and the token services that
// exchange it, all on 127.0.0.1 (see Options.Federation). Every fake counts what it accepted and
// refused per subject (idp's CountsFor) and can list what it issued (Issued).
type Federation struct {
	CA     *oidc.CA
	CAFile string // the CA certificate, for KEYFERRY_IDENTITY_CA_FILE and the stores' ca_file

	// Tenant is the Entra tenant's token issuer (https://sts.windows.net/<tenant>/ stand-in): it signs
	// Entra's access tokens and serves the Azure function's managed-identity endpoint. Key Vault accepts
	// only its tokens.
	Tenant *oidc.Issuer
	// Google signs the GCP function's service-account ID tokens (accounts.google.com stand-in).
	Google *oidc.Issuer
	// Outbound is the AWS account's outbound identity federation issuer (GetWebIdentityToken).
	Outbound *oidc.Issuer

	AWSSTS    *idp.AWSSTS
	Entra     *idp.Entra
	GoogleSTS *idp.GoogleSTS
	// Metadata is the GCP function's metadata server; Operator the one behind the operator's
	// Application Default Credentials (this process, the CLI).
	Metadata, Operator *idp.Metadata

	// KeyVaultClientID is the app registration whose federated credentials trust the AWS function's
	// role and the GCP function's service account for Key Vault.
	KeyVaultClientID string

	// AWSCalls counts the AWS calls each principal made through the credential check in front of moto
	// (by assumed-role ARN), and the calls refused there (by "refused <code>").
	AWSCalls *Tally
	// VaultLogins counts jwt logins per mount ("jwt-aws ok", "jwt-aws refused").
	VaultLogins *Tally

	mu          sync.Mutex
	vaultTokens []string // client tokens Vault issued at login
}

// Tally is a set of counters.
type Tally struct {
	mu sync.Mutex
	m  map[string]int64
}

func newTally() *Tally { return &Tally{m: map[string]int64{}} }

func (t *Tally) add(k string) {
	t.mu.Lock()
	t.m[k]++
	t.mu.Unlock()
}

// Get returns one counter.
func (t *Tally) Get(k string) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[k]
}

// All returns a copy of every counter.
func (t *Tally) All() map[string]int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int64, len(t.m))
	for k, v := range t.m {
		out[k] = v
	}
	return out
}

// startFederation starts the issuers and the token services.
func (c *Cloud) startFederation() (err error) {
	f := &Federation{AWSCalls: newTally(), VaultLogins: newTally(), KeyVaultClientID: oidc.NewUUID()}
	if f.CA, err = oidc.NewCA(); err != nil {
		return err
	}
	f.CAFile = filepath.Join(c.Dir, "federation-ca.pem")
	if err := os.WriteFile(f.CAFile, f.CA.CertPEM(), 0o600); err != nil {
		return err
	}
	if err := os.MkdirAll(c.operatorGcloudDir(), 0o700); err != nil {
		return err
	}
	issuer := func(o oidc.Options) (*oidc.Issuer, error) {
		o.TLS, o.CA = true, f.CA
		iss, err := oidc.Start(o)
		if err != nil {
			return nil, err
		}
		c.onStop(func() { _ = iss.Close() })
		return iss, nil
	}
	tenant := oidc.NewUUID()
	if f.Tenant, err = issuer(oidc.Options{TenantID: tenant, IssuerPath: "/" + tenant + "/"}); err != nil {
		return err
	}
	if f.Google, err = issuer(oidc.Options{}); err != nil {
		return err
	}
	if f.Outbound, err = issuer(oidc.Options{}); err != nil {
		return err
	}
	hc := f.CA.Client()

	if f.Metadata, err = idp.StartMetadata(idp.MetadataConfig{Issuer: f.Google, ProjectID: Project, ProjectNumber: GCPProjectNumber,
		ServiceAccountEmail: FunctionServiceAccount}); err != nil {
		return err
	}
	c.onStop(func() { _ = f.Metadata.Close() })
	if f.Operator, err = idp.StartMetadata(idp.MetadataConfig{Issuer: f.Google, ProjectID: Project, ProjectNumber: GCPProjectNumber,
		ServiceAccountEmail: "operator@" + Project + ".iam.gserviceaccount.com"}); err != nil {
		return err
	}
	c.onStop(func() { _ = f.Operator.Close() })
	saID := f.Metadata.ServiceAccountUniqueID()
	mi := f.Tenant.PrincipalID() // the Azure function's managed identity

	if f.AWSSTS, err = idp.StartAWSSTS(idp.AWSSTSConfig{HTTPClient: hc, OutboundIssuer: f.Outbound,
		Roles: []idp.AWSRole{
			{RoleArn: RoleFromAzure, Provider: f.Tenant.Issuer(), Audience: AWSAudienceFromAzure, Subject: mi},
			{RoleArn: RoleFromGCP, Provider: f.Google.Issuer(), Audience: AWSAudienceFromGCP, Subject: saID},
		},
		Sessions: []idp.AWSSession{{AccessKeyID: moto.AccessKeyID, SecretAccessKey: moto.SecretAccessKey, RoleArn: LambdaRole,
			AssumedRoleArn: LambdaCaller, LambdaFunctionARN: "arn:aws:lambda:" + moto.Region + ":" + Account + ":function:" + LambdaFunction}},
	}); err != nil {
		return err
	}
	c.onStop(func() { _ = f.AWSSTS.Close() })

	if f.Entra, err = idp.StartEntra(idp.EntraConfig{TokenIssuer: f.Tenant, TLS: f.CA, HTTPClient: hc, Credentials: []idp.FederatedCredential{
		{TenantID: tenant, ClientID: f.KeyVaultClientID, Issuer: f.Outbound.Issuer(), Subject: LambdaRole},
		{TenantID: tenant, ClientID: f.KeyVaultClientID, Issuer: f.Google.Issuer(), Subject: saID},
	}}); err != nil {
		return err
	}
	c.onStop(func() { _ = f.Entra.Close() })

	if f.GoogleSTS, err = idp.StartGoogleSTS(idp.GoogleSTSConfig{HTTPClient: hc,
		Providers: []idp.WorkloadIdentityProvider{
			{Audience: GCPProviderAWS, AWSAccountID: Account, AWSVerifyURL: f.AWSSTS.URL, Subject: "arn:aws:sts::" + Account + ":assumed-role/keyferry-lambda/*"},
			{Audience: GCPProviderAzure, Issuer: f.Tenant.Issuer(), AllowedAudiences: []string{GCPTokenAudienceFromAzure}, Subject: mi},
		},
		ServiceAccounts: []idp.GoogleServiceAccount{{Email: ReplicatorServiceAccount, Members: []string{
			"principalSet://iam.googleapis.com/" + GCPPool + "/attribute.aws_role/arn:aws:sts::" + Account + ":assumed-role/keyferry-lambda",
			"principal://iam.googleapis.com/" + GCPPool + "/subject/" + mi,
		}}},
	}); err != nil {
		return err
	}
	c.onStop(func() { _ = f.GoogleSTS.Close() })
	c.Federation = f
	return nil
}

// gcpPrincipal is who a Secret Manager bearer token belongs to: a token of the Google STS / IAM Credentials
// fake (the federated functions), of the GCP function's metadata server, or of the operator's.
func (f *Federation) gcpPrincipal(_ context.Context, token string) (string, error) {
	if t, ok := f.GoogleSTS.LookupAccessToken(token); ok {
		if t.ServiceAccount != "" {
			return "serviceAccount:" + t.ServiceAccount + " (impersonated by " + t.Principal + ")", nil
		}
		return t.Principal, nil
	}
	if f.Metadata.ValidAccessToken(token) {
		return "serviceAccount:" + f.Metadata.ServiceAccountEmail(), nil
	}
	if f.Operator.ValidAccessToken(token) {
		return "serviceAccount:" + f.Operator.ServiceAccountEmail(), nil
	}
	return "", errors.New("the token was not issued by the local Google STS, IAM Credentials or a metadata server, or it expired")
}

// configureVault mounts one jwt auth method per home cloud, each trusting that cloud's issuer for its
// function's identity only, with a policy on the KV mount.
func (f *Federation) configureVault(ctx context.Context, v *vault.Server) error {
	if err := v.WritePolicy(ctx, VaultPolicy, `path "secret/*" { capabilities = ["create", "read", "update", "patch", "delete", "list"] }`); err != nil {
		return err
	}
	ca := string(f.CA.CertPEM())
	role := func(aud, sub string, claims map[string]any) map[string]vault.JWTRole {
		return map[string]vault.JWTRole{VaultRole: {BoundAudiences: []string{aud}, BoundSubject: sub, BoundClaims: claims,
			Policies: []string{VaultPolicy}, TTL: time.Hour}}
	}
	for mount, a := range map[string]vault.JWTAuth{
		VaultMounts[AWS]: {JWKSURL: f.Outbound.JWKSURL(), JWKSCAPEM: ca, BoundIssuer: f.Outbound.Issuer(),
			Roles: role(VaultAudience, LambdaRole, map[string]any{"/https:~1~1sts.amazonaws.com~1/aws_account": Account})},
		VaultMounts[Azure]: {JWKSURL: f.Tenant.JWKSURL(), JWKSCAPEM: ca, BoundIssuer: f.Tenant.Issuer(),
			Roles: role(VaultAudienceFromAzure, f.Tenant.PrincipalID(), map[string]any{"tid": f.Tenant.TenantID()})},
		VaultMounts[GCP]: {JWKSURL: f.Google.JWKSURL(), JWKSCAPEM: ca, BoundIssuer: f.Google.Issuer(),
			Roles: role(VaultAudience, f.Metadata.ServiceAccountUniqueID(), map[string]any{"email": FunctionServiceAccount})},
	} {
		if err := v.EnableJWT(ctx, mount, a); err != nil {
			return err
		}
	}
	return nil
}

// Issued lists every token and secret key the token services issued so far (the JWTs of every issuer,
// the STS sessions' keys, Google's and the metadata servers' access tokens, Vault's client tokens), so
// that a test can check that none appears in a log. moto's well-known keys are left out.
func (f *Federation) Issued() []string {
	var out []string
	for _, iss := range []*oidc.Issuer{f.Tenant, f.Google, f.Outbound} {
		out = append(out, iss.MintedTokens()...)
	}
	for _, s := range f.AWSSTS.IssuedSecrets() {
		if s != moto.SecretAccessKey {
			out = append(out, s)
		}
	}
	out = append(out, f.GoogleSTS.IssuedSecrets()...)
	out = append(out, f.Metadata.IssuedSecrets()...)
	out = append(out, f.Operator.IssuedSecrets()...)
	f.mu.Lock()
	out = append(out, f.vaultTokens...)
	f.mu.Unlock()
	return out
}

// tap is a reverse proxy on 127.0.0.1 in front of an emulator: h wraps the proxy (to check requests) and
// modify sees the responses.
type tap struct {
	URL string
	srv *http.Server
}

func startTap(target string, h func(rp *httputil.ReverseProxy) http.Handler, modify func(*http.Response) error) (*tap, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = modify
	rp.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, _ error) {
		http.Error(w, "local cloud: backend unreachable", http.StatusBadGateway)
	}
	t := &tap{URL: "http://" + lis.Addr().String(), srv: &http.Server{Handler: h(rp), ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = t.srv.Serve(lis) }()
	return t, nil
}

func (t *tap) Close() error { return t.srv.Close() }

// awsCredentialCheck accepts only requests signed with the Lambda's execution role (moto's keys) or a
// session the STS fake issued, the signature verified, as AWS does; moto itself accepts any key.
func (f *Federation) awsCredentialCheck(rp *httputil.ReverseProxy) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
		if err != nil {
			http.Error(w, "local cloud: cannot read the request", http.StatusBadRequest)
			return
		}
		sess, err := f.AWSSTS.Authenticate(r, body)
		var ae *idp.AWSAuthError
		if errors.As(err, &ae) {
			f.AWSCalls.add("refused " + ae.Code)
			writeAWSRefusal(w, r, ae)
			return
		}
		f.AWSCalls.add(sess.AssumedRoleArn)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rp.ServeHTTP(w, r)
	})
}

// writeAWSRefusal answers as the AWS JSON protocol (X-Amz-Target) or the query protocol does.
func writeAWSRefusal(w http.ResponseWriter, r *http.Request, ae *idp.AWSAuthError) {
	if r.Header.Get("X-Amz-Target") == "" {
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(ae.Status)
		_, _ = fmt.Fprintf(w, `<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error></ErrorResponse>`,
			ae.Code, xmlText(ae.Message))
		return
	}
	code, status := ae.Code, http.StatusBadRequest
	switch ae.Code { // the JSON services' names for STS's codes
	case "InvalidClientTokenId":
		code = "UnrecognizedClientException"
	case "SignatureDoesNotMatch":
		code = "InvalidSignatureException"
	case "ExpiredToken":
		code = "ExpiredTokenException"
	case "MissingAuthenticationToken":
		code, status = "MissingAuthenticationTokenException", http.StatusForbidden
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Errortype", code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": ae.Message})
}

func xmlText(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// vaultLoginCounter counts jwt logins per mount and keeps the client tokens Vault issued (for Issued).
func (f *Federation) vaultLoginCounter(resp *http.Response) error {
	r := resp.Request
	seg := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/v1/"), "/"), "/")
	if len(seg) != 3 || seg[0] != "auth" || seg[2] != "login" || (r.Method != http.MethodPut && r.Method != http.MethodPost) {
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		f.VaultLogins.add(seg[1] + " refused")
		return nil
	}
	f.VaultLogins.add(seg[1] + " ok")
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return err
	}
	var out struct {
		Auth struct {
			ClientToken string `json:"client_token"`
		} `json:"auth"`
	}
	if json.Unmarshal(body, &out) == nil && out.Auth.ClientToken != "" {
		f.mu.Lock()
		f.vaultTokens = append(f.vaultTokens, out.Auth.ClientToken)
		f.mu.Unlock()
	}
	return nil
}

// operatorGcloudDir is an empty gcloud configuration directory: no gcloud login of this machine takes
// the place of the operator's metadata server.
func (c *Cloud) operatorGcloudDir() string { return filepath.Join(c.Dir, "gcloud-operator") }

// FunctionEnv is the environment of the function running in home (AWS, Azure or GCP) in the federated
// cloud: that cloud's identity only (the Lambda's execution role; the managed identity; the metadata
// server), the token services' endpoints, and every other credential variable set empty so that none
// is inherited from this process.
func (c *Cloud) FunctionEnv(home string) (map[string]string, error) {
	f := c.Federation
	if f == nil {
		return nil, errors.New("local cloud: FunctionEnv needs Options.Federation")
	}
	env := map[string]string{}
	for _, k := range credentialVariables {
		env[k] = ""
	}
	gcloud := filepath.Join(c.Dir, "gcloud-"+home) // no gcloud login of this machine reaches a function
	if err := os.MkdirAll(gcloud, 0o700); err != nil {
		return nil, err
	}
	for k, v := range map[string]string{
		stores.EnvHome: home, stores.EnvSTSEndpoint: f.AWSSTS.URL, stores.EnvEntraAuthority: f.Entra.URL,
		stores.EnvGoogleSTS: f.GoogleSTS.TokenURL(), stores.EnvIAMCredentials: f.GoogleSTS.URL,
		stores.EnvIdentityCAFile: f.CAFile, "CLOUDSDK_CONFIG": gcloud,
		"AWS_CONFIG_FILE": os.DevNull, "AWS_SHARED_CREDENTIALS_FILE": os.DevNull, "AWS_EC2_METADATA_DISABLED": "true",
	} {
		env[k] = v
	}
	if c.PubSub != nil {
		env["PUBSUB_EMULATOR_HOST"] = c.PubSub.Host()
	}
	switch home {
	case AWS:
		env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["AWS_REGION"] = moto.AccessKeyID, moto.SecretAccessKey, moto.Region
	case Azure:
		for k, v := range f.Tenant.ManagedIdentityEnv() {
			env[k] = v
		}
		env[stores.EnvLocalManagedIdentity] = f.Tenant.ClientID()
	case GCP:
		env["GCE_METADATA_HOST"], env[stores.EnvMetadataHost] = f.Metadata.Host(), f.Metadata.Host()
	default:
		return nil, fmt.Errorf("local cloud: no function runs in %q (want %s, %s or %s)", home, AWS, Azure, GCP)
	}
	return env, nil
}

// credentialVariables are the variables through which the SDKs find credentials.
var credentialVariables = []string{
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
	"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
	"AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION",
	"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET",
	"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE",
	"AZURE_USERNAME", "AZURE_PASSWORD",
	"VAULT_TOKEN", "VAULT_ADDR",
	"GCE_METADATA_HOST", "GCE_METADATA_IP", "GOOGLE_APPLICATION_CREDENTIALS", stores.EnvMetadataHost,
	stores.EnvLocalManagedIdentity,
}
