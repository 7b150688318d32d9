package config

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Keys every store may have, and the keys of each type.
var (
	commonKeys = []string{"type", "local", "endpoint", "ca_file"}
	typeKeys   = map[string][]string{
		TypeAWSSecretsManager: {"region", "kms_key_id", "recovery_window_days", "identity"},
		TypeAWSSSM:            {"region", "kms_key_id", "tier", "path_prefix", "identity"},
		TypeAzureKeyVault:     {"vault", "tenant_id", "identity"},
		TypeGCPSecretManager:  {"project", "replication", "topics", "identity"},
		TypeVaultKV:           {"address", "mount", "namespace", "identity"},
		TypeFile:              {"path"},
	}
	// requiredKeys and an example of each, for the "is required" message.
	requiredKeys = map[string][2]string{
		TypeAWSSecretsManager: {"region", "region: eu-west-1"},
		TypeAWSSSM:            {"region", "region: eu-west-1"},
		TypeAzureKeyVault:     {"vault", "vault: https://kf-prod.vault.azure.net"},
		TypeGCPSecretManager:  {"project", "project: kf-prod"},
		TypeVaultKV:           {"address", "address: https://vault.example.com:8200"},
		TypeFile:              {"path", "path: /var/lib/keyferry/secrets"},
	}
)

var storeNamePattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// typesWithKey lists the types that have key.
func typesWithKey(key string) []string {
	var out []string
	for _, t := range Types {
		if slices.Contains(typeKeys[t], key) {
			out = append(out, t)
		}
	}
	return out
}

func allKeys() []string {
	out := slices.Clone(commonKeys)
	for _, t := range Types {
		for _, k := range typeKeys[t] {
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	return out
}

func (p *parser) parseStores(cfg *Config, key, val *yaml.Node) {
	const path = "stores"
	m := resolve(val)
	switch {
	case m == nil || isNull(m):
		p.errorf(key, path, "no store is defined: add at least one, such as\n    stores:\n      local:\n        type: file\n        path: /var/lib/keyferry/secrets")
		return
	case m.Kind != yaml.MappingNode:
		p.errorf(key, path, "must be a mapping from store names to their settings, not %s", kindName(m))
		p.credentialsIn(m, path)
		return
	}
	kvs := p.pairs(m, path)
	if len(m.Content) == 0 {
		p.errorf(key, path, "no store is defined: add at least one (see docs/configuration.md)")
		return
	}
	if p.storeTypes == nil {
		p.storeTypes = map[string]string{}
	}
	for _, kv := range kvs {
		if isCredentialKey(kv.key.Value) {
			p.credential(kv.key, kv.key.Value, path)
			continue
		}
		if sc := p.parseStore(kv.key, kv.val); sc != nil {
			cfg.Stores = append(cfg.Stores, sc)
		}
	}
}

// field is one setting of a store as written: its key node and its value node.
type field struct {
	key, val *yaml.Node
	path     string
}

func (p *parser) parseStore(nameNode, val *yaml.Node) *StoreConfig {
	name := nameNode.Value
	path := "stores." + p.showKey(name)
	sc := &StoreConfig{Name: name, Line: nameNode.Line, Column: nameNode.Column}
	if !storeNamePattern.MatchString(name) {
		msg := fmt.Sprintf("store name %s must be 1–63 lower-case letters, digits and hyphens, starting with a letter", p.show(name))
		if s := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(name)), "_", "-"); storeNamePattern.MatchString(s) && p.showable(s) {
			msg += fmt.Sprintf(": rename it %s", s)
		} else {
			msg += " (e.g. aws-prod)"
		}
		p.errorf(nameNode, path, "%s", msg)
	}
	m := resolve(val)
	switch {
	case m == nil || isNull(m):
		p.errorf(nameNode, path, "the store has no settings: add at least `type:` (one of %s)", strings.Join(Types, ", "))
		return nil
	case m.Kind != yaml.MappingNode:
		p.errorf(nameNode, path, "must be a mapping of settings starting with `type:`, not %s", kindName(m))
		p.credentialsIn(m, path)
		return nil
	}
	kvs := p.pairs(m, path)

	// The type decides which keys are allowed.
	typeOK := false
	var typeKey *yaml.Node
	for _, kv := range kvs {
		if kv.key.Value != "type" {
			continue
		}
		typeKey = kv.key
		t, ok := p.str(field{kv.key, kv.val, path + ".type"})
		if !ok {
			break
		}
		switch {
		case slices.Contains(Types, t):
			sc.Type, typeOK = t, true
		case slices.Contains(Types, strings.ToLower(strings.TrimSpace(t))):
			p.errorf(kv.key, path+".type", "unknown store type %s: write it %s", p.show(t), strings.ToLower(strings.TrimSpace(t)))
		default:
			msg := fmt.Sprintf("unknown store type %s", p.show(t))
			if s := suggest(t, Types); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			p.errorf(kv.key, path+".type", "%s; the types are: %s", msg, strings.Join(Types, ", "))
		}
	}
	if typeKey == nil {
		p.errorf(nameNode, path, "type is required: add `type:` with one of %s", strings.Join(Types, ", "))
	}
	if typeOK {
		p.storeTypes[name] = sc.Type
	}

	fields := map[string]field{}
	for _, kv := range kvs {
		k := kv.key.Value
		f := field{kv.key, kv.val, join(path, p.showKey(k))}
		switch {
		case isCredentialKey(k):
			p.credential(kv.key, k, path)
		case k == "type":
		case slices.Contains(commonKeys, k) || typeOK && slices.Contains(typeKeys[sc.Type], k):
			fields[k] = f
		case typeOK && len(typesWithKey(k)) > 0:
			p.errorf(kv.key, f.path, "is a setting of %s stores, not of %s stores: remove it", strings.Join(typesWithKey(k), " and "), sc.Type)
			p.credentialsIn(kv.val, f.path)
		case !typeOK && len(typesWithKey(k)) > 0:
			// Cannot be checked until the type is right.
			p.credentialsIn(kv.val, f.path)
		default:
			known := allKeys()
			if typeOK {
				known = append(slices.Clone(commonKeys), typeKeys[sc.Type]...)
			}
			msg := fmt.Sprintf("unknown key %s", p.show(k))
			if s := suggest(k, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			if typeOK {
				msg += fmt.Sprintf("; %s stores take: %s", sc.Type, strings.Join(known[1:], ", "))
			}
			p.errorf(kv.key, f.path, "%s", msg)
			p.credentialsIn(kv.val, f.path)
		}
	}

	// Common settings.
	if f, ok := fields["local"]; ok {
		sc.Local, _ = p.boolean(f)
	}
	if f, ok := fields["endpoint"]; ok {
		switch sc.Type {
		case TypeFile:
			p.errorf(f.key, f.path, "file stores have no endpoint: remove it")
		case TypeAzureKeyVault:
			p.errorf(f.key, f.path, "azure-keyvault stores are reached at their `vault` URL: remove endpoint (with local: true, vault may be https://127.0.0.1:PORT)")
		case TypeVaultKV:
			p.errorf(f.key, f.path, "vault-kv stores are reached at their `address`: remove endpoint (with local: true, address may be http://127.0.0.1:PORT)")
		default:
			if v, ok := p.str(f); ok {
				if !sc.Local {
					p.errorf(f.key, f.path, "endpoint is only for stores of the local cloud: add `local: true` to this store, or remove endpoint to reach the real service")
				} else if msg := checkLocalEndpoint(v); msg != "" {
					p.errorf(f.key, f.path, "%s", p.withValue(msg, v))
				} else {
					sc.Endpoint = v
				}
			}
		}
	}
	if f, ok := fields["ca_file"]; ok {
		if sc.Type == TypeFile {
			p.errorf(f.key, f.path, "file stores have no CA file: remove it")
		} else if v, ok := p.str(f); ok {
			if !sc.Local {
				p.errorf(f.key, f.path, "ca_file is only for stores of the local cloud: add `local: true` to this store, or remove ca_file (real services are trusted through the system's CA certificates)")
			} else if msg := checkPath(v); msg != "" {
				p.errorf(f.key, f.path, "%s", p.withValue(msg, v))
			} else {
				sc.CAFile = p.abs(v)
			}
		}
	}
	if !typeOK {
		return nil
	}
	if f, ok := fields["identity"]; ok {
		sc.Identity = p.parseIdentity(f, sc)
	}
	if req := requiredKeys[sc.Type]; fields[req[0]].key == nil {
		p.errorf(nameNode, path, "%s is required for %s stores: add `%s`", req[0], sc.Type, req[1])
	}
	switch sc.Type {
	case TypeAWSSecretsManager:
		c := &AWSSecretsManagerConfig{RecoveryWindowDays: DefaultRecoveryWindowDays}
		sc.AWSSecretsManager = c
		p.check(fields, "region", &c.Region, checkAWSRegion)
		p.check(fields, "kms_key_id", &c.KMSKeyID, checkKMSKey)
		if f, ok := fields["recovery_window_days"]; ok {
			if n, ok := p.integer(f); ok {
				if n < 7 || n > 30 {
					p.errorf(f.key, f.path, "must be from 7 to 30 days (AWS's limits), not %d; the default is %d", n, DefaultRecoveryWindowDays)
				} else {
					c.RecoveryWindowDays = n
				}
			}
		}
	case TypeAWSSSM:
		c := &AWSSSMConfig{Tier: DefaultSSMTier}
		sc.AWSSSM = c
		p.check(fields, "region", &c.Region, checkAWSRegion)
		p.check(fields, "kms_key_id", &c.KMSKeyID, checkKMSKey)
		p.check(fields, "tier", &c.Tier, checkSSMTier)
		p.check(fields, "path_prefix", &c.PathPrefix, checkSSMPathPrefix)
	case TypeAzureKeyVault:
		c := &AzureKeyVaultConfig{}
		sc.AzureKeyVault = c
		p.check(fields, "vault", &c.Vault, func(v string) string { return checkAzureVault(v, sc.Local) })
		p.check(fields, "tenant_id", &c.TenantID, checkTenant)
	case TypeGCPSecretManager:
		c := &GCPSecretManagerConfig{Replication: GCPReplication{Automatic: true}}
		sc.GCPSecretManager = c
		p.check(fields, "project", &c.Project, checkGCPProject)
		if f, ok := fields["replication"]; ok {
			p.replication(f, c)
		}
		if f, ok := fields["topics"]; ok {
			c.Topics = p.topics(f)
		}
	case TypeVaultKV:
		c := &VaultKVConfig{Mount: DefaultVaultMount}
		sc.VaultKV = c
		p.check(fields, "address", &c.Address, func(v string) string { return checkVaultAddress(v, sc.Local) })
		p.check(fields, "mount", &c.Mount, func(v string) string { return checkVaultPath(v, "mount", "kv") })
		p.check(fields, "namespace", &c.Namespace, func(v string) string { return checkVaultPath(v, "namespace", "admin/team-a") })
	case TypeFile:
		c := &FileConfig{}
		sc.File = c
		if f, ok := fields["path"]; ok {
			if v, ok := p.str(f); ok {
				if msg := checkPath(v); msg != "" {
					p.errorf(f.key, f.path, "%s", p.withValue(msg, v))
				} else {
					c.Path = p.abs(v)
				}
			}
		}
	}
	return sc
}

// check reads a text setting, validates it and stores it. A message from validate ending in ":" gets
// the value appended (when it can be shown).
func (p *parser) check(fields map[string]field, key string, dst *string, validate func(string) string) {
	f, ok := fields[key]
	if !ok {
		return
	}
	v, ok := p.str(f)
	if !ok {
		return
	}
	if msg := validate(v); msg != "" {
		p.errorf(f.key, f.path, "%s", p.withValue(msg, v))
		return
	}
	*dst = v
}

// withValue fills the %v in msg with the value (or says it is not shown), and completes a message built
// by fixed with the corrected value only if that may be shown too.
func (p *parser) withValue(msg, v string) string {
	if parts := strings.Split(msg, "\x00"); len(parts) == 4 {
		msg = parts[0]
		if p.showable(v) && p.showable(parts[2]) {
			msg += parts[1] + parts[2]
		} else {
			msg += parts[3]
		}
	}
	return strings.ReplaceAll(msg, "%v", p.show(v))
}

func (p *parser) abs(path string) string {
	if filepath.IsAbs(path) {
		return filepath.Clean(path)
	}
	return filepath.Join(p.dir, path)
}

// ----- typed values -----

// str reads a text value. Numbers are taken as written; true/false, empty values and lists are errors.
func (p *parser) str(f field) (string, bool) {
	n := resolve(f.val)
	switch {
	case n == nil:
		p.errorf(f.key, f.path, "is an alias that refers to itself: write the value out")
	case n.Kind != yaml.ScalarNode:
		p.errorf(f.key, f.path, "must be text, not %s", kindName(n))
		p.credentialsIn(n, f.path)
	case isNull(n) || strings.TrimSpace(n.Value) == "":
		p.errorf(f.key, f.path, "is empty: give it a value or remove the key")
	case n.Tag == "!!bool":
		p.errorf(f.key, f.path, "must be text, not %s: quote it if you mean the word", n.Value)
	case n.Tag == "!!binary" || strings.HasPrefix(n.Tag, "!") && !slices.Contains([]string{"!!str", "!!int", "!!float"}, n.Tag):
		p.errorf(f.key, f.path, "must be plain text: remove the %s tag", p.show(n.Tag))
	default:
		return n.Value, true
	}
	return "", false
}

func (p *parser) boolean(f field) (bool, bool) {
	n := resolve(f.val)
	if n != nil && n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		var b bool
		if err := n.Decode(&b); err == nil {
			return b, true
		}
	}
	p.errorf(f.key, f.path, "must be true or false, not %s", p.describe(n))
	if n != nil {
		p.credentialsIn(n, f.path)
	}
	return false, false
}

func (p *parser) integer(f field) (int, bool) {
	n := resolve(f.val)
	if n != nil && n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		var i int
		if err := n.Decode(&i); err == nil {
			return i, true
		}
	}
	p.errorf(f.key, f.path, "must be a whole number, not %s", p.describe(n))
	if n != nil {
		p.credentialsIn(n, f.path)
	}
	return 0, false
}

// describe names what a value is, showing scalars that may be shown.
func (p *parser) describe(n *yaml.Node) string {
	if n == nil {
		return "an alias loop"
	}
	if n.Kind == yaml.ScalarNode && !isNull(n) {
		return p.show(n.Value)
	}
	return kindName(n)
}

// replication reads `automatic` or a list of locations.
func (p *parser) replication(f field, c *GCPSecretManagerConfig) {
	n := resolve(f.val)
	const want = "must be `automatic` or a list of locations such as [europe-west1, europe-west4]"
	switch {
	case n != nil && n.Kind == yaml.ScalarNode && n.Value == "automatic":
		return
	case n != nil && n.Kind == yaml.SequenceNode:
		if len(n.Content) == 0 {
			p.errorf(f.key, f.path, "the list of locations is empty: list at least one, or write `automatic`")
			return
		}
		var locs []string
		seen := map[string]bool{}
		for i, item := range n.Content {
			ip := fmt.Sprintf("%s[%d]", f.path, i)
			r := resolve(item)
			if r == nil || r.Kind != yaml.ScalarNode || isNull(r) {
				p.errorf(item, ip, "must be a location such as europe-west1, not %s", kindName(item))
				continue
			}
			switch {
			case !gcpLocation.MatchString(r.Value):
				p.errorf(item, ip, "%s is not a GCP location: write a region such as europe-west1 or us-central1", p.show(r.Value))
			case seen[r.Value]:
				p.errorf(item, ip, "location %s is listed twice: keep one", p.show(r.Value))
			default:
				seen[r.Value] = true
				locs = append(locs, r.Value)
			}
		}
		c.Replication = GCPReplication{Locations: locs}
	default:
		p.errorf(f.key, f.path, "%s, not %s", want, p.describe(n))
		if n != nil {
			p.credentialsIn(n, f.path)
		}
	}
}

// topics reads the list of Pub/Sub topics.
func (p *parser) topics(f field) []string {
	n := resolve(f.val)
	if n == nil || n.Kind != yaml.SequenceNode {
		p.errorf(f.key, f.path, "must be a list of Pub/Sub topics such as [projects/kf-prod/topics/secret-events], not %s", p.describe(n))
		if n != nil {
			p.credentialsIn(n, f.path)
		}
		return nil
	}
	if len(n.Content) > maxTopics {
		p.errorf(f.key, f.path, "lists %d topics; Secret Manager takes at most %d per secret: remove %d", len(n.Content), maxTopics, len(n.Content)-maxTopics)
	}
	var out []string
	seen := map[string]bool{}
	for i, item := range n.Content {
		ip := fmt.Sprintf("%s[%d]", f.path, i)
		r := resolve(item)
		if r == nil || r.Kind != yaml.ScalarNode || isNull(r) {
			p.errorf(item, ip, "must be a topic such as projects/kf-prod/topics/secret-events, not %s", kindName(item))
			continue
		}
		if msg := checkTopic(r.Value); msg != "" {
			p.errorf(item, ip, "%s", p.withValue(msg, r.Value))
			continue
		}
		if seen[r.Value] {
			p.errorf(item, ip, "topic %s is listed twice: keep one", p.show(r.Value))
			continue
		}
		seen[r.Value] = true
		out = append(out, r.Value)
	}
	return out
}
