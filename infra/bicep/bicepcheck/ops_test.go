package bicepcheck

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/keyferry/keyferry/infra/opslist"
)

// platformRoles are roles the templates give the Function App's identity for the Functions platform, not
// for an SDK operation of keyferry's: they are left out of the comparison.
var platformRoles = map[string]string{
	"b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner on the app's own storage: the Functions host's timer leases and deployment package",
	"3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher on the app's Application Insights: telemetry with Entra authentication",
}

// azureExtras are the data actions the built-in roles carry beyond what keyferry calls. No built-in role
// carries fewer; each is scoped to the vault (secrets, certificates) or to the one signing key.
var azureExtras = func() []opslist.Extra {
	var out []opslist.Extra
	add := func(why, prefix string, suffixes ...string) {
		for _, s := range suffixes {
			out = append(out, opslist.Extra{Permission: prefix + s, Why: why})
		}
	}
	const kv = "Microsoft.KeyVault/vaults/"
	add("Key Vault Secrets Officer, on a written vault", kv+"secrets/", "backup/action", "restore/action")
	add("Key Vault Certificates Officer, on a certificate target's vault (import needs it)", kv+"certificates/",
		"delete", "backup/action", "purge/action", "update/action", "create/action", "recover/action", "restore/action")
	add("Key Vault Certificates Officer, on a certificate target's vault (import needs it)", kv+"certificatecas/", "read", "write", "delete")
	add("Key Vault Certificates Officer, on a certificate target's vault (import needs it)", kv, "certificatecontacts/write")
	add("Key Vault Crypto User, on the CA's signing key only (sign needs it)", kv+"keys/",
		"update/action", "backup/action", "encrypt/action", "decrypt/action", "wrap/action", "unwrap/action", "verify/action")
	return out
}()

var (
	azureOnce  sync.Once
	azureNeeds opslist.Needs
	azureErr   error
)

// neededDataActions are the data actions the Azure operations of the functions' code need (infra/opslist
// scans keyferry's module, three directories up).
func neededDataActions(t *testing.T) opslist.Needs {
	t.Helper()
	azureOnce.Do(func() {
		res, err := opslist.Scan(context.Background(), filepath.Join("..", "..", ".."))
		if err != nil {
			azureErr = err
			return
		}
		azureNeeds, azureErr = opslist.Permissions(opslist.Azure, res.Ops)
	})
	if azureErr != nil {
		t.Fatal(azureErr)
	}
	return azureNeeds
}

// ---- reading role assignments ----

var guidPattern = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)

// topKeywords start a top-level declaration: the end of the value of the var before it.
var topKeywords = map[string]bool{"var": true, "param": true, "resource": true, "module": true, "output": true, "type": true,
	"func": true, "targetScope": true, "import": true, "metadata": true, "extension": true, "@": true}

// vars returns each `var NAME = value` of a file with its value's tokens.
func vars(f *file) map[string][]token {
	out := map[string][]token{}
	for i := 0; i+3 < len(f.toks); i++ {
		t := f.toks[i]
		if t.kind != tIdent || t.text != "var" || t.depth != 0 || !t.first || f.toks[i+2].text != "=" {
			continue
		}
		end := i + 3
		for end < len(f.toks) && !(f.toks[end].depth == 0 && f.toks[end].first && topKeywords[f.toks[end].text]) {
			end++
		}
		out[f.toks[i+1].text] = f.toks[i+3 : end]
	}
	return out
}

// objectProps returns the properties of an object literal value ({ … }) of f.
func objectProps(f *file, v []token) map[string][]token {
	if len(v) == 0 || v[0].kind != tPunct || v[0].text != "{" || v[0].match < 0 {
		return nil
	}
	open := cap(f.toks) - cap(v) // v is a slice of f.toks
	return properties(f.toks, open, f.toks[open].match)
}

// loopVars returns the loop variables of a resource declared with [for x in list: …] (or (x, i)) and the
// tokens of the list each ranges over.
func loopVars(f *file, r *resource) map[string][]token {
	out := map[string][]token{}
	start := r.open
	for start > 0 && !(f.toks[start].kind == tIdent && f.toks[start].text == "resource" && f.toks[start].first) {
		start--
	}
	h := f.toks[start:r.open]
	for i := range h {
		if h[i].text != "for" {
			continue
		}
		j := i + 1
		var names []string
		for ; j < len(h) && h[j].text != "in"; j++ {
			if h[j].kind == tIdent {
				names = append(names, h[j].text)
			}
		}
		k := j + 1
		for k < len(h) && !(h[k].text == ":" && h[k].depth == h[i].depth) {
			k++
		}
		if len(names) > 0 && j < len(h) {
			out[names[0]] = h[j+1 : k] // the index variable, if any, ranges over numbers
		}
	}
	return out
}

type resolver struct {
	f    *file
	vars map[string][]token
	loop map[string][]token
}

// expand returns the string literals and identifiers an expression can take, following vars (and a member
// of an object var) and loop variables.
func (r resolver) expand(v []token, seen map[string]bool, strs, idents *[]string) {
	for i, t := range v {
		switch t.kind {
		case tString:
			*strs = append(*strs, t.text)
		case tIdent:
			*idents = append(*idents, t.text)
			if seen[t.text] {
				continue
			}
			val, ok := r.vars[t.text]
			if !ok {
				val, ok = r.loop[t.text]
			}
			if !ok {
				continue
			}
			seen2 := map[string]bool{t.text: true}
			for k := range seen {
				seen2[k] = true
			}
			if i+2 < len(v) && v[i+1].text == "." && v[i+2].kind == tIdent {
				if props := objectProps(r.f, val); props != nil {
					if m, ok := props[v[i+2].text]; ok {
						r.expand(m, seen2, strs, idents)
						continue
					}
				}
			}
			r.expand(val, seen2, strs, idents)
		}
	}
}

// grant is one role assignment to a principal.
type grant struct {
	where     string // file:line symbol
	roles     []string
	functions bool // to the function's managed identity or the federated app
}

// grants reads every role assignment of the files: its possible role definition ids and whether its
// principal is one of the identities keyferry runs as.
func grants(t *testing.T, files []string) []grant {
	t.Helper()
	var out []grant
	for _, p := range files {
		f := parse(t, p)
		vs := vars(f)
		for _, r := range f.resources {
			if r.baseType() != roleAssignmentType {
				continue
			}
			props := objectProps(f, r.props["properties"])
			res := resolver{f: f, vars: vs, loop: loopVars(f, r)}
			var strs, idents []string
			res.expand(props["roleDefinitionId"], map[string]bool{}, &strs, &idents)
			g := grant{where: fmt.Sprintf("%s:%d %s", filepath.Base(p), r.line, r.sym)}
			for _, s := range strs {
				g.roles = append(g.roles, guidPattern.FindAllString(s, -1)...)
			}
			strs, idents = nil, nil
			res.expand(props["principalId"], map[string]bool{}, &strs, &idents)
			joined := text(props["principalId"])
			for _, id := range idents {
				if id == "functionPrincipalId" || id == "federatedPrincipalId" {
					g.functions = true
				}
			}
			if joined == "app.identity.principalId" {
				g.functions = true
			}
			out = append(out, g)
		}
	}
	return out
}

func parse(t *testing.T, path string) *file {
	t.Helper()
	src := readFile(t, path)
	f, err := parseFile(path, src)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// grantedDataActions are the data actions the role assignments give the functions' identities, with the
// assignments that give them. Unknown roles are reported; platform roles are left out.
func grantedDataActions(t *testing.T, gs []grant) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, g := range gs {
		if !g.functions {
			t.Logf("%s: not an identity keyferry runs as (roles %v): not compared", g.where, g.roles)
			continue
		}
		if len(g.roles) == 0 {
			t.Errorf("%s: no role definition id could be read from roleDefinitionId", g.where)
		}
		for _, id := range g.roles {
			if why, ok := platformRoles[id]; ok {
				t.Logf("%s: %s: platform, not compared", g.where, why)
				continue
			}
			role, ok := opslist.AzureRoles[id]
			if !ok {
				t.Errorf("%s: role %s is not in opslist.AzureRoles: add it with its data actions", g.where, id)
				continue
			}
			for _, a := range role.Permissions {
				out[a] = append(out[a], g.where+" ("+role.Name+")")
			}
		}
	}
	return out
}

// templateFiles are main.bicep and its modules.
func templateFiles() []string {
	return []string{filepath.Join("..", "main.bicep"), filepath.Join("..", "modules", "vault.bicep"), filepath.Join("..", "modules", "alerttopic.bicep")}
}

// TestGrantsMatchTheCode is the least-privilege check against the code: the role assignments main.bicep and
// its modules can make to the Function App's managed identity and to the federated Entra app (every branch:
// write and read vaults, certificate vaults, signing keys, alert topics) give exactly the data actions the
// Azure operations of keyferry's code need, plus the built-in roles' surplus listed in azureExtras.
func TestGrantsMatchTheCode(t *testing.T) {
	needs := neededDataActions(t)
	granted := grantedDataActions(t, grants(t, templateFiles()))
	d := opslist.Compare(needs, granted, azureExtras)
	if !d.OK() {
		t.Errorf("grants and code disagree:\n%s", d)
	}
	names := make([]string, 0, len(needs))
	for a := range needs {
		names = append(names, a)
	}
	sort.Strings(names)
	t.Logf("%d data actions needed: %s", len(needs), strings.Join(names, " "))
	t.Logf("%d granted (%d deliberate extras of built-in roles)", len(granted), len(azureExtras))
}

// TestGrantsCheckCatchesDrift shows the check failing on testdata/ops-drift-vault.bicep, a vault module that
// lost the Certificates Officer assignment and gives EventGrid Data Contributor (send and receive) where
// nothing receives events.
func TestGrantsCheckCatchesDrift(t *testing.T) {
	needs := neededDataActions(t)
	files := []string{filepath.Join("..", "main.bicep"), filepath.Join("testdata", "ops-drift-vault.bicep"), filepath.Join("..", "modules", "alerttopic.bicep")}
	d := opslist.Compare(needs, grantedDataActions(t, grants(t, files)), azureExtras)
	t.Logf("reported:\n%s", d)
	var missing []string
	for _, m := range d.Missing {
		missing = append(missing, strings.SplitN(m, ":", 2)[0])
	}
	if want := []string{"Microsoft.KeyVault/vaults/certificates/import/action", "Microsoft.KeyVault/vaults/certificates/read"}; strings.Join(missing, " ") != strings.Join(want, " ") {
		t.Errorf("missing %q, want %q", missing, want)
	}
	if len(d.Unused) != 1 || !strings.HasPrefix(d.Unused[0], "Microsoft.EventGrid/events/receive/action: granted by ops-drift-vault.bicep") {
		t.Errorf("unused %q, want Microsoft.EventGrid/events/receive/action from the fixture", d.Unused)
	}
	if len(d.Stale) == 0 || !strings.HasPrefix(d.Stale[0], "Microsoft.KeyVault/vaults/certificatecas/delete") {
		t.Errorf("stale extras %q, want the Certificates Officer's (nothing grants them now)", d.Stale)
	}
}

// TestRoleResolution pins how role definition ids and principals are read: through a var's member
// (roles.x), a var indexed by a parameter (every value), and a loop variable over a var of principals.
func TestRoleResolution(t *testing.T) {
	by := map[string]grant{}
	for _, g := range grants(t, templateFiles()) {
		by[g.where[strings.LastIndex(g.where, " ")+1:]] = g
	}
	cases := []struct {
		sym       string
		roles     []string
		functions bool
	}{
		{"hostStorageAccess", []string{"b7e6dc6d-f1e8-4753-8033-0f276bb0955b"}, true},
		{"functionAccess", []string{"b86a8fe4-44ce-4948-aee5-eccb2c155cd7", "4633458b-17de-408a-b874-0445c86b69e6"}, true},
		{"certificateAccess", []string{"a4417e6f-fecd-4de8-b567-7b0420556985"}, true},
		{"signingKeyAccess", []string{"12338af0-0e69-4776-bea7-57ae8d297424"}, true},
		{"senderAccess", []string{"d5a91429-5739-47e2-a06b-3470a27159e7"}, true},
		{"deadLetterAccess", []string{"ba92f5b4-2d11-453d-a403-e96b0029c9fe"}, false}, // the system topic's own identity
	}
	for _, c := range cases {
		g, ok := by[c.sym]
		if !ok {
			t.Errorf("%s: no such role assignment", c.sym)
			continue
		}
		if strings.Join(g.roles, " ") != strings.Join(c.roles, " ") || g.functions != c.functions {
			t.Errorf("%s: roles %v, keyferry's identities %v; want %v, %v", c.sym, g.roles, g.functions, c.roles, c.functions)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
