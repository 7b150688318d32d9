// Package identity obtains credentials for keyferry's peer stores (AWS Secrets Manager, Azure Key Vault,
// GCP Secret Manager, Vault) from the identity of the function keyferry runs as, with workload identity
// federation only: no static keys are read, stored or accepted.
//
// Directions (home → peer):
//
//	azure → aws    managed-identity token (aud Peer.AWSAudience) → sts:AssumeRoleWithWebIdentity
//	gcp   → aws    metadata-server ID token (aud Peer.AWSAudience) → sts:AssumeRoleWithWebIdentity
//	aws   → azure  sts:GetWebIdentityToken (aud Peer.AzureAudience) → Entra client assertion
//	gcp   → azure  metadata-server ID token (aud Peer.AzureAudience) → Entra client assertion
//	aws   → gcp    SigV4-signed GetCallerIdentity → Google STS (+ optional SA impersonation)
//	azure → gcp    managed-identity token (aud Peer.GCPTokenAudience) → Google STS (+ impersonation)
//	any   → vault  the home token (aud Peer.VaultAudience) → PUT /v1/auth/<mount>/login
//
// A function reaching a store of its own cloud uses that cloud's ambient identity, and HomeLocal (the
// local cloud, the CLI) uses every SDK's default chain.
//
// Every constructor returns the SDK's own credential type, cached by the SDK's cache and refreshed
// before it expires. A failed exchange is an *Error naming the direction, what was presented (the
// claims of the JWT sent, decoded without its signature) and what the other side answered. Tokens
// never appear in errors.
package identity

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"cloud.google.com/go/auth"
	"cloud.google.com/go/auth/credentials/externalaccount"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/aws/aws-sdk-go-v2/aws"
	vault "github.com/hashicorp/vault/api"
)

// Home is the cloud keyferry runs in, whose identity is federated to the peers.
type Home string

const (
	HomeAWS   Home = "aws"   // AWS Lambda: the execution role's credentials from the environment
	HomeAzure Home = "azure" // Azure Functions: the managed identity (IDENTITY_ENDPOINT / IDENTITY_HEADER)
	HomeGCP   Home = "gcp"   // Cloud Functions / Cloud Run: the runtime service account (metadata server)
	HomeLocal Home = "local" // the local cloud and the CLI: each SDK's ambient default chain
)

func (h Home) valid() bool {
	switch h {
	case HomeAWS, HomeAzure, HomeGCP, HomeLocal:
		return true
	}
	return false
}

// Defaults.
const (
	// DefaultAzureAudience is the audience Entra expects on federated client assertions.
	DefaultAzureAudience = "api://AzureADTokenExchange"
	// DefaultAWSAudience is the audience requested for Google ID tokens presented to AWS.
	DefaultAWSAudience = "sts.amazonaws.com"
	// DefaultVaultMount is the path of Vault's jwt auth method.
	DefaultVaultMount = "jwt"
	// CloudPlatformScope is the scope of the GCP access tokens.
	CloudPlatformScope = "https://www.googleapis.com/auth/cloud-platform"
)

// Peer holds the federation settings of one peer store (keyferry.yaml's per-store `identity:`).
type Peer struct {
	// AWSRoleARN is the role to assume with the home token (sts:AssumeRoleWithWebIdentity).
	AWSRoleARN string
	// AWSRegion is the region of the peer's STS endpoint (and the fallback region of a Lambda home).
	AWSRegion string
	// AWSAudience is the aud the home token must carry for AWS: for an Azure home the App ID URI of the
	// app registration the IAM OIDC provider lists as a client ID (required); for a GCP home the
	// audience requested from the metadata server (default "sts.amazonaws.com").
	AWSAudience string

	// GCPAudience is the workload identity provider:
	// //iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/X
	GCPAudience string
	// GCPTokenAudience is the aud the home JWT must carry for the provider (one of its allowed
	// audiences; an Azure managed identity needs an App ID URI here). Default "https:" + GCPAudience,
	// Google's default allowed audience.
	GCPTokenAudience string
	// GCPServiceAccount, if set, is impersonated with the federated token (generateAccessToken).
	GCPServiceAccount string

	// AzureTenantID and AzureClientID name the app registration (or user-assigned managed identity)
	// holding the federated identity credential.
	AzureTenantID, AzureClientID string
	// AzureAudience is the aud of the assertion; default api://AzureADTokenExchange.
	AzureAudience string
	// AzureManagedIdentityClientID (Azure home only) selects a user-assigned managed identity; empty
	// means the system-assigned identity.
	AzureManagedIdentityClientID string

	// VaultRole is the jwt auth role; VaultMount its mount path (default "jwt").
	VaultRole, VaultMount string
	// VaultAudience is the aud of the home token presented to Vault (one of the role's bound_audiences).
	VaultAudience string
}

// Endpoints overrides the services' URLs (tests, sovereign clouds) and the transport. Zero values mean
// the public endpoints and the SDK defaults.
type Endpoints struct {
	// AWSSTS is the STS endpoint (sts.Options.BaseEndpoint) for AssumeRoleWithWebIdentity and, from a
	// Lambda, GetWebIdentityToken. Default: the SDK's regional endpoint (AWS_ENDPOINT_URL_STS honoured).
	AWSSTS string
	// EntraAuthorityHost is the Entra authority host, e.g. https://login.microsoftonline.com/.
	EntraAuthorityHost string
	// GoogleSTSTokenURL is the Google STS token endpoint; default https://sts.googleapis.com/v1/token.
	GoogleSTSTokenURL string
	// IAMCredentialsURL is the IAM Credentials API base URL; default https://iamcredentials.googleapis.com.
	IAMCredentialsURL string
	// GCEMetadataHost is the metadata server's host:port for ID tokens; default GCE_METADATA_HOST or
	// 169.254.169.254. (A GCP home reaching GCP uses Application Default Credentials, which read
	// GCE_METADATA_HOST only.)
	GCEMetadataHost string
	// VaultAddress is Vault's address; default the client's (VAULT_ADDR).
	VaultAddress string

	// HTTPClient carries every exchange (its Transport and Timeout are reused); nil means a default
	// client with a 30s timeout.
	HTTPClient *http.Client
	// AWSMaxAttempts caps the AWS SDK's attempts per STS call (0: SDK default, which also retries
	// InvalidIdentityToken for AssumeRoleWithWebIdentity).
	AWSMaxAttempts int
}

const defaultIAMCredentialsURL = "https://iamcredentials.googleapis.com"

// Refresh margins: credentials are replaced this long before they expire.
const (
	awsExpiryWindow  = 5 * time.Minute
	homeTokenTimeout = 30 * time.Second
)

// The types the constructors hand out.
var (
	_ aws.CredentialsProvider                        = (*webIdentityProvider)(nil)
	_ azcore.TokenCredential                         = (*assertionCredential)(nil)
	_ auth.TokenProvider                             = (*gcpTokenProvider)(nil)
	_ externalaccount.AwsSecurityCredentialsProvider = (*awsCredentialsSupplier)(nil)
	_ externalaccount.SubjectTokenProvider           = (*jwtSupplier)(nil)
	_ vault.AuthMethod                               = (*VaultAuth)(nil)
)

func direction(home Home, peer string) string { return string(home) + " → " + peer }

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// scopeFor turns a resource / App ID URI into the .default scope Entra and managed identity expect.
func scopeFor(resource string) string {
	if strings.HasSuffix(resource, "/.default") {
		return resource
	}
	return strings.TrimSuffix(resource, "/") + "/.default"
}

// missing returns an error naming the Peer fields that are required but empty.
func missing(dir string, fields ...string) error {
	var names []string
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i+1] == "" {
			names = append(names, fields[i])
		}
	}
	if len(names) == 0 {
		return nil
	}
	return &Error{Direction: dir, Step: "configuration", Err: fmt.Errorf("Peer.%s must be set", strings.Join(names, ", Peer."))}
}

func checkHome(home Home, peer string) error {
	if !home.valid() {
		return &Error{Direction: direction(home, peer), Step: "configuration",
			Err: fmt.Errorf("unknown home %q (want %q, %q, %q or %q)", home, HomeAWS, HomeAzure, HomeGCP, HomeLocal)}
	}
	return nil
}

func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx == nil {
		ctx = context.Background()
	}
	return context.WithTimeout(ctx, homeTokenTimeout)
}
