// Package stores opens the stores of a keyferry.yaml: it turns each `stores:` entry into the adapter of
// its type. Opening builds no SDK client and makes no call: every adapter builds its client on first use,
// so a function that touches one cloud never loads another cloud's SDK configuration.
//
// Credentials never come from the configuration file. In production each adapter uses its cloud's
// workload identity (the function's IAM role, managed identity or service account). A store marked
// `local: true` belongs to the local cloud and takes the emulators' credentials from the environment
// (AWS_ACCESS_KEY_ID=testing, IDENTITY_ENDPOINT/IDENTITY_HEADER, VAULT_TOKEN), as the local cloud sets them;
// a local GCP Secret Manager written as an https:// endpoint (an emulator checking credentials, trusted
// through ca_file) gets the same credentials as the service, federated or not.
package stores

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/identity"
	"github.com/keyferry/keyferry/core/store"
	"github.com/keyferry/keyferry/core/store/awssm"
	"github.com/keyferry/keyferry/core/store/awsssm"
	"github.com/keyferry/keyferry/core/store/azkv"
	"github.com/keyferry/keyferry/core/store/file"
	"github.com/keyferry/keyferry/core/store/gcpsm"
	"github.com/keyferry/keyferry/core/store/vaultkv"
)

// Open returns the store sc configures. It makes no call.
func Open(ctx context.Context, sc *config.StoreConfig) (store.Store, error) {
	st, err := open(ctx, sc, Home())
	if err != nil {
		return nil, fmt.Errorf("store %s (%s, line %d): %w", sc.Name, sc.Type, sc.Line, err)
	}
	return st, nil
}

// OpenAll opens every configured store, by name.
func OpenAll(ctx context.Context, cfg *config.Config) (map[string]store.Store, error) {
	out := make(map[string]store.Store, len(cfg.Stores))
	for _, sc := range cfg.Stores {
		st, err := Open(ctx, sc)
		if err != nil {
			return nil, err
		}
		out[sc.Name] = st
	}
	return out, nil
}

func open(ctx context.Context, sc *config.StoreConfig, home identity.Home) (store.Store, error) {
	fed := federated(sc, home)
	var eps identity.Endpoints
	if fed {
		var err error
		if eps, err = endpoints(); err != nil {
			return nil, err
		}
	}
	// awsCreds are the credentials for an AWS store reached from another cloud (nil: the SDK's chain).
	awsCreds := func(ctx context.Context) (aws.CredentialsProvider, error) {
		if !fed {
			return nil, nil
		}
		return identity.AWS(ctx, home, peer(sc, home), eps)
	}
	switch sc.Type {
	case config.TypeAWSSecretsManager:
		c := sc.AWSSecretsManager
		return awssm.New(awssm.Options{Name: sc.Name, KMSKeyID: c.KMSKeyID,
			RecoveryWindow: time.Duration(c.RecoveryWindowDays) * 24 * time.Hour,
			Client: func(ctx context.Context) (*secretsmanager.Client, error) {
				cfg, err := awsConfig(ctx, c.Region)
				if err != nil {
					return nil, err
				}
				if cfg.Credentials, err = federatedOr(ctx, cfg.Credentials, awsCreds); err != nil {
					return nil, err
				}
				var opts []func(*secretsmanager.Options)
				if sc.Endpoint != "" {
					opts = append(opts, awssm.WithEndpoint(sc.Endpoint))
				}
				return awssm.NewClient(cfg, opts...), nil
			}})
	case config.TypeAWSSSM:
		c := sc.AWSSSM
		return awsssm.New(awsssm.Options{Name: sc.Name, KMSKeyID: c.KMSKeyID, Tier: c.Tier,
			Client: func(ctx context.Context) (*ssm.Client, error) {
				cfg, err := awsConfig(ctx, c.Region)
				if err != nil {
					return nil, err
				}
				if cfg.Credentials, err = federatedOr(ctx, cfg.Credentials, awsCreds); err != nil {
					return nil, err
				}
				var opts []func(*ssm.Options)
				if sc.Endpoint != "" {
					opts = append(opts, awsssm.WithEndpoint(sc.Endpoint))
				}
				return awsssm.NewClient(cfg, opts...), nil
			}})
	case config.TypeAzureKeyVault:
		c := sc.AzureKeyVault
		vaultURL := c.Vault
		if sc.Endpoint != "" {
			vaultURL = sc.Endpoint
		}
		return azkv.New(azkv.Options{Name: sc.Name, VaultURL: vaultURL,
			Client: func(ctx context.Context) (*azsecrets.Client, error) {
				var o azkv.ClientOptions
				if sc.CAFile != "" {
					hc, err := httpClientTrusting(sc.CAFile)
					if err != nil {
						return nil, err
					}
					o.Transport = hc
				}
				if fed {
					cred, err := identity.Azure(ctx, home, peer(sc, home), eps)
					if err != nil {
						return nil, err
					}
					return azkv.NewClient(vaultURL, cred, &o)
				}
				mi := "" // the system-assigned identity
				if sc.Local {
					mi = os.Getenv(EnvLocalManagedIdentity)
				}
				return azkv.ManagedIdentityClient(vaultURL, mi, &o)
			}})
	case config.TypeGCPSecretManager:
		c := sc.GCPSecretManager
		opts := gcpsm.Options{Name: sc.Name, Project: c.Project, Topics: c.Topics,
			Replication: gcpsm.Replication{Locations: c.Replication.Locations}}
		u, _ := url.Parse(sc.Endpoint)
		secure := sc.Endpoint == "" || u != nil && u.Scheme == "https"
		var creds []option.ClientOption
		if fed && secure {
			_, co, err := identity.GCP(ctx, home, peer(sc, home), eps)
			if err != nil {
				return nil, err
			}
			creds = co
		}
		switch {
		case sc.Endpoint == "":
			opts.ClientOptions = creds // nil: Application Default Credentials
		case secure:
			// Local cloud only (the config loader refuses an endpoint elsewhere): an emulator serving TLS
			// (trusting ca_file) checks credentials as the service does, so it gets the same ones: the
			// federated credentials, else Application Default Credentials.
			opts.Client = func(ctx context.Context) (*secretmanager.Client, error) {
				tc := &tls.Config{MinVersion: tls.VersionTLS12}
				if sc.CAFile != "" {
					pool, err := certPool(sc.CAFile)
					if err != nil {
						return nil, err
					}
					tc.RootCAs = pool
				}
				co := append([]option.ClientOption{option.WithEndpoint(u.Host),
					option.WithGRPCDialOption(grpc.WithTransportCredentials(credentials.NewTLS(tc)))}, creds...)
				return secretmanager.NewClient(ctx, co...)
			}
		default:
			// Local cloud only: a plain-gRPC emulator takes no credentials. The endpoint is written as a
			// URL; gRPC dials host:port.
			target := sc.Endpoint
			if u != nil && u.Host != "" {
				target = u.Host
			}
			opts.ClientOptions = []option.ClientOption{option.WithEndpoint(target), option.WithoutAuthentication(),
				option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials()))}
		}
		return gcpsm.New(opts)
	case config.TypeVaultKV:
		c := sc.VaultKV
		addr := c.Address
		if sc.Endpoint != "" {
			addr = sc.Endpoint
		}
		cc := vaultkv.ClientConfig{Address: addr, CACert: sc.CAFile, Namespace: c.Namespace}
		if fed {
			eps.VaultAddress = addr
			va, err := identity.Vault(ctx, home, peer(sc, home), eps, nil)
			if err != nil {
				return nil, err
			}
			cc.Auth = va
		}
		return vaultkv.New(vaultkv.Options{Name: sc.Name, Mount: c.Mount, Config: cc})
	case config.TypeFile:
		return file.New(file.Options{Name: sc.Name, Dir: sc.File.Path})
	}
	return nil, fmt.Errorf("unknown store type %q", sc.Type)
}

// federatedOr returns the federated credentials when there are any, else the SDK chain's.
func federatedOr(ctx context.Context, chain aws.CredentialsProvider, fed func(context.Context) (aws.CredentialsProvider, error)) (aws.CredentialsProvider, error) {
	p, err := fed(ctx)
	if err != nil || p == nil {
		return chain, err
	}
	return p, nil
}

// awsConfig loads the AWS SDK configuration the usual way (the function's role in Lambda; the local
// cloud's variables locally), for one region.
func awsConfig(ctx context.Context, region string) (aws.Config, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region))
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	return cfg, nil
}

func httpClientTrusting(caFile string) (*http.Client, error) {
	pool, err := certPool(caFile)
	if err != nil {
		return nil, err
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: t}, nil
}

// certPool holds the CA certificates of a store's ca_file.
func certPool(caFile string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ca_file %s holds no PEM certificate", caFile)
	}
	return pool, nil
}
