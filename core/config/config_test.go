package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// want is one expected error: its position, its path and fragments of its message.
type want struct {
	pos  string // "line:col"
	path string
	has  []string
}

func w(pos, path string, has ...string) want { return want{pos, path, has} }

func doc(s string) string { return strings.TrimPrefix(s, "\n") }

// checkErrors asserts that err holds exactly the wanted errors, in order.
func checkErrors(t *testing.T, input string, err error, wants []want) {
	t.Helper()
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("Parse returned %T %v, want Errors", err, err)
	}
	if len(es) != len(wants) {
		t.Fatalf("got %d errors, want %d:\n%v\ninput:\n%s", len(es), len(wants), err, input)
	}
	for i, wt := range wants {
		e := es[i]
		if got := fmt.Sprintf("%d:%d", e.Line, e.Column); got != wt.pos || e.Path != wt.path {
			t.Errorf("error %d at %s %q, want %s %q: %v", i, got, e.Path, wt.pos, wt.path, e)
		}
		for _, h := range wt.has {
			if !strings.Contains(e.Message, h) {
				t.Errorf("error %d %q lacks %q", i, e.Message, h)
			}
		}
		prefix := fmt.Sprintf("keyferry.yaml:%s: ", wt.pos)
		if wt.path != "" {
			prefix += wt.path + ": "
		}
		if !strings.HasPrefix(e.Error(), prefix) {
			t.Errorf("error %d prints as %q, want the prefix %q", i, e.Error(), prefix)
		}
	}
}

// errorCases are inputs with every class of error, and exactly the errors each must produce. They also
// seed FuzzParse.
var errorCases = []struct {
	name  string
	input string
	wants []want
}{
	// ----- the file -----
	{"empty", "", []want{w("1:1", "", "empty", "stores:")}},
	{"comments-only", "# nothing\n", []want{w("1:1", "", "empty")}},
	{"null-document", "~\n", []want{w("1:1", "", "no settings")}},
	{"top-level-list", "- a\n- b\n", []want{w("1:1", "", "top level must be a mapping", "not a list")}},
	{"top-level-text", "stores\n", []want{w("1:1", "", "top level must be a mapping", "not text")}},
	{"two-documents", "stores:\n  l:\n    type: file\n    path: /x\n---\nstores: {}\n",
		[]want{w("6:1", "", "more than one YAML document", `remove the "---"`)}},
	// Found by FuzzParse: the YAML parser placed the empty second document on line 3 of a 2-line file.
	{"second-document-empty", "0\n---", []want{
		w("1:1", "", "top level must be a mapping", "not a number"),
		w("2:1", "", "more than one YAML document"),
	}},
	{"too-big", "stores:\n" + strings.Repeat("#\n", MaxFileBytes/2+1), []want{w("1:1", "", "at most 1048576")}},
	{"unknown-section", "stores:\n  l:\n    type: file\n    path: /x\nstors: {}\nreplicat: []\n", []want{
		w("5:1", "", `unknown section "stors"`, `did you mean "stores"?`, "the sections are: stores, replicate, notify"),
		w("6:1", "", `unknown section "replicat"`, `did you mean "replicate"?`),
	}},
	{"extension-keys-ignored", "x-defaults: &d {type: file}\nstores:\n  l:\n    <<: *d\n    path: /x\n", nil},
	{"no-stores-section", "x-a: 1\n", []want{w("1:1", "", "there is no `stores:` section")}},
	{"stores-null", "stores:\n", []want{w("1:1", "stores", "no store is defined")}},
	{"stores-empty", "stores: {}\n", []want{w("1:1", "stores", "no store is defined")}},
	{"stores-list", "stores:\n  - a\n", []want{w("1:1", "stores", "must be a mapping from store names", "not a list")}},
	{"duplicate-section", "stores:\n  l: {type: file, path: /x}\nstores:\n  m: {type: file, path: /y}\n",
		[]want{w("3:1", "stores", "is set twice (first at line 1)")}},

	// ----- YAML syntax -----
	{"bad-indentation", "stores:\n  a:\n    type: file\n   path: x\n", []want{w("4:4", "", "YAML syntax error", "did not find expected key", "indentation")}},
	{"tab", "stores:\n  a:\n\ttype: file\n", []want{w("3:1", "", "tab character", "spaces")}},
	{"tab-inside-line", "stores:\n  a:\n    type:\tfile\n  \tb: 1\n", []want{w("4:3", "", "tab character")}},
	{"unclosed-quote", "stores:\n  a:\n    type: file\n    path: \"x\n", []want{w("4:5", "", "unexpected end of stream", "not closed")}},
	{"unclosed-flow", "stores:\n  a:\n    type: [file\n", []want{w("3:5", "", "did not find expected ',' or ']'")}},
	{"colon-in-value", "stores:\n  a:\n    type: file\n    path: a: b\n", []want{w("4:5", "", "mapping values are not allowed", "quoted")}},
	{"undefined-alias", "stores:\n  a: *nope\n", []want{w("2:3", "", "refers to an anchor that is not defined")}},
	{"invalid-utf8", "stores:\n  a:\n    type: fi\xffle\n", []want{w("3:5", "", "UTF-8")}},

	// ----- store names -----
	{"store-name-case", "stores:\n  AWS_Prod:\n    type: file\n    path: /x\n",
		[]want{w("2:3", "stores.AWS_Prod", "lower-case letters", "rename it aws-prod")}},
	{"store-name-digit", "stores:\n  1st:\n    type: file\n    path: /x\n",
		[]want{w("2:3", "stores.1st", "starting with a letter", "e.g. aws-prod")}},
	{"store-name-long", "stores:\n  " + strings.Repeat("a", 64) + ":\n    type: file\n    path: /x\n",
		[]want{w("2:3", "stores."+strings.Repeat("a", 64), "1–63")}},
	{"store-name-twice", "stores:\n  a:\n    type: file\n    path: /x\n  a:\n    type: file\n    path: /y\n",
		[]want{w("5:3", "stores.a", "set twice (first at line 2)")}},
	{"store-null", "stores:\n  a:\n", []want{w("2:3", "stores.a", "no settings", "type:")}},
	{"store-scalar", "stores:\n  a: file\n", []want{w("2:3", "stores.a", "must be a mapping", "not text")}},
	{"complex-key", "stores:\n  ? [a, b]\n  : {type: file}\n", []want{w("2:5", "stores", "key must be plain text", "not a list")}},

	// ----- type -----
	{"type-missing", "stores:\n  a:\n    path: /x\n", []want{w("2:3", "stores.a", "type is required", "aws-secretsmanager, aws-ssm")}},
	{"type-unknown", "stores:\n  a:\n    type: gcp-secretmanger\n    project: p\n",
		[]want{w("3:5", "stores.a.type", `unknown store type "gcp-secretmanger"`, `did you mean "gcp-secretmanager"?`)}},
	{"type-far-off", "stores:\n  a:\n    type: dropbox\n", []want{w("3:5", "stores.a.type", `unknown store type "dropbox"; the types are:`)}},
	{"type-case", "stores:\n  a:\n    type: File\n    path: /x\n", []want{w("3:5", "stores.a.type", "write it file")}},
	{"type-list", "stores:\n  a:\n    type: [file]\n", []want{w("3:5", "stores.a.type", "must be text, not a list")}},
	{"type-unknown-other-keys-unchecked", "stores:\n  a:\n    type: nope\n    region: x\n    bogus: 1\n", []want{
		w("3:5", "stores.a.type", "unknown store type"),
		w("5:5", "stores.a.bogus", `unknown key "bogus"`),
	}},

	// ----- keys -----
	{"unknown-key", "stores:\n  a:\n    type: aws-secretsmanager\n    regoin: eu-west-1\n", []want{
		w("2:3", "stores.a", "region is required", "region: eu-west-1"),
		w("4:5", "stores.a.regoin", `unknown key "regoin"`, `did you mean "region"?`, "aws-secretsmanager stores take: local, endpoint, ca_file, region"),
	}},
	{"key-of-other-type", "stores:\n  a:\n    type: azure-keyvault\n    vault: https://kf-prod.vault.azure.net\n    tier: standard\n",
		[]want{w("5:5", "stores.a.tier", "is a setting of aws-ssm stores, not of azure-keyvault stores")}},
	{"key-of-two-types", "stores:\n  a:\n    type: file\n    path: /x\n    region: eu-west-1\n",
		[]want{w("5:5", "stores.a.region", "aws-secretsmanager and aws-ssm stores")}},
	{"key-twice", "stores:\n  a:\n    type: file\n    path: /x\n    path: /y\n", []want{w("5:5", "stores.a.path", "set twice (first at line 4)")}},
	{"string-is-list", "stores:\n  a:\n    type: file\n    path: [a]\n", []want{w("4:5", "stores.a.path", "must be text, not a list")}},
	{"string-is-empty", "stores:\n  a:\n    type: file\n    path:\n", []want{w("4:5", "stores.a.path", "is empty")}},
	{"string-is-bool", "stores:\n  a:\n    type: file\n    path: true\n", []want{w("4:5", "stores.a.path", "not true", "quote it")}},
	{"string-with-tag", "stores:\n  a:\n    type: file\n    path: !!binary aGk=\n", []want{w("4:5", "stores.a.path", "plain text", "!!binary")}},
	{"merge-of-scalar", "stores:\n  a:\n    <<: 3\n    type: file\n    path: /x\n", []want{w("3:5", "stores.a", "merge key (<<) takes a mapping")}},

	// ----- local, endpoint, ca_file -----
	{"local-not-bool", "stores:\n  a:\n    type: file\n    path: /x\n    local: yes\n", []want{w("5:5", "stores.a.local", `must be true or false, not "yes"`)}},
	{"endpoint-without-local", "stores:\n  a:\n    type: aws-ssm\n    region: eu-west-1\n    endpoint: http://127.0.0.1:5000\n",
		[]want{w("5:5", "stores.a.endpoint", "only for stores of the local cloud", "local: true")}},
	{"endpoint-not-loopback", "stores:\n  a:\n    type: aws-ssm\n    region: eu-west-1\n    local: true\n    endpoint: https://ssm.eu-west-1.amazonaws.com\n",
		[]want{w("6:5", "stores.a.endpoint", "must be on this machine", "127.0.0.1")}},
	{"endpoint-with-path", "stores:\n  a:\n    type: gcp-secretmanager\n    project: kf-prod\n    local: true\n    endpoint: http://127.0.0.1:9090/v1\n",
		[]want{w("6:5", "stores.a.endpoint", "without a path", "write http://127.0.0.1:9090")}},
	{"endpoint-not-url", "stores:\n  a:\n    type: aws-ssm\n    region: eu-west-1\n    local: true\n    endpoint: 127.0.0.1:5000\n",
		[]want{w("6:5", "stores.a.endpoint", "must be a URL such as http://127.0.0.1:5000")}},
	{"endpoint-on-file", "stores:\n  a:\n    type: file\n    path: /x\n    endpoint: http://127.0.0.1:1\n",
		[]want{w("5:5", "stores.a.endpoint", "file stores have no endpoint")}},
	{"endpoint-on-azure", "stores:\n  a:\n    type: azure-keyvault\n    vault: https://127.0.0.1:8443\n    local: true\n    endpoint: https://127.0.0.1:8443\n",
		[]want{w("6:5", "stores.a.endpoint", "reached at their `vault` URL")}},
	{"endpoint-on-vault", "stores:\n  a:\n    type: vault-kv\n    address: http://127.0.0.1:8200\n    local: true\n    endpoint: http://127.0.0.1:8200\n",
		[]want{w("6:5", "stores.a.endpoint", "reached at their `address`")}},
	{"ca-file-without-local", "stores:\n  a:\n    type: vault-kv\n    address: https://vault.example.com\n    ca_file: ca.pem\n",
		[]want{w("5:5", "stores.a.ca_file", "only for stores of the local cloud")}},
	{"ca-file-on-file", "stores:\n  a:\n    type: file\n    path: /x\n    local: true\n    ca_file: ca.pem\n",
		[]want{w("6:5", "stores.a.ca_file", "file stores have no CA file")}},
	{"ca-file-tilde", "stores:\n  a:\n    type: vault-kv\n    address: https://127.0.0.1:8200\n    local: true\n    ca_file: ~/ca.pem\n",
		[]want{w("6:5", "stores.a.ca_file", `"~" is not expanded`)}},

	// ----- aws-secretsmanager -----
	{"sm-region-missing", "stores:\n  a:\n    type: aws-secretsmanager\n", []want{w("2:3", "stores.a", "region is required for aws-secretsmanager stores")}},
	{"sm-region-case", "stores:\n  a:\n    type: aws-secretsmanager\n    region: EU-West-1\n", []want{w("4:5", "stores.a.region", `"EU-West-1" is not an AWS region code: write it eu-west-1`)}},
	{"sm-region-bad", "stores:\n  a:\n    type: aws-secretsmanager\n    region: europe\n", []want{w("4:5", "stores.a.region", "such as eu-west-1")}},
	{"sm-kms", "stores:\n  a:\n    type: aws-secretsmanager\n    region: eu-west-1\n    kms_key_id: my-key\n", []want{w("5:5", "stores.a.kms_key_id", `"my-key" is not a KMS key`, "alias/keyferry")}},
	{"sm-window-low", "stores:\n  a:\n    type: aws-secretsmanager\n    region: eu-west-1\n    recovery_window_days: 6\n", []want{w("5:5", "stores.a.recovery_window_days", "from 7 to 30 days", "not 6", "default is 30")}},
	{"sm-window-high", "stores:\n  a:\n    type: aws-secretsmanager\n    region: eu-west-1\n    recovery_window_days: 31\n", []want{w("5:5", "stores.a.recovery_window_days", "not 31")}},
	{"sm-window-text", "stores:\n  a:\n    type: aws-secretsmanager\n    region: eu-west-1\n    recovery_window_days: \"10\"\n", []want{w("5:5", "stores.a.recovery_window_days", `whole number, not "10"`)}},
	{"sm-window-float", "stores:\n  a:\n    type: aws-secretsmanager\n    region: eu-west-1\n    recovery_window_days: 7.5\n", []want{w("5:5", "stores.a.recovery_window_days", "whole number")}},

	// ----- aws-ssm -----
	{"ssm-tier", "stores:\n  a:\n    type: aws-ssm\n    region: eu-west-1\n    tier: intelligent-tiering\n", []want{w("5:5", "stores.a.tier", "must be standard", "or advanced")}},
	{"ssm-tier-case", "stores:\n  a:\n    type: aws-ssm\n    region: eu-west-1\n    tier: Advanced\n", []want{w("5:5", "stores.a.tier", "write it advanced")}},
	{"ssm-prefix-relative", "stores:\n  a:\n    type: aws-ssm\n    region: eu-west-1\n    path_prefix: keyferry\n", []want{w("5:5", "stores.a.path_prefix", `must start with "/"`)}},
	{"ssm-prefix-trailing", "stores:\n  a:\n    type: aws-ssm\n    region: eu-west-1\n    path_prefix: /kf/\n", []want{w("5:5", "stores.a.path_prefix", "trailing", ": /kf")}},
	{"ssm-prefix-reserved", "stores:\n  a:\n    type: aws-ssm\n    region: eu-west-1\n    path_prefix: /AWS-things\n", []want{w("5:5", "stores.a.path_prefix", "reserves")}},
	{"ssm-prefix-chars", "stores:\n  a:\n    type: aws-ssm\n    region: eu-west-1\n    path_prefix: /a b\n", []want{w("5:5", "stores.a.path_prefix", "not a parameter path")}},

	// ----- azure-keyvault -----
	{"az-vault-missing", "stores:\n  a:\n    type: azure-keyvault\n", []want{w("2:3", "stores.a", "vault is required", "https://kf-prod.vault.azure.net")}},
	{"az-vault-http", "stores:\n  a:\n    type: azure-keyvault\n    vault: http://kf-prod.vault.azure.net\n",
		[]want{w("4:5", "stores.a.vault", "must be an https URL such as https://kf-prod.vault.azure.net")}},
	{"az-vault-host", "stores:\n  a:\n    type: azure-keyvault\n    vault: https://example.com\n", []want{w("4:5", "stores.a.vault", "end in .vault.azure.net")}},
	{"az-vault-name", "stores:\n  a:\n    type: azure-keyvault\n    vault: https://k--v.vault.azure.net\n", []want{w("4:5", "stores.a.vault", "3–24 letters")}},
	{"az-vault-port", "stores:\n  a:\n    type: azure-keyvault\n    vault: https://kf-prod.vault.azure.net:8443\n", []want{w("4:5", "stores.a.vault", "port 443 only")}},
	{"az-vault-path", "stores:\n  a:\n    type: azure-keyvault\n    vault: https://kf.vault.azure.net/secrets/x\n", []want{w("4:5", "stores.a.vault", "without a path", "write https://kf.vault.azure.net")}},
	{"az-vault-loopback", "stores:\n  a:\n    type: azure-keyvault\n    vault: https://127.0.0.1:8443\n", []want{w("4:5", "stores.a.vault", "points at this machine", "local: true")}},
	{"az-tenant", "stores:\n  a:\n    type: azure-keyvault\n    vault: https://kf-prod.vault.azure.net\n    tenant_id: not a tenant\n", []want{w("5:5", "stores.a.tenant_id", "not a tenant", "GUID")}},

	// ----- gcp-secretmanager -----
	{"gcp-project-missing", "stores:\n  a:\n    type: gcp-secretmanager\n", []want{w("2:3", "stores.a", "project is required")}},
	{"gcp-project-number", "stores:\n  a:\n    type: gcp-secretmanager\n    project: 123456789012\n", []want{w("4:5", "stores.a.project", "project number", "project ID")}},
	{"gcp-project-case", "stores:\n  a:\n    type: gcp-secretmanager\n    project: KF-Prod\n", []want{w("4:5", "stores.a.project", "write it kf-prod")}},
	{"gcp-project-short", "stores:\n  a:\n    type: gcp-secretmanager\n    project: kf\n", []want{w("4:5", "stores.a.project", "6–30")}},
	{"gcp-replication-word", "stores:\n  a:\n    type: gcp-secretmanager\n    project: kf-prod\n    replication: auto\n",
		[]want{w("5:5", "stores.a.replication", "`automatic` or a list of locations", `not "auto"`)}},
	{"gcp-replication-empty", "stores:\n  a:\n    type: gcp-secretmanager\n    project: kf-prod\n    replication: []\n", []want{w("5:5", "stores.a.replication", "list of locations is empty")}},
	{"gcp-replication-locations", "stores:\n  a:\n    type: gcp-secretmanager\n    project: kf-prod\n    replication:\n      - europe-west1\n      - Europe\n      - europe-west1\n      - [x]\n", []want{
		w("7:9", "stores.a.replication[1]", `"Europe" is not a GCP location`),
		w("8:9", "stores.a.replication[2]", "listed twice"),
		w("9:9", "stores.a.replication[3]", "must be a location", "not a list"),
	}},
	{"gcp-topics-not-list", "stores:\n  a:\n    type: gcp-secretmanager\n    project: kf-prod\n    topics: projects/kf-prod/topics/t1\n",
		[]want{w("5:5", "stores.a.topics", "must be a list of Pub/Sub topics")}},
	{"gcp-topics-bad", "stores:\n  a:\n    type: gcp-secretmanager\n    project: kf-prod\n    topics: [t1, projects/KF/topics/t1, projects/kf-prod/topics/goog-x, projects/kf-prod/topics/ok1, projects/kf-prod/topics/ok1]\n", []want{
		w("5:14", "stores.a.topics[0]", "projects/PROJECT/topics/TOPIC"),
		w("5:18", "stores.a.topics[1]", "project part"),
		w("5:41", "stores.a.topics[2]", "goog"),
		w("5:102", "stores.a.topics[4]", "listed twice"),
	}},
	{"gcp-topics-too-many", "stores:\n  a:\n    type: gcp-secretmanager\n    project: kf-prod\n    topics: [" +
		strings.TrimSuffix(strings.Repeat("projects/p-1234/topics/abc, ", 11), ", ") + "]\n", []want{
		w("5:5", "stores.a.topics", "lists 11 topics", "at most 10"),
		w("5:42", "stores.a.topics[1]", "listed twice"),
		w("5:70", "stores.a.topics[2]", "listed twice"),
		w("5:98", "stores.a.topics[3]", "listed twice"),
		w("5:126", "stores.a.topics[4]", "listed twice"),
		w("5:154", "stores.a.topics[5]", "listed twice"),
		w("5:182", "stores.a.topics[6]", "listed twice"),
		w("5:210", "stores.a.topics[7]", "listed twice"),
		w("5:238", "stores.a.topics[8]", "listed twice"),
		w("5:266", "stores.a.topics[9]", "listed twice"),
		w("5:294", "stores.a.topics[10]", "listed twice"),
	}},

	// ----- vault-kv -----
	{"vault-address-missing", "stores:\n  a:\n    type: vault-kv\n", []want{w("2:3", "stores.a", "address is required")}},
	{"vault-address-http", "stores:\n  a:\n    type: vault-kv\n    address: http://vault.example.com:8200\n", []want{w("4:5", "stores.a.address", "must use https", "clear text")}},
	{"vault-address-loopback", "stores:\n  a:\n    type: vault-kv\n    address: https://localhost:8200\n", []want{w("4:5", "stores.a.address", "points at this machine")}},
	{"vault-address-userinfo", "stores:\n  a:\n    type: vault-kv\n    address: https://root:hunter2-pw@vault.example.com\n",
		[]want{w("4:5", "stores.a.address", "must not carry a user name or password", "not shown")}},
	{"vault-mount-slashes", "stores:\n  a:\n    type: vault-kv\n    address: https://vault.example.com\n    mount: /kv/\n", []want{w("5:5", "stores.a.mount", "without leading or trailing", ": kv")}},
	{"vault-namespace", "stores:\n  a:\n    type: vault-kv\n    address: https://vault.example.com\n    namespace: a b\n", []want{w("5:5", "stores.a.namespace", "not a namespace path")}},

	// ----- file -----
	{"file-path-missing", "stores:\n  a:\n    type: file\n", []want{w("2:3", "stores.a", "path is required for file stores")}},
	{"file-path-tilde", "stores:\n  a:\n    type: file\n    path: ~/secrets\n", []want{w("4:5", "stores.a.path", "not expanded")}},

	// ----- several problems at once, reported in file order -----
	{"many", "stors: 1\nstores:\n  a:\n    type: aws-ssm\n    tier: gold\n  b:\n    type: file\n    path: /x\n    pth: /y\n", []want{
		w("1:1", "", `unknown section "stors"`),
		w("3:3", "stores.a", "region is required"),
		w("5:5", "stores.a.tier", `not "gold"`),
		w("9:5", "stores.b.pth", `did you mean "path"?`),
	}},
}

func TestErrors(t *testing.T) {
	for _, c := range errorCases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse("keyferry.yaml", []byte(c.input))
			if len(c.wants) == 0 {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if cfg == nil || len(cfg.Stores) == 0 {
					t.Fatal("no stores")
				}
				return
			}
			if cfg != nil {
				t.Errorf("Parse returned a config with errors")
			}
			checkErrors(t, c.input, err, c.wants)
		})
	}
}

func TestCredentialsRefused(t *testing.T) {
	const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	types := map[string]string{
		"aws-secretsmanager": "region: eu-west-1",
		"aws-ssm":            "region: eu-west-1",
		"azure-keyvault":     "vault: https://kf-prod.vault.azure.net",
		"gcp-secretmanager":  "project: kf-prod",
		"vault-kv":           "address: https://vault.example.com",
		"file":               "path: /x",
	}
	alternative := map[string]string{
		"aws-secretsmanager": "IAM role", "aws-ssm": "web identity", "azure-keyvault": "managed identity or a federated credential",
		"gcp-secretmanager": "workload identity federation", "vault-kv": "JWT auth role", "file": "workload identity only",
	}
	keys := []string{
		"access_key_id", "secret_access_key", "aws_access_key_id", "AWS_SECRET_ACCESS_KEY", "aws_session_token",
		"client_secret", "password", "db-password", "token", "vault_token", "credentials", "key_file", "private_key",
		"service_account_key", "secret_id", "api_key", "connection_string", "sas_token", "github_token",
	}
	for typ, required := range types {
		for _, key := range keys {
			input := fmt.Sprintf("stores:\n  s:\n    type: %s\n    %s\n    %s: %s\n", typ, required, key, secret)
			_, err := Parse("keyferry.yaml", []byte(input))
			checkErrors(t, input, err, []want{w("5:5", "stores.s."+key, "static credentials are not allowed", alternative[typ])})
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "wJalrXUtnFEMI") {
				t.Fatalf("the credential appears in %v", err)
			}
		}
	}
	// Anywhere: nested, in lists, at the top level, in ignored sections, through anchors, and as a
	// value that also appears under an ordinary key.
	input := doc(`
x-creds: &c
  password: ` + secret + `
token: ` + secret + `
stores:
  s:
    type: vault-kv
    address: https://vault.example.com
    auth:
      - method: approle
        secret_id: ` + secret + `
    namespace: ` + secret + `+
    <<: *c
`)
	_, err := Parse("keyferry.yaml", []byte(input))
	checkErrors(t, input, err, []want{
		w("2:3", "x-creds.password", "static credentials"),
		w("3:1", "token", "static credentials", "workload identity only"),
		w("8:5", "stores.s.auth", `unknown key "auth"`),
		w("10:9", "stores.s.auth.secret_id", "static credentials", "JWT auth role"),
		w("11:5", "stores.s.namespace", "(value not shown) is not a namespace path"),
	})
	if strings.Contains(err.Error(), "EXAMPLEKEY") {
		t.Fatalf("the credential appears in %v", err)
	}
	// A credential-looking value is not echoed under an ordinary key either.
	input = "stores:\n  s:\n    type: aws-ssm\n    region: AKIAIOSFODNN7EXAMPLE\n"
	_, err = Parse("keyferry.yaml", []byte(input))
	checkErrors(t, input, err, []want{w("4:5", "stores.s.region", "(value not shown) is not an AWS region")})
}

// fullExample exercises every field of every type.
const fullExample = `
stores:
  aws-prod:
    type: aws-secretsmanager
    region: eu-west-1
    kms_key_id: alias/keyferry
    recovery_window_days: 7
  aws-params:
    type: aws-ssm
    region: us-east-1
    kms_key_id: arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab
    tier: advanced
    path_prefix: /keyferry/prod
  azure:
    type: azure-keyvault
    vault: https://kf-prod.vault.azure.net/
    tenant_id: 00000000-0000-0000-0000-000000000000
  gcp:
    type: gcp-secretmanager
    project: kf-prod-123
    replication: [europe-west1, europe-west4]
    topics:
      - projects/kf-prod-123/topics/secret-events
  vault:
    type: vault-kv
    address: https://vault.example.com:8200
    mount: kv/team
    namespace: admin/team-a
  local:
    type: file
    path: state/secrets
  moto:
    type: aws-secretsmanager
    region: us-east-1
    local: true
    endpoint: http://127.0.0.1:5000
  kv-emulator:
    type: azure-keyvault
    vault: https://127.0.0.1:8443
    local: true
    ca_file: testdata/ca.pem
  gcp-emulator:
    type: gcp-secretmanager
    project: local-project
    replication: automatic
    local: true
    endpoint: http://localhost:9090
  vault-dev:
    type: vault-kv
    address: http://127.0.0.1:8200
    local: true
rotate:
  - name: db-password
    store: aws-prod
    match: ["prod/db/*"]
    every: 30d
    generate: {password: {length: 32, lower: 2, upper: 2, digits: 2, symbols: 0, exclude: "\"'"}}
    test: db-login
    grace: 7d
    max_age: 90d
    lease_ttl: 20m
  - name: app-credentials
    store: local
    match: app/credentials
    cron: "0 3 * * 1"
    generate:
      template:
        fields:
          - {name: username, static: app}
          - {name: password, generate: {random: {length: 40, charset: abcdef0123456789}}}
          - {name: key, generate: {bytes: {length: 32, encoding: hex}}}
          - {name: id, generate: {uuid: true}}
          - {name: dsn, compose: "postgres://{{.username}}:{{.password}}@db:5432/app"}
`

func TestFullExample(t *testing.T) {
	cfg, err := Parse("/etc/keyferry/keyferry.yaml", []byte(doc(fullExample)))
	if err != nil {
		t.Fatal(err)
	}
	want := []*StoreConfig{
		{Name: "aws-prod", Type: TypeAWSSecretsManager, Line: 2, Column: 3,
			AWSSecretsManager: &AWSSecretsManagerConfig{Region: "eu-west-1", KMSKeyID: "alias/keyferry", RecoveryWindowDays: 7}},
		{Name: "aws-params", Type: TypeAWSSSM, Line: 7, Column: 3,
			AWSSSM: &AWSSSMConfig{Region: "us-east-1", KMSKeyID: "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
				Tier: "advanced", PathPrefix: "/keyferry/prod"}},
		{Name: "azure", Type: TypeAzureKeyVault, Line: 13, Column: 3,
			AzureKeyVault: &AzureKeyVaultConfig{Vault: "https://kf-prod.vault.azure.net/", TenantID: "00000000-0000-0000-0000-000000000000"}},
		{Name: "gcp", Type: TypeGCPSecretManager, Line: 17, Column: 3,
			GCPSecretManager: &GCPSecretManagerConfig{Project: "kf-prod-123",
				Replication: GCPReplication{Locations: []string{"europe-west1", "europe-west4"}},
				Topics:      []string{"projects/kf-prod-123/topics/secret-events"}}},
		{Name: "vault", Type: TypeVaultKV, Line: 23, Column: 3,
			VaultKV: &VaultKVConfig{Address: "https://vault.example.com:8200", Mount: "kv/team", Namespace: "admin/team-a"}},
		{Name: "local", Type: TypeFile, Line: 28, Column: 3, File: &FileConfig{Path: "/etc/keyferry/state/secrets"}},
		{Name: "moto", Type: TypeAWSSecretsManager, Line: 31, Column: 3, Local: true, Endpoint: "http://127.0.0.1:5000",
			AWSSecretsManager: &AWSSecretsManagerConfig{Region: "us-east-1", RecoveryWindowDays: 30}},
		{Name: "kv-emulator", Type: TypeAzureKeyVault, Line: 36, Column: 3, Local: true, CAFile: "/etc/keyferry/testdata/ca.pem",
			AzureKeyVault: &AzureKeyVaultConfig{Vault: "https://127.0.0.1:8443"}},
		{Name: "gcp-emulator", Type: TypeGCPSecretManager, Line: 41, Column: 3, Local: true, Endpoint: "http://localhost:9090",
			GCPSecretManager: &GCPSecretManagerConfig{Project: "local-project", Replication: GCPReplication{Automatic: true}}},
		{Name: "vault-dev", Type: TypeVaultKV, Line: 47, Column: 3, Local: true,
			VaultKV: &VaultKVConfig{Address: "http://127.0.0.1:8200", Mount: "secret"}},
	}
	if len(cfg.Stores) != len(want) {
		t.Fatalf("%d stores, want %d", len(cfg.Stores), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(cfg.Stores[i], want[i]) {
			t.Errorf("store %d:\n got %+v\nwant %+v", i, *cfg.Stores[i], *want[i])
		}
	}
	if cfg.Store("gcp") != cfg.Stores[3] || cfg.Store("nope") != nil {
		t.Error("Config.Store lookup is wrong")
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := Parse("keyferry.yaml", []byte(doc(`
stores:
  sm: {type: aws-secretsmanager, region: eu-west-1}
  ssm: {type: aws-ssm, region: eu-west-1}
  gcp: {type: gcp-secretmanager, project: kf-prod}
  kv: {type: vault-kv, address: https://vault.example.com}
`)))
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.Store("sm").AWSSecretsManager; c.RecoveryWindowDays != 30 || c.KMSKeyID != "" {
		t.Errorf("aws-secretsmanager defaults: %+v", c)
	}
	if c := cfg.Store("ssm").AWSSSM; c.Tier != "standard" || c.PathPrefix != "" {
		t.Errorf("aws-ssm defaults: %+v", c)
	}
	if c := cfg.Store("gcp").GCPSecretManager; !c.Replication.Automatic || c.Replication.Locations != nil || c.Topics != nil {
		t.Errorf("gcp-secretmanager defaults: %+v", c)
	}
	if c := cfg.Store("kv").VaultKV; c.Mount != "secret" || c.Namespace != "" {
		t.Errorf("vault-kv defaults: %+v", c)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "keyferry.yaml")
	if err := os.WriteFile(p, []byte("stores:\n  l:\n    type: file\n    path: data\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Store("l").File.Path; got != filepath.Join(dir, "data") {
		t.Errorf("relative path resolved to %q, want it next to the configuration", got)
	}
	if err := os.WriteFile(p, []byte("stores:\n  l:\n    type: file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(p)
	if err == nil || !strings.HasPrefix(err.Error(), p+":2:3: stores.l: path is required") {
		t.Errorf("Load error %v does not start with the file's path and position", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("Load of a missing file: %v", err)
	}
}

func TestErrorsPrintOnePerLine(t *testing.T) {
	_, err := Parse("kf.yaml", []byte("stores:\n  a:\n    type: file\n  b:\n    type: file\n"))
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 2 || lines[0] != "kf.yaml:2:3: stores.a: path is required for file stores: add `path: /var/lib/keyferry/secrets`" ||
		!strings.HasPrefix(lines[1], "kf.yaml:4:3: stores.b: ") {
		t.Fatalf("Errors prints\n%s", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Line != 2 {
		t.Fatalf("errors.As(*Error) = %v", e)
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"region", "kms_key_id", "recovery_window_days", "endpoint", "ca_file", "local"}
	for in, want := range map[string]string{
		"regoin": "region", "Region": "region", "kms-key-id": "kms_key_id", "kms_key": "kms_key_id",
		"recovery_window": "", "endpont": "endpoint", "cafile": "ca_file", "zzz": "", "loc": "",
	} {
		if got := suggest(in, known); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestUnknownSectionNameIsNotEchoed: a credential nested under an unknown top-level key whose name looks
// like a secret is reported without the name (found by FuzzParse).
func TestUnknownSectionNameIsNotEchoed(t *testing.T) {
	in := "stores:\n  a: {type: file, path: /x}\n3nAbcdefGhijKlmnOp:\n  pAsswd: hunter2\n"
	_, err := Parse("keyferry.yaml", []byte(in))
	if err == nil {
		t.Fatal("accepted")
	}
	if strings.Contains(err.Error(), "3nAbcdefGhijKlmnOp") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("echoed: %v", err)
	}
}
