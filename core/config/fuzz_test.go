package config

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzParse feeds Parse arbitrary input and checks that it never panics, that a configuration it accepts
// is complete, that every error carries a position inside the file, and that no credential-looking text
// found under a credential key is ever repeated in an error.
//
//	go test ./core/config -run '^$' -fuzz FuzzParse -fuzztime 30s -fuzzminimizetime 2s
//
// (Without -fuzzminimizetime the fuzzer may spend the whole run minimizing one new input.)
func FuzzParse(f *testing.F) {
	f.Add([]byte(doc(fullExample)))
	for _, c := range errorCases {
		if len(c.input) <= 64<<10 { // a megabyte seed slows the fuzzer's mutator to a crawl
			f.Add([]byte(c.input))
		}
	}
	for _, s := range []string{
		twoStores + "replicate:\n  - name: r\n    from: {store: aws, match: [\"prod/**\"], tags: {a: \"*\"}}\n    to: [gcp, {store: azure, name: \"{{ .Base }}\", tags: {rename: {a: b}}}]\n    granularity: keys\n    keys: [k]\n",
		twoStores + "replicate:\n  - {name: r, from: aws, to: [aws]}\n  - {name: r, from: {store: x}, to: []}\n",
		twoStores + "notify:\n  - {type: sns, topic: \"arn:aws:sns:eu-west-1:123456789012:t\", kinds: [replication.conflict]}\n  - {type: eventgrid, topic: \"https://127.0.0.1:1/api/events\", local: true}\n",
		"stores:\n  s:\n    type: aws-secretsmanager\n    region: eu-west-1\n    secret_access_key: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
		"stores:\n  s: {type: vault-kv, address: 'https://vault.example.com', token: hvs.CAESIJlWh0Qx7Gk2Zp9}\n",
		"x-c: &c {client_secret: Qm9vTXlTZWNyZXQxMjM0NTY3}\nstores:\n  s:\n    <<: *c\n    type: azure-keyvault\n    region: Qm9vTXlTZWNyZXQxMjM0NTY3\n",
		"stores:\n  s:\n    type: gcp-secretmanager\n    project: kf-prod\n    service_account_key: |\n      -----BEGIN PRIVATE KEY-----\n      MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n",
		"password: *AKIAIOSFODNN7EXAMPLE\n",
		"stores:\n  Tok3nAbcdefGhij:\n    password: Tok3nAbcdefGhij\n",
		"a: &a [*a]\n",
		"stores: &s\n  a: *s\n",
		"stores:\n  a:\n    <<: [*x]\n",
		"\ufeffstores:\n  l: {type: file, path: /x}\n",
		"stores:\r\n  l:\r\n    type: file\r\n    path: /x\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("keyferry.yaml", data)
		if err == nil {
			checkAccepted(t, cfg)
			return
		}
		if cfg != nil {
			t.Fatalf("Parse returned both a config and %v", err)
		}
		var es Errors
		if !errors.As(err, &es) || len(es) == 0 {
			t.Fatalf("Parse returned %T %q, want a non-empty Errors", err, err)
		}
		lines := bytes.Count(data, []byte("\n")) + 1
		for _, e := range es {
			if e.File != "keyferry.yaml" || e.Line < 1 || e.Line > lines || e.Column < 1 || e.Message == "" {
				t.Fatalf("error without a proper position (file has %d lines): %#v", lines, *e)
			}
			if !strings.HasPrefix(e.Error(), fmt.Sprintf("keyferry.yaml:%d:%d: ", e.Line, e.Column)) {
				t.Fatalf("error does not start with its position: %q", e.Error())
			}
		}
		msg := err.Error()
		for _, v := range credentialValues(data) {
			for _, w := range credentialWindows(v) {
				if strings.Contains(msg, w) {
					t.Fatalf("text %q from a credential value appears in the errors:\n%s", w, msg)
				}
			}
		}
	})
}

func checkAccepted(t *testing.T, cfg *Config) {
	t.Helper()
	if cfg == nil || len(cfg.Stores) == 0 {
		t.Fatalf("accepted a configuration without stores: %+v", cfg)
	}
	for _, s := range cfg.Stores {
		set := 0
		for _, p := range []bool{s.AWSSecretsManager != nil, s.AWSSSM != nil, s.AzureKeyVault != nil,
			s.GCPSecretManager != nil, s.VaultKV != nil, s.File != nil} {
			if p {
				set++
			}
		}
		if !storeNamePattern.MatchString(s.Name) || !slices.Contains(Types, s.Type) || s.Line < 1 || s.Column < 1 || set != 1 {
			t.Fatalf("accepted an incomplete store: %+v", *s)
		}
		if (s.Endpoint != "" || s.CAFile != "") && !s.Local {
			t.Fatalf("accepted an endpoint on a store that is not local: %+v", *s)
		}
	}
}

// credentialLine finds "key: value" on one line, also inside flow mappings.
var credentialLine = regexp.MustCompile(`([A-Za-z0-9_-]+)["']?[ \t]*:[ \t]+([^\s,{}\[\]]+)`)

// credentialValues returns the text found under credential keys: from the YAML tree when the input
// parses, and from the raw lines either way.
func credentialValues(data []byte) []string {
	var out []string
	for _, m := range credentialLine.FindAllSubmatch(data, -1) {
		if isCredentialKey(string(m[1])) {
			out = append(out, strings.Trim(string(m[2]), `"'*&`))
		}
	}
	var n yaml.Node
	func() {
		defer func() { _ = recover() }()
		if yaml.Unmarshal(data, &n) == nil {
			p := &parser{}
			p.collectSecrets(&n, 0)
			out = append(out, p.secrets...)
		}
	}()
	return out
}

// credentialWindows returns every 12-byte stretch of v made of key characters that mixes upper case,
// lower case and digits, the way generated keys, tokens and passwords do. The messages' own wording and
// examples have no such stretch, so finding one in an error means the value was repeated.
func credentialWindows(v string) []string {
	var out []string
	for _, run := range secretRun.FindAllString(v, -1) {
		for i := 0; i+12 <= len(run); i++ {
			w := run[i : i+12]
			if strings.ContainsAny(w, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") && strings.ContainsAny(w, "abcdefghijklmnopqrstuvwxyz") &&
				strings.ContainsAny(w, "0123456789") {
				out = append(out, w)
			}
		}
	}
	return out
}

// TestFuzzOracleCanFail shows that the fuzz test's credential check catches a repeated value.
func TestFuzzOracleCanFail(t *testing.T) {
	data := []byte("stores:\n  s:\n    password: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n")
	leaked := "keyferry.yaml:3:5: stores.s.password: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	found := false
	for _, v := range credentialValues(data) {
		for _, w := range credentialWindows(v) {
			found = found || strings.Contains(leaked, w)
		}
	}
	if !found {
		t.Fatal("the oracle does not see a repeated credential")
	}
}
