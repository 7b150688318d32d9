package stores

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/identity"
)

// Environment variables that say where this process runs and, for tests and sovereign clouds, where the
// token services are. KEYFERRY_HOME overrides the detection from the platforms' own variables.
const (
	EnvHome           = "KEYFERRY_HOME"                // aws, azure, gcp or local
	EnvSTSEndpoint    = "KEYFERRY_STS_ENDPOINT"        // AWS STS
	EnvEntraAuthority = "KEYFERRY_ENTRA_AUTHORITY"     // Entra authority host
	EnvGoogleSTS      = "KEYFERRY_GOOGLE_STS_URL"      // Google STS token URL
	EnvIAMCredentials = "KEYFERRY_IAM_CREDENTIALS_URL" // IAM Credentials base URL
	EnvMetadataHost   = "KEYFERRY_METADATA_HOST"       // GCE metadata server host:port
	EnvIdentityCAFile = "KEYFERRY_IDENTITY_CA_FILE"    // extra CA certificates for the token services (local cloud)
	// EnvLocalManagedIdentity is the client ID of the local cloud's managed identity, used by `local: true`
	// Key Vault stores: MSAL caches managed-identity tokens per process and client ID, so a process that
	// talks to several local clouds in turn (a test binary) must not be served an earlier cloud's token.
	EnvLocalManagedIdentity = "KEYFERRY_LOCAL_MANAGED_IDENTITY"
	defaultFederationTO     = 30 * time.Second
)

// Home is where this process runs: KEYFERRY_HOME, else the platform's own variables (Lambda, Azure
// Functions, Cloud Functions / Cloud Run), else local (the CLI and the local cloud).
func Home() identity.Home {
	switch os.Getenv(EnvHome) {
	case "aws":
		return identity.HomeAWS
	case "azure":
		return identity.HomeAzure
	case "gcp":
		return identity.HomeGCP
	case "local":
		return identity.HomeLocal
	}
	switch {
	case os.Getenv("AWS_LAMBDA_FUNCTION_NAME") != "":
		return identity.HomeAWS
	case os.Getenv("FUNCTIONS_CUSTOMHANDLER_PORT") != "" || os.Getenv("WEBSITE_SITE_NAME") != "":
		return identity.HomeAzure
	case os.Getenv("K_SERVICE") != "" || os.Getenv("FUNCTION_TARGET") != "":
		return identity.HomeGCP
	}
	return identity.HomeLocal
}

// cloudOf is the cloud a store type lives in ("" for Vault and the file store, which belong to none).
func cloudOf(typ string) identity.Home {
	switch typ {
	case config.TypeAWSSecretsManager, config.TypeAWSSSM:
		return identity.HomeAWS
	case config.TypeAzureKeyVault:
		return identity.HomeAzure
	case config.TypeGCPSecretManager:
		return identity.HomeGCP
	}
	return ""
}

// federated reports whether a store is reached by exchanging the home's identity: it has `identity:`,
// this process runs in a cloud, and the store is in another one (Vault is always "another").
func federated(sc *config.StoreConfig, home identity.Home) bool {
	return sc.Identity != nil && home != identity.HomeLocal && cloudOf(sc.Type) != home
}

// peer maps a store's identity settings, for this home, onto identity.Peer.
func peer(sc *config.StoreConfig, home identity.Home) identity.Peer {
	s := sc.Identity.For(string(home))
	p := identity.Peer{}
	switch sc.Type {
	case config.TypeAWSSecretsManager:
		p.AWSRoleARN, p.AWSAudience, p.AWSRegion = s.RoleARN, s.Audience, sc.AWSSecretsManager.Region
	case config.TypeAWSSSM:
		p.AWSRoleARN, p.AWSAudience, p.AWSRegion = s.RoleARN, s.Audience, sc.AWSSSM.Region
	case config.TypeAzureKeyVault:
		p.AzureTenantID, p.AzureClientID, p.AzureAudience = s.TenantID, s.ClientID, s.Audience
	case config.TypeGCPSecretManager:
		p.GCPAudience, p.GCPServiceAccount, p.GCPTokenAudience = s.Audience, s.ServiceAccount, s.TokenAudience
	case config.TypeVaultKV:
		p.VaultRole, p.VaultMount, p.VaultAudience = s.Role, s.Mount, s.Audience
	}
	return p
}

// endpoints are the token services' addresses from the environment (empty: the public ones).
func endpoints() (identity.Endpoints, error) {
	e := identity.Endpoints{AWSSTS: os.Getenv(EnvSTSEndpoint), EntraAuthorityHost: os.Getenv(EnvEntraAuthority),
		GoogleSTSTokenURL: os.Getenv(EnvGoogleSTS), IAMCredentialsURL: os.Getenv(EnvIAMCredentials),
		GCEMetadataHost: os.Getenv(EnvMetadataHost)}
	if f := os.Getenv(EnvIdentityCAFile); f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return e, fmt.Errorf("%s: %w", EnvIdentityCAFile, err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return e, fmt.Errorf("%s: %s holds no PEM certificate", EnvIdentityCAFile, f)
		}
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		e.HTTPClient = &http.Client{Transport: t, Timeout: defaultFederationTO}
	}
	return e, nil
}
