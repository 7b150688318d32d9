// Package config loads keyferry.yaml.
//
// The file is decoded through yaml.Node so that every problem is reported with its file, line and column,
// what is wrong and how to fix it, and all problems are reported at once (see Errors). Unknown keys are
// errors with a "did you mean" suggestion; static credentials are refused wherever they appear, without
// their value ever being repeated. docs/configuration.md is the reference for the format.
//
// Sections are parsed in a fixed order (stores first), so later sections such as `replicate:` can refer to
// the stores by name.
package config

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/keyferry/keyferry/core/replicate"
	"github.com/keyferry/keyferry/core/rotate"
)

// Store types.
const (
	TypeAWSSecretsManager = "aws-secretsmanager"
	TypeAWSSSM            = "aws-ssm"
	TypeAzureKeyVault     = "azure-keyvault"
	TypeGCPSecretManager  = "gcp-secretmanager"
	TypeVaultKV           = "vault-kv"
	TypeFile              = "file"
)

// Types lists the store types in the order the documentation presents them.
var Types = []string{TypeAWSSecretsManager, TypeAWSSSM, TypeAzureKeyVault, TypeGCPSecretManager, TypeVaultKV, TypeFile}

// Defaults.
const (
	DefaultRecoveryWindowDays = 30
	DefaultSSMTier            = "standard"
	DefaultVaultMount         = "secret"
)

// MaxFileBytes is the largest configuration file accepted.
const MaxFileBytes = 1 << 20

// Config is a loaded keyferry.yaml.
type Config struct {
	// File is the name the configuration was loaded from, as used in messages.
	File string
	// Stores are the configured stores in file order.
	Stores []*StoreConfig
	// Replicate are the replication rules in file order.
	Replicate []replicate.Rule
	// Notify are the routes alerts are published to.
	Notify []NotifyRoute
	// Rotate are the rotation policies in file order.
	Rotate []rotate.Policy
	// Certificates is the `certificates:` section (issuer, policy, specs, inventory); nil when absent.
	Certificates *Certificates
}

// Store returns the store configured under name, or nil.
func (c *Config) Store(name string) *StoreConfig {
	for _, s := range c.Stores {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// StoreConfig is one entry of `stores:`. Exactly one of the type-specific fields is set, the one
// matching Type.
type StoreConfig struct {
	Name   string // the key under `stores:`
	Type   string // one of the Type* constants
	Line   int    // where the store's name is, 1-based
	Column int

	// Local marks a store of the local cloud (emulators on this machine). Only such a store may set
	// Endpoint and CAFile, or point at 127.0.0.1 / localhost.
	Local bool
	// Endpoint overrides the service address (local stores only).
	Endpoint string
	// CAFile is a PEM file of CA certificates to trust for the service (local stores only). Relative
	// paths are resolved against the directory of the configuration file.
	CAFile string

	// Identity says how functions in the other clouds reach this store (workload identity federation).
	Identity *Identity

	AWSSecretsManager *AWSSecretsManagerConfig
	AWSSSM            *AWSSSMConfig
	AzureKeyVault     *AzureKeyVaultConfig
	GCPSecretManager  *GCPSecretManagerConfig
	VaultKV           *VaultKVConfig
	File              *FileConfig
}

// AWSSecretsManagerConfig configures an aws-secretsmanager store.
type AWSSecretsManagerConfig struct {
	Region             string
	KMSKeyID           string // "" : the account's default key (aws/secretsmanager)
	RecoveryWindowDays int    // 7–30, default 30
}

// AWSSSMConfig configures an aws-ssm (Parameter Store) store.
type AWSSSMConfig struct {
	Region     string
	KMSKeyID   string // "" : the account's default key (aws/ssm)
	Tier       string // "standard" (default) or "advanced"
	PathPrefix string // e.g. "/keyferry"; "" : none
}

// AzureKeyVaultConfig configures an azure-keyvault store.
type AzureKeyVaultConfig struct {
	Vault    string // vault URL, e.g. https://kf-prod.vault.azure.net
	TenantID string // "" : the identity's home tenant
}

// GCPSecretManagerConfig configures a gcp-secretmanager store.
type GCPSecretManagerConfig struct {
	Project     string
	Replication GCPReplication
	Topics      []string // Pub/Sub topics for change notifications, projects/P/topics/T
}

// GCPReplication is how new secrets are replicated: automatically, or to the listed locations.
type GCPReplication struct {
	Automatic bool
	Locations []string
}

// VaultKVConfig configures a vault-kv (HashiCorp Vault KV version 2) store.
type VaultKVConfig struct {
	Address   string
	Mount     string // default "secret"
	Namespace string // Vault Enterprise / HCP namespace; "" : none
}

// FileConfig configures a file store.
type FileConfig struct {
	Path string // the store directory; relative paths are resolved against the configuration's directory
}

// Load reads and parses the configuration file at path.
func Load(path string) (*Config, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the configuration: %w", err)
	}
	if fi.Size() > MaxFileBytes {
		return nil, Errors{{File: path, Line: 1, Column: 1,
			Message: fmt.Sprintf("the file is %d bytes; a configuration is at most %d", fi.Size(), MaxFileBytes)}}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the configuration: %w", err)
	}
	return Parse(path, data)
}

// Parse parses a configuration held in data. name is the file name used in messages; relative paths in
// the configuration are resolved against its directory. On failure the error is an Errors holding every
// problem found.
func Parse(name string, data []byte) (*Config, error) {
	p := &parser{file: name, dir: filepath.Dir(name)}
	cfg := p.parse(data)
	if len(p.errs) > 0 {
		p.errs.sort()
		return nil, p.errs
	}
	return cfg, nil
}
