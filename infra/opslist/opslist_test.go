package opslist

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

const fixturePkg = Module + "/fixture"

// scanFixture scans testdata/fixture's files as the package fixturePkg, with their imports' export data from
// `go list -export` in the module.
func scanFixture(t *testing.T, files []string, excluded []Exclusion) ([]Op, error) {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := goList(context.Background(), root, []string{
		"cloud.google.com/go/certificatemanager/apiv1", "cloud.google.com/go/pubsub/v2",
		"cloud.google.com/go/secretmanager/apiv1", "cloud.google.com/go/secretmanager/apiv1/secretmanagerpb",
		"github.com/Azure/azure-sdk-for-go/sdk/azcore", "github.com/Azure/azure-sdk-for-go/sdk/azcore/policy",
		"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets",
		"github.com/aws/aws-sdk-go-v2/service/acm", "github.com/aws/aws-sdk-go-v2/service/secretsmanager",
	})
	if err != nil {
		t.Fatal(err)
	}
	exports := map[string]string{}
	for _, p := range pkgs {
		exports[p.ImportPath] = p.Export
	}
	s := newScanner(root, exports, excluded)
	var paths []string
	for _, f := range files {
		paths = append(paths, filepath.Join(root, "infra", "opslist", "testdata", "fixture", f))
	}
	if err := s.checkPackage(fixturePkg, paths); err != nil {
		t.Fatal(err)
	}
	return s.ops(), s.finish()
}

var fixtureExclusion = []Exclusion{{Func: fixturePkg + ".inventory", Why: "the CLI's"}}

// TestScanRecognizesEachKindOfCall: every kind of call the package documents is found once, under the
// operation its request type (or method) names; helpers, accessors, non-constant scopes and excluded code
// add nothing.
func TestScanRecognizesEachKindOfCall(t *testing.T) {
	ops, err := scanFixture(t, []string{"calls.go"}, fixtureExclusion)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range ops {
		got = append(got, string(o.Cloud)+" "+opKey(o))
		if len(o.Sites) != 1 || !strings.HasPrefix(o.Sites[0], "infra/opslist/testdata/fixture/calls.go:") {
			t.Errorf("%s: sites %v, want one line of calls.go", opKey(o), o.Sites)
		}
	}
	want := []string{
		"aws acm.ImportCertificate",
		"aws acm.ListCertificates",
		"aws secretsmanager.GetSecretValue",
		"azure azsecrets.ListSecretProperties",
		"azure azsecrets.SetSecret",
		"azure entra-token-scope.https://eventgrid.azure.net/.default",
		"gcp certificatemanager/apiv1.GetOperation",
		"gcp pubsub/v2.Publish",
		"gcp secretmanager/apiv1/secretmanagerpb.AddSecretVersion",
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("operations:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestExcludedCodeMustStayUnreferenced: once code the functions run refers to an excluded function, the
// scan fails, naming the reference.
func TestExcludedCodeMustStayUnreferenced(t *testing.T) {
	_, err := scanFixture(t, []string{"calls.go", "refers.go"}, fixtureExclusion)
	if err == nil || !strings.Contains(err.Error(), "infra/opslist/testdata/fixture/refers.go:6 refers to "+fixturePkg+".inventory") {
		t.Fatalf("error %v, want the reference from refers.go", err)
	}
	// Without the exclusion the same code is simply scanned, and DescribeCertificate counts.
	ops, err := scanFixture(t, []string{"calls.go", "refers.go"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(ops, func(o Op) bool { return opKey(o) == "acm.DescribeCertificate" }) {
		t.Errorf("DescribeCertificate not found without the exclusion: %v", ops)
	}
}

func TestPermissions(t *testing.T) {
	ops := []Op{
		{Cloud: AWS, Service: awsServicePrefix + "acm", Name: "ImportCertificate", Sites: []string{"a.go:1"}},
		{Cloud: AWS, Service: awsServicePrefix + "eventbridge", Name: "PutEvents", Sites: []string{"b.go:2"}},
		{Cloud: AWS, Service: awsServicePrefix + "sts", Name: "AssumeRoleWithWebIdentity", Sites: []string{"c.go:3"}},
		{Cloud: Azure, Service: azureKeyVault + "azsecrets", Name: "ListSecretPropertiesVersions", Sites: []string{"d.go:4"}},
		{Cloud: GCP, Service: googleCloud + "secretmanager/apiv1/secretmanagerpb", Name: "AccessSecretVersion", Sites: []string{"e.go:5"}},
	}
	cases := []struct {
		cloud Cloud
		want  []string
	}{
		// ImportCertificate with tags also needs AddTagsToCertificate; AssumeRoleWithWebIdentity needs nothing.
		{AWS, []string{"acm:AddTagsToCertificate", "acm:ImportCertificate", "events:PutEvents"}},
		{Azure, []string{"Microsoft.KeyVault/vaults/secrets/readMetadata/action"}},
		{GCP, []string{"secretmanager.versions.access"}},
	}
	for _, c := range cases {
		needs, err := Permissions(c.cloud, ops)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for p := range needs {
			got = append(got, p)
		}
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.cloud, got, c.want)
		}
	}
	// An operation without a known permission is an error naming it and its call site.
	_, err := Permissions(AWS, []Op{{Cloud: AWS, Service: awsServicePrefix + "lambda", Name: "Invoke", Sites: []string{"f.go:6"}}})
	if err == nil || !strings.Contains(err.Error(), "lambda Invoke (f.go:6)") {
		t.Errorf("error %v, want it to name lambda Invoke and its site", err)
	}
	_, err = Permissions(GCP, []Op{{Cloud: GCP, Service: googleCloud + "kms/apiv1/kmspb", Name: "Decrypt", Sites: []string{"g.go:7"}}})
	if err == nil || !strings.Contains(err.Error(), "kmspb Decrypt") {
		t.Errorf("error %v, want it to name kmspb Decrypt", err)
	}
}

func TestCompare(t *testing.T) {
	needs := Needs{"a:Get": {"x Get (x.go:1)"}, "a:Put": {"x Put (x.go:2)"}}
	cases := []struct {
		name                   string
		granted                map[string][]string
		extras                 []Extra
		missing, unused, stale int
	}{
		{"exact", map[string][]string{"a:Get": {"S1"}, "a:Put": {"S1"}}, nil, 0, 0, 0},
		{"missing", map[string][]string{"a:Get": {"S1"}}, nil, 1, 0, 0},
		{"unused", map[string][]string{"a:Get": {"S1"}, "a:Put": {"S1"}, "a:Delete": {"S2"}}, nil, 0, 1, 0},
		{"deliberate extra", map[string][]string{"a:Get": {"S1"}, "a:Put": {"S1"}, "logs:Put": {"S3"}}, []Extra{{"logs:Put", "runtime"}}, 0, 0, 0},
		{"stale extra", map[string][]string{"a:Get": {"S1"}, "a:Put": {"S1"}}, []Extra{{"logs:Put", "runtime"}}, 0, 0, 1},
	}
	for _, c := range cases {
		d := Compare(needs, c.granted, c.extras)
		if len(d.Missing) != c.missing || len(d.Unused) != c.unused || len(d.Stale) != c.stale || d.OK() != (c.missing+c.unused+c.stale == 0) {
			t.Errorf("%s: %+v", c.name, d)
		}
	}
	d := Compare(needs, map[string][]string{"a:Get": {"S2", "S1", "S2"}, "a:Delete": {"S9"}}, nil)
	if d.Missing[0] != "a:Put: needed by x Put (x.go:2)" || d.Unused[0] != "a:Delete: granted by S9" {
		t.Errorf("messages %q %q", d.Missing, d.Unused)
	}
}

var (
	realOnce sync.Once
	real     *Result
	realErr  error
)

// TestScanFunctions scans the functions' code: each adapter's operations are found where they are, the
// inventory's (CLI-only) are not, and every operation of the three clouds maps to a permission.
func TestScanFunctions(t *testing.T) {
	realOnce.Do(func() { real, realErr = Scan(context.Background(), filepath.Join("..", "..")) })
	if realErr != nil {
		t.Fatal(realErr)
	}
	sites := map[string]string{}
	for _, o := range real.Ops {
		sites[string(o.Cloud)+" "+opKey(o)] = strings.Join(o.Sites, " ")
	}
	for op, dir := range map[string]string{
		"aws secretsmanager.UpdateSecretVersionStage":                  "core/store/awssm/",
		"aws ssm.GetParameterHistory":                                  "core/store/awsssm/",
		"aws acm.ImportCertificate":                                    "core/certs/acm.go",
		"aws kms.Sign":                                                 "core/pki/kmssigner/aws.go",
		"aws sts.GetWebIdentityToken":                                  "core/identity/",
		"azure azsecrets.SetSecret":                                    "core/store/azkv/",
		"azure azcertificates.ImportCertificate":                       "core/certs/keyvault.go",
		"azure entra-token-scope.https://eventgrid.azure.net/.default": "core/notify/azure.go",
		"gcp secretmanager/apiv1/secretmanagerpb.AddSecretVersion":     "core/store/gcpsm/",
		"gcp certificatemanager/apiv1.GetOperation":                    "core/certs/certmanager.go",
		"gcp pubsub/v2.Publish":                                        "core/notify/gcp.go",
		"vault api.WriteWithContext":                                   "core/store/vaultkv/",
	} {
		if !strings.Contains(sites[op], dir) {
			t.Errorf("%s: sites %q, want one in %s", op, sites[op], dir)
		}
	}
	for _, op := range []string{"aws acm.DescribeCertificate", "azure azcertificates.ListCertificateProperties", "gcp certificatemanager/apiv1/certificatemanagerpb.ListCertificates"} {
		if s, ok := sites[op]; ok {
			t.Errorf("%s found at %s: the inventory is the CLI's, not the functions'", op, s)
		}
	}
	for _, c := range []Cloud{AWS, Azure, GCP} {
		needs, err := Permissions(c, real.Ops)
		if err != nil {
			t.Error(err)
		}
		t.Logf("%s: %d operations need %d permissions", c, len(real.ByCloud(c)), len(needs))
	}
	t.Logf("%d keyferry packages scanned", len(real.Packages))
}
