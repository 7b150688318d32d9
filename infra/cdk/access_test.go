package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/replicate"
)

func TestTargetPrefix(t *testing.T) {
	rule := replicate.Rule{From: replicate.Source{Store: "aws-prod"}}
	glob := namePrefix{prefix: "prod/"}                // from "prod/**"
	exact := namePrefix{prefix: "app/db", exact: true} // from "app/db"
	cases := []struct {
		tmpl, store string
		sp          namePrefix
		want        string
	}{
		{"", config.TypeAWSSecretsManager, glob, "prod/"},                        // default {{ .Name }}
		{"dr/{{ .Name }}", config.TypeAWSSecretsManager, glob, "dr/prod/"},       // literal + .Name
		{"{{- .Name -}}", config.TypeAWSSecretsManager, glob, "prod/"},           // trim markers
		{"dr/{{ .Name }}/x", config.TypeAWSSecretsManager, exact, "dr/app/db/x"}, // exact source: the whole name
		{"{{ .SourceStore }}/{{ .Name }}", config.TypeAWSSecretsManager, glob, "aws-prod/prod/"},
		{"{{ .TargetStore }}-{{ .Base }}", config.TypeAWSSecretsManager, glob, "aws-dr-"}, // .Base of a glob: unknown
		{"{{ .Dir }}/{{ .Base }}", config.TypeAWSSecretsManager, exact, "app/db"},
		{"{{ .Dir | replace \"/\" \"-\" }}-{{ .Base }}", config.TypeAWSSecretsManager, glob, ""}, // a function: unknown
		{"x/{{ .Name | upper }}", config.TypeAWSSecretsManager, glob, "x/"},
		{"{{ if .Name }}a{{ end }}", config.TypeAWSSecretsManager, glob, ""},
		{"{{ .Dir }}", config.TypeAWSSecretsManager, glob, "prod"},
		{"my app/{{ .Name }}", config.TypeAWSSecretsManager, glob, "my"},      // " " is mapped: cut there
		{"a--b/{{ .Name }}", config.TypeAWSSecretsManager, glob, "a-"},        // dash runs collapse
		{"-x/{{ .Name }}", config.TypeAWSSecretsManager, glob, ""},            // a leading "-" may be trimmed
		{"/keyferry/{{ .Name }}", config.TypeAWSSSM, glob, "/keyferry/prod/"}, // Parameter Store hierarchy
		{"keyferry/{{ .Name }}", config.TypeAWSSSM, glob, "keyferry"},         // "/" without a leading "/" is mapped
		{"/k+f/{{ .Name }}", config.TypeAWSSSM, glob, "/k"},                   // "+" is not a parameter character
		{"app+{{ .Name }}", config.TypeAWSSecretsManager, glob, "app+prod/"},  // but it is a secret name character
	}
	for _, c := range cases {
		got := sanitize(targetPrefix(replicate.Target{Store: "aws-dr", Name: c.tmpl}, rule, c.sp), c.store)
		if got != c.want {
			t.Errorf("%s %q from %+v: prefix %q, want %q", c.store, c.tmpl, c.sp, got, c.want)
		}
	}
}

func TestSourcePrefixes(t *testing.T) {
	got := sourcePrefixes(replicate.Rule{From: replicate.Source{Match: []string{"prod/**", "shared/db-*", "app-db", "a?c", "x[yz]", "{a,b}/c"}}})
	want := []namePrefix{{"prod/", false}, {"shared/db-", false}, {"app-db", true}, {"a", false}, {"x", false}, {"", false}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := sourcePrefixes(replicate.Rule{}); !slices.Equal(got, []namePrefix{{}}) {
		t.Errorf("no match globs: %v, want every name", got)
	}
}

func TestMinimize(t *testing.T) {
	got := minimize([]string{"prod/db", "prod/", "apps/x", "prod/", "apps/xy"})
	if want := []string{"apps/x", "prod/"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func loadExample(t *testing.T) *config.Config {
	t.Helper()
	data, err := os.ReadFile("testdata/keyferry.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("testdata/keyferry.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestDeriveAccessExample pins the grants of testdata/keyferry.yaml: every Secrets Manager and Parameter
// Store resource is a name prefix from the rules, KMS is the configured key or the service's keys.
func TestDeriveAccessExample(t *testing.T) {
	acc := DeriveAccess(loadExample(t), "aws", "123456789012")
	want := map[string][]string{
		"aws-prod":   {"apps/app-db", "certs/api", "prod/", "shared/db-", "vault/"}, // certs/api: a certificate's secret; prod/db/* (rotated) is under prod/
		"aws-dr":     {"dr/prod/", "dr/shared/db-"},
		"aws-params": {"/keyferry/aws-prod/prod/", "/keyferry/aws-prod/shared/db-", "/keyferry/rotated/"}, // rotated: a rotation policy's globs
	}
	for store, ps := range want {
		if !slices.Equal(acc.Prefixes[store], ps) {
			t.Errorf("store %s: prefixes %q, want %q", store, acc.Prefixes[store], ps)
		}
	}
	if len(acc.Warnings) != 0 {
		t.Errorf("warnings: %v", acc.Warnings)
	}
	bySid := map[string]Statement{}
	for _, st := range acc.Store {
		bySid[st.Sid] = st
	}
	checks := map[string][]string{
		"SecretsManagerAwsProd": {
			"arn:aws:secretsmanager:eu-west-1:123456789012:secret:apps/app-db*",
			"arn:aws:secretsmanager:eu-west-1:123456789012:secret:certs/api*",
			"arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/*",
			"arn:aws:secretsmanager:eu-west-1:123456789012:secret:shared/db-*",
			"arn:aws:secretsmanager:eu-west-1:123456789012:secret:vault/*",
		},
		"ParameterStoreAwsParams": {
			"arn:aws:ssm:eu-west-1:123456789012:parameter/keyferry/aws-prod/prod/*",
			"arn:aws:ssm:eu-west-1:123456789012:parameter/keyferry/aws-prod/shared/db-*",
			"arn:aws:ssm:eu-west-1:123456789012:parameter/keyferry/rotated/*",
		},
		"KMSAwsDr":            {"arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"},
		"KMSAwsParams":        {"arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"},
		"KMSAwsProd":          {"arn:aws:kms:eu-west-1:123456789012:key/*"},
		"SecretsManagerList":  {"*"},
		"ParameterStoreList":  {"*"},
		"NotifySNS":           {"arn:aws:sns:eu-west-1:123456789012:keyferry-alerts"},
		"NotifyEventBridge":   {"arn:aws:events:eu-west-1:123456789012:event-bus/keyferry"},
		"ACMImportNewEuWest1": {"arn:aws:acm:eu-west-1:123456789012:certificate/*"},
		"ACMManageEuWest1":    {"arn:aws:acm:eu-west-1:123456789012:certificate/*"},
		"ACMFindByTagEuWest1": {"arn:aws:acm:eu-west-1:123456789012:certificate/*"},
		"ACMImportNewUsEast1": {"arn:aws:acm:us-east-1:123456789012:certificate/*"},
		"ACMManageUsEast1":    {"arn:aws:acm:us-east-1:123456789012:certificate/*"},
		"ACMFindByTagUsEast1": {"arn:aws:acm:us-east-1:123456789012:certificate/*"},
		"ACMList":             {"*"},
		"CASigningKey":        {"arn:aws:kms:eu-west-1:123456789012:key/*"}, // alias/keyferry-ca: the key carrying the alias
	}
	for sid, res := range checks {
		if !slices.Equal(bySid[sid].Resources, res) {
			t.Errorf("%s: resources %q, want %q", sid, bySid[sid].Resources, res)
		}
	}
	if got := bySid["KMSAwsProd"].Conditions["StringEquals"]["kms:ViaService"]; !slices.Equal(got, []string{"secretsmanager.eu-west-1.amazonaws.com"}) {
		t.Errorf("KMSAwsProd: the alias is scoped with kms:ViaService %v, want secretsmanager.eu-west-1.amazonaws.com", got)
	}
	// ACM: a new import only with keyferry's mark for the region's specs on the request; everything else
	// only on certificates carrying it.
	for sid, want := range map[string][2]string{
		"ACMImportNewEuWest1": {"aws:RequestTag/keyferry-cert", "api web"},
		"ACMManageEuWest1":    {"aws:ResourceTag/keyferry-cert", "api web"},
		"ACMImportNewUsEast1": {"aws:RequestTag/keyferry-cert", "api"},
		"ACMManageUsEast1":    {"aws:ResourceTag/keyferry-cert", "api"},
	} {
		if got := strings.Join(bySid[sid].Conditions["StringEquals"][want[0]], " "); got != want[1] {
			t.Errorf("%s: StringEquals %s = %q, want %q", sid, want[0], got, want[1])
		}
	}
	if got := bySid["ACMManageEuWest1"].Actions; !slices.Equal(got, []string{"acm:ImportCertificate", "acm:AddTagsToCertificate", "acm:GetCertificate"}) {
		t.Errorf("ACMManageEuWest1 actions %v", got)
	}
	if got := bySid["CASigningKey"].Conditions["ForAnyValue:StringEquals"]["kms:ResourceAliases"]; !slices.Equal(got, []string{"alias/keyferry-ca"}) ||
		!slices.Equal(bySid["CASigningKey"].Actions, []string{"kms:Sign", "kms:GetPublicKey"}) {
		t.Errorf("CASigningKey: %+v, want kms:Sign and kms:GetPublicKey on the key with alias/keyferry-ca", bySid["CASigningKey"])
	}
	// Rotation: Secrets Manager may invoke the function for the rotated secrets only (aws-params is
	// Parameter Store, which has no rotation functions).
	if want := []string{"arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db/*"}; !slices.Equal(acc.RotationSources, want) {
		t.Errorf("rotation sources %q, want %q", acc.RotationSources, want)
	}
	if c := bySid["KMSAwsDr"].Conditions; c != nil {
		t.Errorf("KMSAwsDr names its key: no condition needed, got %v", c)
	}
	if len(acc.Store) != len(checks)+1 { // + SecretsManagerAwsDr
		t.Errorf("%d statements, want %d", len(acc.Store), len(checks)+1)
	}
}

// TestDeriveAccessWholeStore shows the widest case: a rule without match globs into a store, warned about.
func TestDeriveAccessWholeStore(t *testing.T) {
	cfg, err := config.Parse("k.yaml", []byte(`
stores:
  a: {type: aws-secretsmanager, region: us-east-1}
  b: {type: aws-secretsmanager, region: us-west-2}
replicate:
  - {name: all, from: a, to: [b]}
`))
	if err != nil {
		t.Fatal(err)
	}
	acc := DeriveAccess(cfg, "aws", "111122223333")
	if !slices.Equal(acc.Store[0].Resources, []string{"arn:aws:secretsmanager:us-east-1:111122223333:secret:*"}) {
		t.Errorf("store a: %v", acc.Store[0].Resources)
	}
	if len(acc.Warnings) != 2 || !strings.Contains(acc.Warnings[0], "every secret") {
		t.Errorf("warnings: %v", acc.Warnings)
	}
	for _, st := range acc.Store {
		if slices.Contains(st.Resources, "*") && !slices.Equal(st.Actions, secretsManagerListActions) {
			t.Errorf("%s: Resource * on %v", st.Sid, st.Actions)
		}
	}
}

// TestPolicySize: the example's policy fits IAM's managed policy limit, and a configuration with many
// prefixes is refused before CloudFormation would refuse it.
func TestPolicySize(t *testing.T) {
	if n := PolicySize(loadExample(t)); n > ManagedPolicyLimit || n < 1000 {
		t.Errorf("example policy: %d characters", n)
	} else {
		t.Logf("example StoreAccess policy: %d of %d characters", n, ManagedPolicyLimit)
	}
	var b strings.Builder
	b.WriteString("stores:\n  a: {type: aws-secretsmanager, region: us-east-1}\n  g: {type: gcp-secretmanager, project: kf-prod}\nreplicate:\n")
	for i := range 120 {
		fmt.Fprintf(&b, "  - {name: r%d, from: {store: a, match: [\"team-%03d/**\"]}, to: [g]}\n", i, i)
	}
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/k.yaml", []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadSettings(mapContext(map[string]string{ctxConfig: dir + "/k.yaml", ctxAssetDir: fakeAsset(t), ctxGCPTrust: "false"}), ".")
	if err == nil || !strings.Contains(err.Error(), "IAM allows 6144 in a managed policy") {
		t.Errorf("error %v", err)
	}
}
