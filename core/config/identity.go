package config

import (
	"regexp"
	"strings"
)

// Identity says how a store is reached from the functions in the other clouds, by workload identity
// federation only (docs/configuration.md, "Reaching a store from the other clouds"). Fields that apply to
// every home cloud sit at the top; a home cloud's block (aws, azure, gcp) overrides them for functions
// running there.
type Identity struct {
	IdentitySettings
	From map[string]IdentitySettings // by home cloud: aws, azure, gcp
}

// IdentitySettings are the settings for one direction. Which fields apply depends on the store's type.
type IdentitySettings struct {
	RoleARN        string // aws stores: the role the other clouds' tokens assume (AssumeRoleWithWebIdentity)
	Audience       string // the audience the presented token carries (aws: the role's aud condition; gcp: the WIF provider; azure: default api://AzureADTokenExchange; vault: the JWT role's bound audience)
	TenantID       string // azure stores: the Entra tenant of the app registration
	ClientID       string // azure stores: the app registration (client id) with federated credentials
	ServiceAccount string // gcp stores: a service account to impersonate (optional)
	TokenAudience  string // gcp stores: the aud the home token carries for the provider (default https: + the provider; an Azure managed identity needs an App ID URI)
	Role           string // vault stores: the JWT auth role
	Mount          string // vault stores: the JWT auth mount (default jwt)
}

// For returns the settings for functions running in home ("aws", "azure", "gcp"; "" for the top level).
func (id *Identity) For(home string) IdentitySettings {
	if id == nil {
		return IdentitySettings{}
	}
	s := id.IdentitySettings
	o, ok := id.From[home]
	if !ok {
		return s
	}
	for _, kv := range []struct {
		dst *string
		v   string
	}{{&s.RoleARN, o.RoleARN}, {&s.Audience, o.Audience}, {&s.TenantID, o.TenantID},
		{&s.ClientID, o.ClientID}, {&s.ServiceAccount, o.ServiceAccount}, {&s.TokenAudience, o.TokenAudience}, {&s.Role, o.Role}, {&s.Mount, o.Mount}} {
		if kv.v != "" {
			*kv.dst = kv.v
		}
	}
	return s
}

// HomeClouds are the clouds keyferry's functions run in.
var HomeClouds = []string{"aws", "azure", "gcp"}

var (
	identityKeys = map[string][]string{
		TypeAWSSecretsManager: {"role_arn", "audience"},
		TypeAWSSSM:            {"role_arn", "audience"},
		TypeAzureKeyVault:     {"tenant_id", "client_id", "audience"},
		TypeGCPSecretManager:  {"audience", "service_account", "token_audience"},
		TypeVaultKV:           {"role", "mount", "audience"},
	}
	roleARNPattern  = lazyRegexp(`^arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$`)
	wifAudience     = regexp.MustCompile(`^//iam\.googleapis\.com/projects/[0-9]+/locations/global/workloadIdentityPools/[a-z0-9-]{4,32}/providers/[a-z0-9-]{4,32}$`)
	serviceAccount  = regexp.MustCompile(`^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z][a-z0-9-]{4,28}[a-z0-9]\.iam\.gserviceaccount\.com$`)
	uuidPattern     = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	vaultRoleOrPath = lazyRegexp(`^[A-Za-z0-9_.-]{1,128}$`)
)

func (p *parser) parseIdentity(f field, sc *StoreConfig) *Identity {
	keys := identityKeys[sc.Type]
	if keys == nil {
		p.errorf(f.key, f.path, "file stores are local and need no identity: remove it")
		return nil
	}
	all := append(append([]string{}, keys...), HomeClouds...)
	m := p.mapping(f, all, "identity settings")
	if m == nil {
		return nil
	}
	before := len(p.errs)
	id := &Identity{From: map[string]IdentitySettings{}}
	id.IdentitySettings = p.identitySettings(m, sc.Type)
	for _, home := range HomeClouds {
		hf, has := m[home]
		if !has {
			continue
		}
		hm := p.mapping(hf, keys, "identity settings for functions in "+home)
		if hm != nil {
			id.From[home] = p.identitySettings(hm, sc.Type)
		}
	}
	if len(p.errs) > before {
		return nil // what is missing follows from what is wrong: one message is enough
	}
	for _, home := range HomeClouds {
		s := id.For(home)
		switch sc.Type {
		case TypeAWSSecretsManager, TypeAWSSSM:
			if s.RoleARN == "" && home != "aws" {
				p.errorf(f.key, f.path, "role_arn is required: the role that functions in %s assume with their own identity, such as arn:aws:iam::123456789012:role/keyferry-peer", home)
				return nil
			}
		case TypeAzureKeyVault:
			if (s.TenantID == "" || s.ClientID == "") && home != "azure" {
				p.errorf(f.key, f.path, "tenant_id and client_id are required: the app registration whose federated credentials trust the functions in %s", home)
				return nil
			}
		case TypeGCPSecretManager:
			if s.Audience == "" && home != "gcp" {
				p.errorf(f.key, f.path, "audience is required for functions in %s: the Workload Identity provider, such as //iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/keyferry/providers/from-%s", home, home)
				return nil
			}
		case TypeVaultKV:
			if s.Role == "" {
				p.errorf(f.key, f.path, "role is required: the JWT auth role that the functions' tokens log in with")
				return nil
			}
		}
	}
	return id
}

func (p *parser) identitySettings(m map[string]field, typ string) IdentitySettings {
	var s IdentitySettings
	p.check(m, "role_arn", &s.RoleARN, func(v string) string {
		if !roleARNPattern().MatchString(v) {
			return "%v is not an IAM role ARN: write one such as arn:aws:iam::123456789012:role/keyferry-peer"
		}
		return ""
	})
	p.check(m, "tenant_id", &s.TenantID, func(v string) string {
		if !uuidPattern.MatchString(v) {
			return "%v is not a tenant id: write the tenant's GUID"
		}
		return ""
	})
	p.check(m, "client_id", &s.ClientID, func(v string) string {
		if !uuidPattern.MatchString(v) {
			return "%v is not a client id: write the app registration's application (client) id, a GUID"
		}
		return ""
	})
	p.check(m, "service_account", &s.ServiceAccount, func(v string) string {
		if !serviceAccount.MatchString(v) {
			return "%v is not a service account: write its e-mail, such as keyferry@kf-prod.iam.gserviceaccount.com"
		}
		return ""
	})
	p.check(m, "audience", &s.Audience, func(v string) string {
		if typ == TypeGCPSecretManager && !wifAudience.MatchString(v) {
			return "%v is not a Workload Identity provider: write one such as //iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/keyferry/providers/from-aws"
		}
		if strings.TrimSpace(v) == "" {
			return "audience must not be empty"
		}
		return ""
	})
	p.check(m, "token_audience", &s.TokenAudience, func(v string) string {
		if strings.TrimSpace(v) == "" {
			return "token_audience must not be empty"
		}
		return ""
	})
	for k, dst := range map[string]*string{"role": &s.Role, "mount": &s.Mount} {
		p.check(m, k, dst, func(v string) string {
			if !vaultRoleOrPath().MatchString(v) {
				return "%v is not a Vault name: use letters, digits, _ . and -"
			}
			return ""
		})
	}
	return s
}
