package policycheck

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
)

func load(t *testing.T, path string) *Template {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

func rules(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		if !slices.Contains(out, f.Rule) {
			out = append(out, f.Rule)
		}
	}
	sort.Strings(out)
	return out
}

// The least-privilege checks, each with the fixtures it must refuse. Every check is also run on the
// negative control (good-minimal.json) and on the template `cdk synth` wrote (TestSynthesizedTemplate).
var checks = []struct {
	name  string
	check func(*Template) []Finding
	bad   map[string]int // fixture → number of findings this check must report
}{
	{"NoWildcardActions", WildcardActions, map[string]int{
		"bad-action-star.json": 1, "bad-service-wildcard.json": 2, "bad-notaction.json": 1,
	}},
	{"NoStarResourceOnSecretsWrite", SecretsWriteOnStar, map[string]int{
		"bad-secrets-write-star.json": 1, "bad-secrets-write-all-secrets.json": 1,
	}},
	{"NoStarResource", StarResources, map[string]int{
		"bad-star-resource.json": 1, "bad-secrets-write-star.json": 1,
	}},
	{"WebIdentityTrustHasAudAndSub", WebIdentityTrust, map[string]int{
		"bad-trust-no-sub.json": 1, "bad-trust-no-aud.json": 1, "bad-trust-wildcard-sub.json": 2,
	}},
}

// TestChecksRefuseBadFixtures shows each check failing: on every fixture that introduces its wildcard it
// reports exactly the grants the fixture introduces, and it stays silent on the other fixtures.
func TestChecksRefuseBadFixtures(t *testing.T) {
	fixtures, err := filepath.Glob("../testdata/bad-*.json")
	if err != nil || len(fixtures) == 0 {
		t.Fatalf("no bad fixtures found: %v", err)
	}
	covered := map[string]bool{}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			for _, path := range fixtures {
				name := filepath.Base(path)
				got := c.check(load(t, path))
				want := c.bad[name]
				if len(got) != want {
					t.Errorf("%s on %s: %d findings, want %d: %v", c.name, name, len(got), want, got)
					continue
				}
				if want > 0 {
					covered[name] = true
					t.Logf("%s refuses %s: %v", c.name, name, got)
				}
			}
			if len(c.check(load(t, "../testdata/good-minimal.json"))) != 0 {
				t.Errorf("%s reports the negative control good-minimal.json: %v", c.name, c.check(load(t, "../testdata/good-minimal.json")))
			}
		})
	}
	for _, path := range fixtures {
		if !covered[filepath.Base(path)] {
			t.Errorf("fixture %s is refused by no check", filepath.Base(path))
		}
	}
}

// TestCheckRulesPerFixture pins which rules Check reports for each fixture.
func TestCheckRulesPerFixture(t *testing.T) {
	want := map[string][]string{
		"bad-action-star.json":               {RuleWildcardAction},
		"bad-service-wildcard.json":          {RuleWildcardAction},
		"bad-notaction.json":                 {RuleWildcardAction},
		"bad-secrets-write-star.json":        {RuleSecretsWriteOnStar, RuleStarResource},
		"bad-secrets-write-all-secrets.json": {RuleSecretsWriteOnStar},
		"bad-star-resource.json":             {RuleStarResource},
		"bad-trust-no-sub.json":              {RuleWebIdentityTrust},
		"bad-trust-no-aud.json":              {RuleWebIdentityTrust},
		"bad-trust-wildcard-sub.json":        {RuleWebIdentityTrust},
		"good-minimal.json":                  nil,
	}
	for name, rs := range want {
		got := rules(Check(load(t, filepath.Join("../testdata", name))))
		if !slices.Equal(got, rs) {
			t.Errorf("%s: rules %v, want %v", name, got, rs)
		}
	}
}

// TestSynthesizedTemplate runs every check on the template `cdk synth` wrote for testdata/keyferry.yaml
// (make infra-check-cdk sets KEYFERRY_CDK_TEMPLATE). The stack is also checked in-process by the main
// package's tests, so this is the same verdict on the CLI's output.
func TestSynthesizedTemplate(t *testing.T) {
	path := os.Getenv("KEYFERRY_CDK_TEMPLATE")
	if path == "" {
		t.Skip("KEYFERRY_CDK_TEMPLATE is not set: `make infra-check-cdk` sets it to the synthesized template")
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join("..", path) // relative to infra/cdk, where make runs the tests
	}
	tmpl := load(t, path)
	if fs := Check(tmpl); len(fs) > 0 {
		for _, f := range fs {
			t.Error(f)
		}
	}
	// The checks must have had something to look at.
	var webRoles, policies int
	for _, st := range tmpl.statements() {
		if st.trust {
			if slices.Contains(strs(st.s["Action"]), "sts:AssumeRoleWithWebIdentity") {
				webRoles++
			}
		} else {
			policies++
		}
	}
	if webRoles != 2 || policies < 10 {
		t.Errorf("the template has %d web-identity trust statements (want 2: Azure and GCP) and %d policy statements", webRoles, policies)
	}
	t.Logf("%s: %d policy statements and %d web-identity trust statements pass every check", path, policies, webRoles)
}
