package config

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// keyferry reaches every cloud with workload identity only. A configuration holding a static credential
// is refused: the message names the key, never the value, and says what to use instead.

// credentialKeys are keys (lower case, "-" written "_") that hold static credentials.
var credentialKeys = map[string]bool{
	"access_key": true, "access_key_id": true, "secret_access_key": true, "secret_key": true,
	"aws_access_key_id": true, "aws_secret_access_key": true, "aws_session_token": true, "session_token": true,
	"client_secret": true, "client_certificate": true, "client_certificate_path": true, "certificate_password": true,
	"password": true, "passwd": true, "secret": true, "token": true, "vault_token": true, "secret_id": true,
	"credentials": true, "credential": true, "credentials_file": true, "credentials_json": true,
	"google_application_credentials": true, "key_file": true, "keyfile": true, "private_key": true,
	"private_key_id": true, "service_account_key": true, "service_account_json": true, "api_key": true,
	"apikey": true, "connection_string": true, "account_key": true, "sas_token": true, "jwt": true,
	"auth_token": true, "bearer_token": true, "refresh_token": true, "id_token": true,
}

// credentialSuffixes catch the variants ("db_password", "github_token", ...).
var credentialSuffixes = []string{
	"_secret", "_token", "_password", "_passwd", "_private_key", "_access_key", "_secret_key", "_api_key",
	"_account_key", "_credentials", "_credential", "_key_file",
}

func normalizeKey(k string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(k)), "-", "_")
}

// isCredentialKey reports whether a key names a static credential.
func isCredentialKey(k string) bool {
	n := normalizeKey(k)
	if credentialKeys[n] || strings.Contains(n, "password") || strings.Contains(n, "passwd") ||
		strings.HasPrefix(n, "secret_access") {
		return true
	}
	for _, s := range credentialSuffixes {
		if strings.HasSuffix(n, s) {
			return true
		}
	}
	return false
}

// federation says how keyferry reaches a store of type typ without a static credential.
func federation(typ string) string {
	switch typ {
	case TypeAWSSecretsManager, TypeAWSSSM:
		return "keyferry reaches AWS through an IAM role (the function's execution role, or web identity " +
			"federation from another cloud): grant that role access and remove this key"
	case TypeAzureKeyVault:
		return "keyferry reaches Azure Key Vault with a managed identity or a federated credential " +
			"(workload identity federation): grant it access to the vault and remove this key"
	case TypeGCPSecretManager:
		return "keyferry reaches GCP through workload identity federation (or the function's own service " +
			"account): grant that identity access and remove this key"
	case TypeVaultKV:
		return "keyferry logs in to Vault with a JWT auth role bound to the function's workload identity: " +
			"configure that role and remove this key"
	default:
		return "keyferry uses workload identity only (AWS: IAM role or web identity; Azure: managed identity " +
			"or federated credential; GCP: workload identity federation; Vault: JWT auth role): remove this key"
	}
}

// credential reports a credential key. The value is never looked at for the message.
func (p *parser) credential(key *yaml.Node, name, path string) {
	if p.reported == nil {
		p.reported = map[*yaml.Node]bool{}
	}
	if p.reported[key] {
		return
	}
	p.reported[key] = true
	p.errorf(key, join(path, p.showKey(name)),
		"static credentials are not allowed in keyferry.yaml (the value is not shown); %s", federation(p.typeOf(path)))
}

// typeOf finds the store type for a path inside stores.<name>, from what has been parsed so far.
func (p *parser) typeOf(path string) string {
	rest, ok := strings.CutPrefix(path, "stores.")
	if !ok || p.storeTypes == nil {
		return ""
	}
	name, _, _ := strings.Cut(rest, ".")
	return p.storeTypes[name]
}

// credentialsIn reports every credential key anywhere below n (reached through aliases too).
func (p *parser) credentialsIn(n *yaml.Node, path string) {
	p.walkCredentials(n, path, map[*yaml.Node]bool{}, 0)
}

func (p *parser) walkCredentials(n *yaml.Node, path string, seen map[*yaml.Node]bool, depth int) {
	n = resolve(n)
	if n == nil || seen[n] || depth > 50 {
		return
	}
	seen[n] = true
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := resolve(n.Content[i])
			if k != nil && k.Kind == yaml.ScalarNode && k.Tag != "!!merge" && isCredentialKey(k.Value) {
				p.credential(k, k.Value, path)
				continue
			}
			kp := path
			if k != nil && k.Kind == yaml.ScalarNode && k.Tag != "!!merge" {
				kp = join(path, p.showKey(k.Value))
			}
			p.walkCredentials(n.Content[i+1], kp, seen, depth+1)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			p.walkCredentials(c, path, seen, depth+1)
		}
	}
}

// collectSecrets records every scalar found under a credential key anywhere in the document, so that
// no message repeats it, even where the same text appears under another key.
func (p *parser) collectSecrets(n *yaml.Node, depth int) {
	p.collect(n, false, [2]map[*yaml.Node]bool{{}, {}}, depth)
}

// collect walks n once as plain content and once as content under a credential key (seen[0], seen[1]).
func (p *parser) collect(n *yaml.Node, under bool, seen [2]map[*yaml.Node]bool, depth int) {
	if n == nil || depth > 100 {
		return
	}
	if n.Kind == yaml.AliasNode {
		if under && n.Value != "" {
			p.secrets = append(p.secrets, n.Value)
		}
		if n = resolve(n); n == nil {
			return
		}
	}
	u := 0
	if under {
		u = 1
	}
	if seen[u][n] {
		return
	}
	seen[u][n] = true
	switch n.Kind {
	case yaml.ScalarNode:
		if under {
			if v := strings.TrimSpace(n.Value); v != "" {
				p.secrets = append(p.secrets, n.Value, v)
			}
			for _, f := range strings.Fields(n.Value) {
				if len(f) >= 4 {
					p.secrets = append(p.secrets, f)
				}
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := resolve(n.Content[i])
			cred := under || (k != nil && k.Kind == yaml.ScalarNode && isCredentialKey(k.Value))
			p.collect(n.Content[i], under, seen, depth+1)
			p.collect(n.Content[i+1], cred, seen, depth+1)
		}
	default:
		for _, c := range n.Content {
			p.collect(c, under, seen, depth+1)
		}
	}
}
