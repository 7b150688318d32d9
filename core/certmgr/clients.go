package certmgr

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"

	certificatemanager "cloud.google.com/go/certificatemanager/apiv1"
	cloudkms "cloud.google.com/go/kms/apiv1"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	vault "github.com/hashicorp/vault/api"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/pki"
	"github.com/keyferry/keyferry/core/store/vaultkv"
)

// Clients overrides how the manager reaches the clouds. Every field is optional: a nil builder uses the
// default, which authenticates with the workload identity of the cloud (the function's role, managed
// identity or service account; on the local cloud, the emulators' variables) and honours the target's
// `local`, `endpoint` and `ca_file` settings. Builders are called once per distinct place, on first use.
type Clients struct {
	// Issuer replaces the configured issuer altogether.
	Issuer pki.Issuer
	// ACM builds the ACM client of a target's region (and endpoint).
	ACM func(ctx context.Context, t *config.ACMTarget) (*acm.Client, error)
	// KeyVault builds the Key Vault certificates client of a target's vault.
	KeyVault func(ctx context.Context, t *config.KeyVaultTarget) (*azcertificates.Client, error)
	// CertificateManager builds the Certificate Manager client of a target.
	CertificateManager func(ctx context.Context, t *config.CertManagerTarget) (*certificatemanager.Client, error)
	// KMS builds the KMS client of the builtin issuer's key.
	KMS func(ctx context.Context, k *config.KMSKey) (*kms.Client, error)
	// KeyVaultKeys builds the Key Vault keys client of the builtin issuer's key.
	KeyVaultKeys func(ctx context.Context, k *config.KeyVaultKey) (*azkeys.Client, error)
	// CloudKMS builds the Cloud KMS client of the builtin issuer's key. The manager closes it when the
	// issuer cannot be built; otherwise it lives as long as the issuer.
	CloudKMS func(ctx context.Context, k *config.CloudKMSKey) (*cloudkms.KeyManagementClient, error)
	// Vault builds the Vault client of a vault-kv store (for the vault issuer and Vault PKI inventory).
	Vault func(ctx context.Context, sc *config.StoreConfig) (*vault.Client, error)
}

// awsConfig loads the AWS SDK configuration the usual way for region, trusting caFile if given.
func awsConfig(ctx context.Context, region, caFile string) (aws.Config, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region))
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	if caFile != "" {
		hc, err := httpClientTrusting(caFile)
		if err != nil {
			return aws.Config{}, err
		}
		cfg.HTTPClient = hc
	}
	return cfg, nil
}

func defaultACM(ctx context.Context, t *config.ACMTarget) (*acm.Client, error) {
	cfg, err := awsConfig(ctx, t.Region, t.CAFile)
	if err != nil {
		return nil, err
	}
	return acm.NewFromConfig(cfg, func(o *acm.Options) {
		if t.Endpoint != "" {
			o.BaseEndpoint = aws.String(t.Endpoint)
		}
	}), nil
}

func defaultKMS(ctx context.Context, k *config.KMSKey) (*kms.Client, error) {
	cfg, err := awsConfig(ctx, k.Region, k.CAFile)
	if err != nil {
		return nil, err
	}
	return kms.NewFromConfig(cfg, func(o *kms.Options) {
		if k.Endpoint != "" {
			o.BaseEndpoint = aws.String(k.Endpoint)
		}
	}), nil
}

func defaultKeyVault(_ context.Context, t *config.KeyVaultTarget) (*azcertificates.Client, error) {
	cred, co, err := keyVaultAccess(t.CAFile)
	if err != nil {
		return nil, err
	}
	return azcertificates.NewClient(t.Vault, cred, &azcertificates.ClientOptions{
		ClientOptions:                        co,
		DisableChallengeResourceVerification: isLoopbackURL(t.Vault),
	})
}

// defaultKeyVaultKeys builds an azkeys client for the issuer key's vault, as defaultKeyVault does for
// certificates.
func defaultKeyVaultKeys(_ context.Context, k *config.KeyVaultKey) (*azkeys.Client, error) {
	cred, co, err := keyVaultAccess(k.CAFile)
	if err != nil {
		return nil, err
	}
	return azkeys.NewClient(k.Vault, cred, &azkeys.ClientOptions{
		ClientOptions:                        co,
		DisableChallengeResourceVerification: isLoopbackURL(k.Vault),
	})
}

// keyVaultAccess is the function's managed identity and the client options for a vault, trusting caFile
// (the local cloud's) for both the vault and the identity endpoint.
func keyVaultAccess(caFile string) (azcore.TokenCredential, azcore.ClientOptions, error) {
	var co azcore.ClientOptions
	mo := &azidentity.ManagedIdentityCredentialOptions{}
	if caFile != "" {
		hc, err := httpClientTrusting(caFile)
		if err != nil {
			return nil, co, err
		}
		co.Transport = hc
		mo.ClientOptions.Transport = hc
	}
	cred, err := azidentity.NewManagedIdentityCredential(mo)
	if err != nil {
		return nil, co, fmt.Errorf("managed identity: %w", err)
	}
	return cred, co, nil
}

func defaultCertificateManager(ctx context.Context, t *config.CertManagerTarget) (*certificatemanager.Client, error) {
	opts, err := localGRPCOptions(t.Endpoint, t.CAFile)
	if err != nil {
		return nil, err
	}
	return certificatemanager.NewClient(ctx, opts...)
}

func defaultCloudKMS(ctx context.Context, k *config.CloudKMSKey) (*cloudkms.KeyManagementClient, error) {
	opts, err := localGRPCOptions(k.Endpoint, k.CAFile)
	if err != nil {
		return nil, err
	}
	return cloudkms.NewKeyManagementClient(ctx, opts...)
}

// localGRPCOptions are the client options for a Google API on the local cloud (none without an
// endpoint: the service, with the application default credentials). The loader allows an endpoint on
// the local cloud only: no credentials; plaintext gRPC for an http:// endpoint, TLS (trusting caFile)
// for https://.
func localGRPCOptions(endpoint, caFile string) ([]option.ClientOption, error) {
	if endpoint == "" {
		return nil, nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("endpoint %q is not a URL", endpoint)
	}
	creds := insecure.NewCredentials()
	if u.Scheme == "https" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if caFile != "" {
			pool, err := poolFrom(caFile)
			if err != nil {
				return nil, err
			}
			tc.RootCAs = pool
		}
		creds = credentials.NewTLS(tc)
	}
	return []option.ClientOption{option.WithEndpoint(u.Host), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(creds))}, nil
}

func defaultVault(ctx context.Context, sc *config.StoreConfig) (*vault.Client, error) {
	if sc.VaultKV == nil {
		return nil, fmt.Errorf("store %s is not a vault-kv store", sc.Name)
	}
	addr := sc.VaultKV.Address
	if sc.Endpoint != "" {
		addr = sc.Endpoint
	}
	return vaultkv.NewClient(ctx, vaultkv.ClientConfig{Address: addr, CACert: sc.CAFile, Namespace: sc.VaultKV.Namespace})
}

func poolFrom(caFile string) (*x509.CertPool, error) {
	pemData, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		return nil, fmt.Errorf("ca_file %s holds no PEM certificate", caFile)
	}
	return pool, nil
}

func httpClientTrusting(caFile string) (*http.Client, error) {
	pool, err := poolFrom(caFile)
	if err != nil {
		return nil, err
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: t}, nil
}

func isLoopbackURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	if u.Hostname() == "localhost" {
		return true
	}
	ip := net.ParseIP(u.Hostname())
	return ip != nil && ip.IsLoopback()
}
