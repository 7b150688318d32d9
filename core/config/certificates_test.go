package config

import (
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyferry/keyferry/core/pki"
)

const certStores = "stores:\n  aws: {type: aws-secretsmanager, region: eu-west-1}\n  vault: {type: vault-kv, address: https://vault.example.com:8200}\n  local: {type: file, path: /var/lib/keyferry/secrets}\n"

func TestCertificatesSection(t *testing.T) {
	cfg, err := Parse("/etc/keyferry/keyferry.yaml", []byte(certStores+doc(`
certificates:
  issuer:
    builtin: {certificate: ca/intermediate.pem, chain: ca/root.pem, key: {file: ca/intermediate.key}}
  policy: {allowed_domains: ["*.svc.example.com"], allowed_uris: ["spiffe://prod.example/"], max_ttl: 168h, key_types: [ec-p256, ec-p384], allow_wildcards: false, allow_ips: false}
  specs:
    - name: api
      common_name: api.svc.example.com
      dns: [api.svc.example.com]
      uris: [spiffe://prod.example/ns/app/sa/api]
      key_type: ec-p384
      ttl: 72h
      renew_before: 24h
      ext_key_usage: [server-auth, client-auth]
      tags: {team: payments}
      targets:
        - {store: aws, name: certs/api}
        - {acm: {region: eu-west-1}}
        - {keyvault: {vault: https://kf-prod.vault.azure.net, name: api, format: pem}}
        - {certificate_manager: {project: kf-prod, location: global, name: api}}
    - name: web
      dns: web.svc.example.com
      ttl: 7d
      targets: [local]
  inventory: {roots: [ca/root.pem], vault_pki_mounts: [pki_int]}
`)))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Certificates
	if c == nil || c.Issuer == nil || c.Issuer.Builtin == nil || len(c.Specs) != 2 {
		t.Fatalf("certificates %+v", c)
	}
	b := c.Issuer.Builtin
	if b.Certificate != "/etc/keyferry/ca/intermediate.pem" || b.Chain != "/etc/keyferry/ca/root.pem" ||
		b.KeyFile != "/etc/keyferry/ca/intermediate.key" || b.KMS != nil {
		t.Errorf("builtin issuer %+v", b)
	}
	wantPol := pki.Policy{AllowedDomains: []string{"*.svc.example.com"}, AllowedURIs: []string{"spiffe://prod.example/"},
		MaxTTL: 168 * time.Hour, AllowedKeyTypes: []string{"ec-p256", "ec-p384"}}
	if !slices.Equal(c.Policy.AllowedDomains, wantPol.AllowedDomains) || !slices.Equal(c.Policy.AllowedURIs, wantPol.AllowedURIs) ||
		c.Policy.MaxTTL != wantPol.MaxTTL || !slices.Equal(c.Policy.AllowedKeyTypes, wantPol.AllowedKeyTypes) || c.Policy.AllowWildcards || c.Policy.AllowIPs {
		t.Errorf("policy %+v", c.Policy)
	}
	api := c.Spec("api")
	if api.CommonName != "api.svc.example.com" || api.KeyType != "ec-p384" || api.TTL != 72*time.Hour || api.RenewBefore != 24*time.Hour ||
		!slices.Equal(api.ExtKeyUsage, []string{"server-auth", "client-auth"}) || api.Tags["team"] != "payments" || len(api.Targets) != 4 || api.Line != 10 {
		t.Errorf("spec api %+v", api)
	}
	kinds := []string{}
	for _, tg := range api.Targets {
		kinds = append(kinds, tg.Kind()+"="+tg.ID())
	}
	if want := []string{"store=aws", "acm=acm:eu-west-1", "keyvault=keyvault:kf-prod.vault.azure.net",
		"certificate_manager=certificate-manager:kf-prod/global"}; !slices.Equal(kinds, want) {
		t.Errorf("targets %v, want %v", kinds, want)
	}
	if api.Targets[0].Name != "certs/api" || api.Targets[1].ACM.Region != "eu-west-1" || api.Targets[2].KeyVault.Format != KeyVaultFormatPEM ||
		api.Targets[2].Name != "api" || api.Targets[3].CertificateManager.Parent() != "projects/kf-prod/locations/global" {
		t.Errorf("target details %+v", api.Targets)
	}
	web := c.Spec("web")
	if web.KeyType != pki.KeyECP256 || web.TTL != 7*24*time.Hour || !slices.Equal(web.DNSNames, []string{"web.svc.example.com"}) ||
		web.Targets[0].Store != "local" || web.Targets[0].Name != "" {
		t.Errorf("spec web (defaults) %+v", web)
	}
	if inv := c.Inventory; !slices.Equal(inv.Roots, []string{"/etc/keyferry/ca/root.pem"}) || inv.VaultStore != "vault" ||
		!slices.Equal(inv.VaultPKIMounts, []string{"pki_int"}) || inv.Stores != nil {
		t.Errorf("inventory %+v", inv)
	}
}

func TestCertificatesOtherIssuers(t *testing.T) {
	cfg, err := Parse("keyferry.yaml", []byte(certStores+doc(`
certificates:
  issuer:
    vault: {store: vault, mount: pki_int, role: svc}
  policy: {allowed_domains: ["**.example.com"], max_ttl: 30d, key_types: [rsa-2048], allow_ips: true}
  specs:
    - {name: db, dns: db.example.com, ips: ["10.0.0.7", "::1"], key_type: rsa-2048, ttl: 720h, targets: [{store: vault}]}
    - name: lb
      dns: [lb.example.com]
      key_type: rsa-2048
      targets:
        - {certificate_manager: {project: kf-test, local: true, endpoint: "http://127.0.0.1:9090"}}
        - {acm: {region: us-east-1, local: true, endpoint: "http://127.0.0.1:5000", ca_file: ca.pem}}
        - {keyvault: {vault: "https://127.0.0.1:8443", local: true}}
  inventory: {stores: [], vault_pki_mounts: pki_int}
`)))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Certificates
	if v := c.Issuer.Vault; v == nil || v.Store != "vault" || v.Mount != "pki_int" || v.Role != "svc" || v.Mode != VaultPKISign {
		t.Errorf("vault issuer %+v", c.Issuer.Vault)
	}
	db := c.Spec("db")
	if len(db.IPAddresses) != 2 || !db.IPAddresses[1].Equal(net.ParseIP("::1")) {
		t.Errorf("ips %v", db.IPAddresses)
	}
	lb := c.Spec("lb").Targets
	if cm := lb[0].CertificateManager; !cm.Local || cm.Endpoint != "http://127.0.0.1:9090" || cm.Location != "global" {
		t.Errorf("local certificate manager %+v", cm)
	}
	if a := lb[1].ACM; !a.Local || a.Endpoint != "http://127.0.0.1:5000" || a.CAFile != filepath.Join(".", "ca.pem") {
		t.Errorf("local acm %+v", a)
	}
	if kv := lb[2].KeyVault; !kv.Local || kv.Format != KeyVaultFormatPFX {
		t.Errorf("local key vault %+v", kv)
	}
	if inv := c.Inventory; inv.Stores == nil || len(inv.Stores) != 0 || inv.VaultStore != "vault" {
		t.Errorf("inventory %+v", inv)
	}

	cfg, err = Parse("keyferry.yaml", []byte(certStores+doc(`
certificates:
  issuer:
    builtin:
      certificate: ca/intermediate.pem
      key: {aws_kms: {key_id: "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"}}
`)))
	if err != nil {
		t.Fatal(err)
	}
	if k := cfg.Certificates.Issuer.Builtin.KMS; k == nil || k.Region != "eu-west-1" || cfg.Certificates.Issuer.Builtin.KeyFile != "" {
		t.Errorf("KMS key %+v", k)
	}
	// Keys held by Key Vault and Cloud KMS, on the real clouds and on the local cloud.
	for _, c := range []struct {
		name, key string
		check     func(b *BuiltinIssuer) bool
	}{
		{"key vault", "{azure_key_vault: {vault: https://kf-prod.vault.azure.net, key: keyferry-ca}}", func(b *BuiltinIssuer) bool {
			k := b.KeyVaultKey
			return k != nil && k.Vault == "https://kf-prod.vault.azure.net" && k.Key == "keyferry-ca" && k.Version == "" && !k.Local
		}},
		{"key vault version", "{azure_key_vault: {vault: https://kf-prod.vault.azure.net, key: ca, version: 0123456789ABCDEF0123456789abcdef}}", func(b *BuiltinIssuer) bool {
			return b.KeyVaultKey != nil && b.KeyVaultKey.Version == "0123456789ABCDEF0123456789abcdef"
		}},
		{"key vault local", "{azure_key_vault: {vault: \"https://127.0.0.1:8443\", key: ca, local: true, ca_file: ca.pem}}", func(b *BuiltinIssuer) bool {
			k := b.KeyVaultKey
			return k != nil && k.Local && k.Vault == "https://127.0.0.1:8443" && k.CAFile == filepath.Join(".", "ca.pem")
		}},
		{"cloud kms", "{gcp_kms: {key_version: projects/kf-prod/locations/europe-west1/keyRings/keyferry/cryptoKeys/ca/cryptoKeyVersions/3}}", func(b *BuiltinIssuer) bool {
			k := b.CloudKMS
			return k != nil && k.KeyVersion == "projects/kf-prod/locations/europe-west1/keyRings/keyferry/cryptoKeys/ca/cryptoKeyVersions/3" && !k.Local && k.Endpoint == ""
		}},
		{"cloud kms multi-region", "{gcp_kms: {key_version: projects/kf-prod/locations/us/keyRings/k_1/cryptoKeys/Ca-2/cryptoKeyVersions/12}}", func(b *BuiltinIssuer) bool {
			return b.CloudKMS != nil
		}},
		{"cloud kms local", "{gcp_kms: {key_version: projects/kf-test/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1, local: true, endpoint: \"http://127.0.0.1:9090\"}}", func(b *BuiltinIssuer) bool {
			k := b.CloudKMS
			return k != nil && k.Local && k.Endpoint == "http://127.0.0.1:9090" && k.CAFile == ""
		}},
	} {
		cfg, err := Parse("keyferry.yaml", []byte(certStores+"certificates:\n  issuer: {builtin: {certificate: i.pem, key: "+c.key+"}}\n"))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if b := cfg.Certificates.Issuer.Builtin; !c.check(b) || b.KeyFile != "" || b.KMS != nil {
			t.Errorf("%s: issuer %+v, key vault %+v, cloud kms %+v", c.name, b, b.KeyVaultKey, b.CloudKMS)
		}
	}
	// An empty section configures nothing.
	if cfg, err := Parse("keyferry.yaml", []byte(certStores+"certificates:\n")); err != nil || cfg.Certificates != nil {
		t.Errorf("empty section: %v %+v", err, cfg)
	}
}

func TestCertificatesErrors(t *testing.T) {
	const issuer = "  issuer: {builtin: {certificate: i.pem, key: {file: i.key}}}\n"
	const policy = "  policy: {allowed_domains: [\"*.svc.example.com\"], max_ttl: 168h, key_types: [ec-p256]}\n"
	spec := func(s string) string { return "certificates:\n" + issuer + policy + "  specs:\n" + s }
	for _, c := range []struct {
		name, input string
		wants       []want
	}{
		{"not-a-mapping", "certificates: [a]\n", []want{w("5:1", "certificates", "must be a mapping")}},
		{"unknown-key", "certificates: {issuer: {vault: {store: vault, role: r}}, polcy: {}}\n",
			[]want{w("5:58", "certificates.polcy", `unknown key "polcy" (did you mean "policy"?)`)}},
		{"two-issuers", "certificates:\n  issuer: {builtin: {certificate: i.pem, key: {file: i.key}}, vault: {store: vault, role: r}}\n",
			[]want{w("6:63", "certificates.issuer.vault", "give exactly one issuer, not builtin and vault")}},
		{"no-key", "certificates:\n  issuer: {builtin: {certificate: i.pem}}\n",
			[]want{w("6:12", "certificates.issuer.builtin", "key is required")}},
		{"vault-not-kv", "certificates:\n  issuer: {vault: {store: aws, role: r}}\n",
			[]want{w("6:20", "certificates.issuer.vault.store", "is a aws-secretsmanager store: name a vault-kv store")}},
		{"kms-no-region", "certificates:\n  issuer: {builtin: {certificate: i.pem, key: {aws_kms: {key_id: alias/ca}}}}\n",
			[]want{w("6:48", "certificates.issuer.builtin.key.aws_kms", "region is required")}},
		{"kms-endpoint-not-local", "certificates:\n  issuer: {builtin: {certificate: i.pem, key: {aws_kms: {key_id: alias/ca, region: eu-west-1, endpoint: \"http://127.0.0.1:5000\"}}}}\n",
			[]want{w("6:95", "certificates.issuer.builtin.key.aws_kms.endpoint", "only for KMS keys of the local cloud")}},
		{"kv-key-http", "certificates:\n  issuer: {builtin: {certificate: i.pem, key: {azure_key_vault: {vault: \"http://kf.vault.azure.net\", key: ca}}}}\n",
			[]want{w("6:66", "certificates.issuer.builtin.key.azure_key_vault.vault", "must be an https URL such as https://kf-prod.vault.azure.net")}},
		{"kv-key-not-a-vault", "certificates:\n  issuer: {builtin: {certificate: i.pem, key: {azure_key_vault: {vault: \"https://kf.example.com\", key: ca}}}}\n",
			[]want{w("6:66", "certificates.issuer.builtin.key.azure_key_vault.vault", "Key Vault URLs end in .vault.azure.net")}},
		{"kv-key-loopback-not-local", "certificates:\n  issuer: {builtin: {certificate: i.pem, key: {azure_key_vault: {vault: \"https://127.0.0.1:8443\", key: ca}}}}\n",
			[]want{w("6:66", "certificates.issuer.builtin.key.azure_key_vault.vault", "points at this machine: add `local: true`")}},
		{"kv-key-missing", "certificates:\n  issuer: {builtin: {certificate: i.pem, key: {azure_key_vault: {vault: \"https://kf-prod.vault.azure.net\"}}}}\n",
			[]want{w("6:48", "certificates.issuer.builtin.key.azure_key_vault", "key is required: add the Key Vault key's name")}},
		{"kv-key-bad-name", "certificates:\n  issuer: {builtin: {certificate: i.pem, key: {azure_key_vault: {vault: \"https://kf-prod.vault.azure.net\", key: ca_1}}}}\n",
			[]want{w("6:108", "certificates.issuer.builtin.key.azure_key_vault.key", `"ca_1" is not a Key Vault key name`)}},
		{"kv-key-bad-version", "certificates:\n  issuer: {builtin: {certificate: i.pem, key: {azure_key_vault: {vault: \"https://kf-prod.vault.azure.net\", key: ca, version: latest}}}}\n",
			[]want{w("6:117", "certificates.issuer.builtin.key.azure_key_vault.version", `"latest" is not a Key Vault key version`, "remove version")}},
		{"kv-key-ca-file-not-local", "certificates:\n  issuer: {builtin: {certificate: i.pem, key: {azure_key_vault: {vault: \"https://kf-prod.vault.azure.net\", key: ca, ca_file: ca.pem}}}}\n",
			[]want{w("6:117", "certificates.issuer.builtin.key.azure_key_vault.ca_file", "only for azure_key_vault keys of the local cloud")}},
		{"kv-key-endpoint", "certificates:\n  issuer: {builtin: {certificate: i.pem, key: {azure_key_vault: {vault: \"https://kf-prod.vault.azure.net\", key: ca, endpoint: \"https://127.0.0.1:1\"}}}}\n",
			[]want{w("6:117", "certificates.issuer.builtin.key.azure_key_vault.endpoint", `unknown key "endpoint"`)}},
		{"gcp-key-is-a-key", "certificates:\n  issuer: {builtin: {certificate: i.pem, key: {gcp_kms: {key_version: projects/kf-prod/locations/global/keyRings/r/cryptoKeys/ca}}}}\n",
			[]want{w("6:58", "certificates.issuer.builtin.key.gcp_kms.key_version", "names a key, not a key version: add /cryptoKeyVersions/N")}},
		{"gcp-key-garbage", "certificates:\n  issuer: {builtin: {certificate: i.pem, key: {gcp_kms: {key_version: ca}}}}\n",
			[]want{w("6:58", "certificates.issuer.builtin.key.gcp_kms.key_version", `"ca" is not a Cloud KMS key version: write it as projects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY/cryptoKeyVersions/N`)}},
		{"gcp-key-project", "certificates:\n  issuer: {builtin: {certificate: i.pem, key: {gcp_kms: {key_version: projects/123/locations/global/keyRings/r/cryptoKeys/ca/cryptoKeyVersions/1}}}}\n",
			[]want{w("6:58", "certificates.issuer.builtin.key.gcp_kms.key_version", "the project part must be a project ID")}},
		{"gcp-key-version-zero", "certificates:\n  issuer: {builtin: {certificate: i.pem, key: {gcp_kms: {key_version: projects/kf-prod/locations/global/keyRings/r/cryptoKeys/ca/cryptoKeyVersions/0}}}}\n",
			[]want{w("6:58", "certificates.issuer.builtin.key.gcp_kms.key_version", "the version is a number from 1")}},
		{"gcp-key-ring-id", "certificates:\n  issuer: {builtin: {certificate: i.pem, key: {gcp_kms: {key_version: projects/kf-prod/locations/global/keyRings/a.b/cryptoKeys/ca/cryptoKeyVersions/1}}}}\n",
			[]want{w("6:58", "certificates.issuer.builtin.key.gcp_kms.key_version", "key ring and key IDs are 1–63 letters")}},
		{"gcp-key-missing", "certificates:\n  issuer: {builtin: {certificate: i.pem, key: {gcp_kms: {local: true}}}}\n",
			[]want{w("6:48", "certificates.issuer.builtin.key.gcp_kms", "key_version is required")}},
		{"gcp-key-endpoint-not-local", "certificates:\n  issuer: {builtin: {certificate: i.pem, key: {gcp_kms: {key_version: projects/kf-prod/locations/global/keyRings/r/cryptoKeys/ca/cryptoKeyVersions/1, endpoint: \"http://127.0.0.1:9\"}}}}\n",
			[]want{w("6:151", "certificates.issuer.builtin.key.gcp_kms.endpoint", "only for gcp_kms keys of the local cloud")}},
		{"gcp-key-endpoint-remote", "certificates:\n  issuer: {builtin: {certificate: i.pem, key: {gcp_kms: {key_version: projects/kf-prod/locations/global/keyRings/r/cryptoKeys/ca/cryptoKeyVersions/1, local: true, endpoint: \"http://kms.example.com\"}}}}\n",
			[]want{w("6:164", "certificates.issuer.builtin.key.gcp_kms.endpoint", "must be on this machine")}},
		{"two-cloud-keys", "certificates:\n  issuer: {builtin: {certificate: i.pem, key: {aws_kms: {key_id: alias/ca, region: eu-west-1}, gcp_kms: {key_version: x}}}}\n",
			[]want{w("6:96", "certificates.issuer.builtin.key.gcp_kms", "give exactly one key, not aws_kms and gcp_kms")}},
		{"credential", "certificates:\n  issuer: {builtin: {certificate: i.pem, key: {file: i.key, private_key: hunter2}}}\n",
			[]want{w("6:61", "certificates.issuer.builtin.key.private_key", "static credentials are not allowed")}},
		{"no-policy", "certificates:\n" + issuer + "  specs:\n    - {name: api, dns: api.svc.example.com, targets: [aws]}\n",
			[]want{w("5:1", "certificates", "policy is required")}},
		{"no-issuer", "certificates:\n" + policy + "  specs:\n    - {name: api, dns: api.svc.example.com, targets: [aws]}\n",
			[]want{w("5:1", "certificates", "issuer is required")}},
		{"policy-no-max-ttl", "certificates:\n  policy: {allowed_domains: [a.example.com]}\n",
			[]want{w("6:3", "certificates.policy", "max_ttl is required")}},
		{"policy-bad-glob", "certificates:\n  policy: {allowed_domains: [\"a*.example.com\"], max_ttl: 1d, key_types: [ec-p521]}\n",
			[]want{w("6:30", "certificates.policy.allowed_domains[0]", `"a*.example.com" is not a domain glob`),
				w("6:74", "certificates.policy.key_types[0]", `"ec-p521" is not a key type`)}},
		{"denied-name", spec("    - name: api\n      dns: [api.svc.example.com, www.example.org]\n      targets: [aws]\n"),
			[]want{w("10:34", "certificates.specs[0].dns[1]", `"www.example.org" is denied by the policy: matches no policy.allowed_domains pattern`,
				`to allow it, add "www.example.org" to policy.allowed_domains, or a glob such as "*.example.org"`)}},
		{"denied-ttl-and-key", spec("    - {name: api, dns: api.svc.example.com, ttl: 30d, key_type: rsa-2048, targets: [aws]}\n"),
			[]want{w("9:45", "certificates.specs[0].ttl", `"30d" is denied by the policy: exceeds policy.max_ttl 168h`, "raise policy.max_ttl to at least 720h"),
				w("9:55", "certificates.specs[0].key_type", `"rsa-2048" is denied by the policy: not allowed (allowed: "ec-p256")`, `add "rsa-2048" to policy.key_types`)}},
		{"denied-default-ttl", "certificates:\n" + issuer + "  policy: {allowed_domains: [\"*.svc.example.com\"], max_ttl: 24h, key_types: [ec-p256]}\n  specs:\n    - {name: api, dns: api.svc.example.com, targets: [aws]}\n",
			[]want{w("9:7", "certificates.specs[0]", `the default ttl "72h" is denied by the policy: exceeds policy.max_ttl 24h`)}},
		{"denied-wildcard-uri-ip", spec("    - {name: api, dns: \"*.svc.example.com\", uris: \"spiffe://prod.example/x\", ips: 10.0.0.1, targets: [aws]}\n"),
			[]want{w("9:24", "certificates.specs[0].dns[0]", "wildcard names are not allowed", "set policy.allow_wildcards: true"),
				w("9:51", "certificates.specs[0].uris[0]", "matches no policy.allowed_uris pattern (the policy allows none)"),
				w("9:83", "certificates.specs[0].ips[0]", "IP addresses are not allowed", "set policy.allow_ips: true")}},
		{"renew-before-ttl", spec("    - {name: api, dns: api.svc.example.com, ttl: 24h, renew_before: 2d, targets: [aws]}\n"),
			[]want{w("9:55", "certificates.specs[0].renew_before", `"2d" is denied by the policy: not shorter than the ttl 24h`, "leave it out to renew at 2/3 of the life")}},
		{"names-nothing", spec("    - {name: api, targets: [aws]}\n"),
			[]want{w("9:7", "certificates.specs[0]", "the certificate names nothing")}},
		{"bad-name", spec("    - {name: API, dns: api.svc.example.com, targets: [aws]}\n"),
			[]want{w("9:8", "certificates.specs[0].name", `certificate name "API" must be 1–63 lower-case letters`)}},
		{"duplicate-name", spec("    - {name: api, dns: api.svc.example.com, targets: [aws]}\n    - {name: api, dns: api.svc.example.com, targets: [local]}\n"),
			[]want{w("10:7", "certificates.specs[1].name", "used twice (first at line 9)")}},
		{"no-targets", spec("    - {name: api, dns: api.svc.example.com}\n"),
			[]want{w("9:7", "certificates.specs[0]", "targets is required")}},
		{"unknown-store", spec("    - {name: api, dns: api.svc.example.com, targets: [{store: s3}]}\n"),
			[]want{w("9:56", "certificates.specs[0].targets[0].store", `there is no store named "s3"`)}},
		{"two-kinds", spec("    - {name: api, dns: api.svc.example.com, targets: [{store: aws, acm: {region: eu-west-1}}]}\n"),
			[]want{w("9:68", "certificates.specs[0].targets[0].acm", "give exactly one target kind, not store and acm")}},
		{"acm-name", spec("    - {name: api, dns: api.svc.example.com, targets: [{acm: {region: eu-west-1}, name: x}]}\n"),
			[]want{w("9:82", "certificates.specs[0].targets[0].name", "ACM certificates are found by their keyferry-cert tag")}},
		{"bad-region", spec("    - {name: api, dns: api.svc.example.com, targets: [{acm: {region: EU-West-1}}]}\n"),
			[]want{w("9:62", "certificates.specs[0].targets[0].acm.region", `"EU-West-1" is not an AWS region code: write it eu-west-1`)}},
		{"kv-http", spec("    - {name: api, dns: api.svc.example.com, targets: [{keyvault: {vault: \"http://kf.vault.azure.net\"}}]}\n"),
			[]want{w("9:67", "certificates.specs[0].targets[0].keyvault.vault", "must be an https URL")}},
		{"kv-format", spec("    - {name: api, dns: api.svc.example.com, targets: [{keyvault: {vault: \"https://kf-prod.vault.azure.net\", format: p12}}]}\n"),
			[]want{w("9:109", "certificates.specs[0].targets[0].keyvault.format", "must be one of pfx, pem")}},
		{"kv-endpoint", spec("    - {name: api, dns: api.svc.example.com, targets: [{keyvault: {vault: \"https://kf-prod.vault.azure.net\", endpoint: x}}]}\n"),
			[]want{w("9:109", "certificates.specs[0].targets[0].keyvault.endpoint", `unknown key "endpoint"`)}},
		{"cm-id", spec("    - {name: api, dns: api.svc.example.com, targets: [{certificate_manager: {project: kf-prod, name: Api_1}}]}\n"),
			[]want{w("9:96", "certificates.specs[0].targets[0].certificate_manager.name", `"Api_1" is not a certificate id`)}},
		{"cm-loopback-not-local", spec("    - {name: api, dns: api.svc.example.com, targets: [{certificate_manager: {project: kf-prod, endpoint: \"http://127.0.0.1:9\"}}]}\n"),
			[]want{w("9:96", "certificates.specs[0].targets[0].certificate_manager.endpoint", "only for certificate_manager targets of the local cloud")}},
		{"same-object", spec("    - {name: api, dns: api.svc.example.com, targets: [{store: aws, name: c/api}]}\n    - {name: web, dns: web.svc.example.com, targets: [{store: aws, name: c/api}]}\n"),
			[]want{w("10:55", "certificates.specs[1].targets[0]", "writes the same object as the target at line 9")}},
		{"reserved-tag", spec("    - {name: api, dns: api.svc.example.com, tags: {keyferry-owner: x}, targets: [aws]}\n"),
			[]want{w("9:45", "certificates.specs[0].tags", "uses the prefix keyferry-")}},
		{"bad-ttl", spec("    - {name: api, dns: api.svc.example.com, ttl: soon, targets: [aws]}\n"),
			[]want{w("9:45", "certificates.specs[0].ttl", "soon is not a duration")}},
		{"bad-eku", spec("    - {name: api, dns: api.svc.example.com, ext_key_usage: [code-signing], targets: [aws]}\n"),
			[]want{w("9:61", "certificates.specs[0].ext_key_usage[0]", `"code-signing" is not an extended key usage: use one of client-auth, server-auth`)}},
		{"inventory-vault", "certificates:\n  inventory: {vault_pki_mounts: [pki], vault_store: aws}\n",
			[]want{w("6:40", "certificates.inventory.vault_store", "name a vault-kv store")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			input := certStores + c.input
			cfg, err := Parse("keyferry.yaml", []byte(input))
			if cfg != nil {
				t.Fatal("a configuration with errors was returned")
			}
			checkErrors(t, input, err, c.wants)
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatal("a credential was repeated")
			}
		})
	}
}

// TestCertificatesInventoryNeedsAVault: Vault PKI mounts need to know which Vault serves them.
func TestCertificatesInventoryNeedsAVault(t *testing.T) {
	input := "stores:\n  a: {type: file, path: /x}\ncertificates:\n  inventory: {vault_pki_mounts: [pki]}\n"
	_, err := Parse("keyferry.yaml", []byte(input))
	checkErrors(t, input, err, []want{w("4:15", "certificates.inventory.vault_pki_mounts", "add `vault_store:`")})
}

// TestCertificatesSchema: the editor schema refuses what the loader refuses for the section's shape.
func TestCertificatesSchema(t *testing.T) {
	sch, _ := loadSchema(t)
	const head = "stores:\n  aws: {type: aws-secretsmanager, region: eu-west-1}\ncertificates:\n"
	const issuer = "  issuer: {builtin: {certificate: i.pem, key: {file: i.key}}}\n  policy: {allowed_domains: [\"*.svc.example.com\"], max_ttl: 1d}\n"
	if err := sch.Validate(yamlToJSON(t, head+issuer+"  specs:\n    - {name: api, dns: a.svc.example.com, ttl: 12h, targets: [aws, {acm: {region: eu-west-1}}, {store: aws, name: x}]}\n")); err != nil {
		t.Fatalf("the schema refuses a valid section: %v", err)
	}
	for name, body := range map[string]string{
		"two-issuers":   "  issuer: {builtin: {certificate: i.pem, key: {file: i.key}}, vault: {store: v, role: r}}\n",
		"two-keys":      "  issuer: {builtin: {certificate: i.pem, key: {file: i.key, aws_kms: {key_id: alias/x}}}}\n",
		"no-max-ttl":    "  policy: {allowed_domains: [a.example.com]}\n",
		"no-targets":    issuer + "  specs:\n    - {name: api, dns: a.svc.example.com}\n",
		"two-kinds":     issuer + "  specs:\n    - {name: api, dns: a.svc.example.com, targets: [{store: aws, acm: {region: eu-west-1}}]}\n",
		"acm-name":      issuer + "  specs:\n    - {name: api, dns: a.svc.example.com, targets: [{acm: {region: eu-west-1}, name: x}]}\n",
		"unknown-key":   issuer + "  specs:\n    - {name: api, dns: a.svc.example.com, sans: [x], targets: [aws]}\n",
		"bad-key-type":  issuer + "  specs:\n    - {name: api, dns: a.svc.example.com, key_type: ed25519, targets: [aws]}\n",
		"kv-format":     issuer + "  specs:\n    - {name: api, dns: a.svc.example.com, targets: [{keyvault: {vault: \"https://kf.vault.azure.net\", format: p12}}]}\n",
		"bad-inventory": "  inventory: {vault_mounts: [pki]}\n",
	} {
		input := head + body
		if err := sch.Validate(yamlToJSON(t, input)); err == nil {
			t.Errorf("%s: the schema accepts\n%s", name, input)
		}
		if _, err := Parse("keyferry.yaml", []byte(input)); err == nil {
			t.Errorf("%s: the loader accepts what the schema refuses", name)
		}
	}
}

// TestCertificatesSchemaEmptySection: an empty section is accepted by both.
func TestCertificatesSchemaEmptySection(t *testing.T) {
	sch, _ := loadSchema(t)
	input := "stores:\n  a: {type: file, path: /x}\ncertificates:\n"
	if err := sch.Validate(yamlToJSON(t, input)); err != nil {
		t.Fatalf("the schema refuses an empty section: %v", err)
	}
	if _, err := Parse("keyferry.yaml", []byte(input)); err != nil {
		t.Fatal(err)
	}
}

// TestCertificatesSchemaKMSKeys: the schema knows the issuer keys held by Key Vault and Cloud KMS as the
// loader does, accepts what the loader accepts and refuses what it refuses for their shape.
func TestCertificatesSchemaKMSKeys(t *testing.T) {
	sch, m := loadSchema(t)
	defs := m["definitions"].(map[string]any)
	for def, want := range map[string][]string{"keyVaultKey": kvKeyKeys, "cloudKMSKey": cloudKMSKeyKeys} {
		var got []string
		for k := range defs[def].(map[string]any)["properties"].(map[string]any) {
			got = append(got, k)
		}
		slices.Sort(got)
		want = slices.Sorted(slices.Values(want))
		if !slices.Equal(got, want) {
			t.Errorf("schema keys of %s %v, the loader's %v", def, got, want)
		}
	}
	const head = "stores:\n  aws: {type: aws-secretsmanager, region: eu-west-1}\ncertificates:\n  issuer: {builtin: {certificate: i.pem, key: "
	const version = "projects/kf-prod/locations/europe-west1/keyRings/keyferry/cryptoKeys/ca/cryptoKeyVersions/1"
	for _, key := range []string{
		"{azure_key_vault: {vault: \"https://kf-prod.vault.azure.net\", key: keyferry-ca}}",
		"{azure_key_vault: {vault: \"https://127.0.0.1:8443\", key: ca, version: 0123456789abcdef0123456789abcdef, local: true, ca_file: ca.pem}}",
		"{gcp_kms: {key_version: " + version + "}}",
		"{gcp_kms: {key_version: " + version + ", local: true, endpoint: \"http://127.0.0.1:9090\"}}",
	} {
		input := head + key + "}}\n"
		if err := sch.Validate(yamlToJSON(t, input)); err != nil {
			t.Errorf("the schema refuses\n%s%v", input, err)
		}
		if _, err := Parse("keyferry.yaml", []byte(input)); err != nil {
			t.Errorf("the loader refuses\n%s%v", input, err)
		}
	}
	for name, key := range map[string]string{
		"kv-http":        "{azure_key_vault: {vault: \"http://kf-prod.vault.azure.net\", key: ca}}",
		"kv-no-key":      "{azure_key_vault: {vault: \"https://kf-prod.vault.azure.net\"}}",
		"kv-bad-version": "{azure_key_vault: {vault: \"https://kf-prod.vault.azure.net\", key: ca, version: latest}}",
		"kv-endpoint":    "{azure_key_vault: {vault: \"https://kf-prod.vault.azure.net\", key: ca, endpoint: \"https://127.0.0.1:1\"}}",
		"gcp-key-only":   "{gcp_kms: {key_version: projects/kf-prod/locations/global/keyRings/r/cryptoKeys/ca}}",
		"gcp-missing":    "{gcp_kms: {local: true}}",
		"two-keys":       "{azure_key_vault: {vault: \"https://kf-prod.vault.azure.net\", key: ca}, gcp_kms: {key_version: " + version + "}}",
	} {
		input := head + key + "}}\n"
		if err := sch.Validate(yamlToJSON(t, input)); err == nil {
			t.Errorf("%s: the schema accepts\n%s", name, input)
		}
		if _, err := Parse("keyferry.yaml", []byte(input)); err == nil {
			t.Errorf("%s: the loader accepts what the schema refuses", name)
		}
	}
}
