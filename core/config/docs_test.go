package config

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestDocumentation keeps docs/configuration.md true: every ```yaml example parses, and every
// ```yaml invalid example fails with exactly the output shown in the ```text block after it.
func TestDocumentation(t *testing.T) {
	b, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?ms)^```([a-z ]*)\n(.*?)^```$").FindAllStringSubmatch(string(b), -1)
	valid, invalid := 0, 0
	for i, blk := range blocks {
		info, body := strings.TrimSpace(blk[1]), blk[2]
		switch info {
		case "yaml":
			valid++
			if _, err := Parse("keyferry.yaml", []byte(body)); err != nil {
				t.Errorf("documented example %d does not parse:\n%s\n%v", valid, body, err)
			}
		case "yaml invalid":
			invalid++
			_, err := Parse("keyferry.yaml", []byte(body))
			if err == nil {
				t.Errorf("invalid example %d parses", invalid)
				continue
			}
			if i+1 >= len(blocks) || strings.TrimSpace(blocks[i+1][1]) != "text" {
				t.Errorf("invalid example %d is not followed by a ```text block of its errors", invalid)
				continue
			}
			if want := strings.TrimSuffix(blocks[i+1][2], "\n"); err.Error() != want {
				t.Errorf("invalid example %d reports\n%s\nthe documentation shows\n%s", invalid, err, want)
			}
		}
	}
	if valid < 9 || invalid < 2 {
		t.Fatalf("found %d examples and %d error examples: the pattern no longer matches the page", valid, invalid)
	}
	// Every field of every type is documented.
	for _, k := range allKeys() {
		if !strings.Contains(string(b), "| `"+k+"` |") {
			t.Errorf("field %s has no row in docs/configuration.md", k)
		}
	}
	for _, typ := range Types {
		if !strings.Contains(string(b), "## "+typ) {
			t.Errorf("type %s has no section in docs/configuration.md", typ)
		}
	}
}

// TestNoSettingIsACredential guards the credential check against refusing keyferry's own keys.
func TestNoSettingIsACredential(t *testing.T) {
	for _, k := range slices.Concat(allKeys(), sectionNames()) {
		if isCredentialKey(k) {
			t.Errorf("setting %q is taken for a credential", k)
		}
	}
}
