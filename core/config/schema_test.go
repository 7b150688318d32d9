package config

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// The JSON schema for editors (docs/keyferry.schema.json) must accept every documented example and know
// exactly the keys the loader knows.

func loadSchema(t *testing.T) (*jsonschema.Schema, map[string]any) {
	t.Helper()
	raw, err := os.ReadFile("../../docs/keyferry.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatalf("the schema is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("keyferry.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("keyferry.schema.json")
	if err != nil {
		t.Fatalf("the schema does not compile: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return sch, m
}

// yamlToJSON turns a YAML document into the JSON data model the schema validates.
func yamlToJSON(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jsonschema.UnmarshalJSON(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSchemaAcceptsTheDocumentedExamples(t *testing.T) {
	sch, _ := loadSchema(t)
	b, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, blk := range regexp.MustCompile("(?ms)^```([a-z ]*)\n(.*?)^```$").FindAllStringSubmatch(string(b), -1) {
		if strings.TrimSpace(blk[1]) != "yaml" || strings.Contains(blk[2], "<<:") {
			continue // merge keys are YAML 1.1: the JSON data model has none
		}
		n++
		if err := sch.Validate(yamlToJSON(t, blk[2])); err != nil {
			t.Errorf("the schema refuses documented example %d:\n%s\n%v", n, blk[2], err)
		}
	}
	if err := sch.Validate(yamlToJSON(t, fullExample)); err != nil {
		t.Errorf("the schema refuses the full example: %v", err)
	}
	if n < 9 {
		t.Fatalf("only %d examples found", n)
	}
}

func TestSchemaRefusesMistakes(t *testing.T) {
	sch, _ := loadSchema(t)
	for name, input := range map[string]string{
		"no-stores":     "replicate: []\n",
		"unknown-type":  "stores:\n  a: {type: s3, region: eu-west-1}\n",
		"wrong-key":     "stores:\n  a: {type: file, path: /x, region: eu-west-1}\n",
		"missing-path":  "stores:\n  a: {type: file}\n",
		"bad-window":    "stores:\n  a: {type: aws-secretsmanager, region: eu-west-1, recovery_window_days: 3}\n",
		"rule-no-to":    "stores:\n  a: {type: file, path: /x}\nreplicate:\n  - {name: r, from: a}\n",
		"bad-conflict":  "stores:\n  a: {type: file, path: /x}\nreplicate:\n  - {name: r, from: a, to: [b], on_conflict: maybe}\n",
		"route-type":    "stores:\n  a: {type: file, path: /x}\nnotify:\n  - {type: slack}\n",
		"unknown-top":   "stores:\n  a: {type: file, path: /x}\nrotations: []\n",
		"store-name":    "stores:\n  A_B: {type: file, path: /x}\n",
		"tags-not-text": "stores:\n  a: {type: file, path: /x}\nreplicate:\n  - {name: r, from: {store: a, tags: {k: [1]}}, to: [b]}\n",
	} {
		if err := sch.Validate(yamlToJSON(t, input)); err == nil {
			t.Errorf("%s: the schema accepts\n%s", name, input)
		}
		if _, err := Parse("keyferry.yaml", []byte(input)); err == nil && name != "unknown-top" {
			t.Errorf("%s: the loader accepts what the schema refuses", name)
		}
	}
}

// TestSchemaKnowsTheKeys keeps the schema's keys equal to the loader's.
func TestSchemaKnowsTheKeys(t *testing.T) {
	_, m := loadSchema(t)
	defs := m["definitions"].(map[string]any)
	props := func(obj any) []string {
		var out []string
		for k := range obj.(map[string]any)["properties"].(map[string]any) {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	sorted := func(s []string) []string { s = slices.Clone(s); sort.Strings(s); return s }
	for _, alt := range defs["store"].(map[string]any)["oneOf"].([]any) {
		keys := props(alt)
		typ := alt.(map[string]any)["properties"].(map[string]any)["type"].(map[string]any)["const"].(string)
		want := []string{"type", "local"}
		for _, k := range []string{"endpoint", "ca_file"} {
			if typ != TypeFile && (k == "ca_file" || !slices.Contains([]string{TypeAzureKeyVault, TypeVaultKV}, typ)) {
				want = append(want, k)
			}
		}
		want = append(want, typeKeys[typ]...)
		if !slices.Equal(keys, sorted(want)) {
			t.Errorf("schema keys of %s stores %v, the loader's %v", typ, keys, sorted(want))
		}
	}
	top := props(m)
	if !slices.Equal(top, sorted(sectionNames())) {
		t.Errorf("schema sections %v, the loader's %v", top, sectionNames())
	}
	oneObj := func(def string) any {
		for _, alt := range defs[def].(map[string]any)["oneOf"].([]any) {
			if alt.(map[string]any)["type"] == "object" {
				return alt
			}
		}
		t.Fatalf("%s has no object form", def)
		return nil
	}
	for def, want := range map[string][]string{"rule": ruleKeys, "route": notifyKeys, "policy": rotateKeys, "generator": generateKeys,
		"certificates": certificatesKeys, "certIssuer": certIssuerKeys, "issuerKey": issuerKeyKeys, "kmsKey": kmsKeyKeys,
		"certPolicy": certPolicyKeys, "certSpec": certSpecKeys, "certInventory": certInventoryKeys, "builtinIssuer": builtinIssuerKeys,
		"vaultIssuer": vaultIssuerKeys, "acmTarget": acmTargetKeys, "keyVaultTarget": keyVaultTargetKeys, "certManagerTarget": certManagerKeys} {
		if got := props(defs[def]); !slices.Equal(got, sorted(want)) {
			t.Errorf("schema keys of %s %v, the loader's %v", def, got, sorted(want))
		}
	}
	for def, want := range map[string][]string{"source": fromKeys, "target": targetKeys, "tagPolicy": tagKeys, "certTarget": certTargetKeys} {
		if got := props(oneObj(def)); !slices.Equal(got, sorted(want)) {
			t.Errorf("schema keys of %s %v, the loader's %v", def, got, sorted(want))
		}
	}
}
