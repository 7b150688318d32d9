package bicepcheck

import (
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

var bicepFiles = flag.String("bicep", "", "comma-separated .bicep files to check instead of every file under infra/bicep")

// ---- tokenizer ----

type tokKind int

const (
	tIdent tokKind = iota
	tString
	tNumber
	tPunct
)

type token struct {
	kind  tokKind
	text  string
	line  int  // 1-based
	depth int  // nesting of ( [ { around the token; an opening or closing bracket has its outer depth
	first bool // first token on its line
	match int  // for brackets: index of the matching bracket, else -1
}

var multiPunct = []string{"::", "??", "?.", ".?", "==", "!=", ">=", "<=", "&&", "||", "=>", "=~", "!~"}

// tokenize splits Bicep source into tokens. Strings (with escapes, ${} interpolation holding nested strings and
// braces, and triple-quoted multi-line strings) are one token each; comments are dropped.
func tokenize(src string) ([]token, error) {
	var toks []token
	var stack []int
	line, i := 1, 0
	lineStart := true
	add := func(k tokKind, text string, l int) {
		t := token{kind: k, text: text, line: l, depth: len(stack), first: lineStart, match: -1}
		lineStart = false
		switch text {
		case "(", "[", "{":
			if k == tPunct {
				stack = append(stack, len(toks))
			}
		case ")", "]", "}":
			if k == tPunct && len(stack) > 0 {
				open := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				t.depth = len(stack)
				t.match = open
				toks[open].match = len(toks)
			}
		}
		toks = append(toks, t)
	}
	for i < len(src) {
		c := src[i]
		switch {
		case c == '\n':
			line++
			lineStart = true
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case strings.HasPrefix(src[i:], "//"):
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("line %d: unterminated comment", line)
			}
			line += strings.Count(src[i:i+2+end+2], "\n")
			i += 2 + end + 2
		case c == '\'':
			end, err := scanString(src, i)
			if err != nil {
				return nil, fmt.Errorf("line %d: %v", line, err)
			}
			startLine := line
			line += strings.Count(src[i:end], "\n")
			add(tString, src[i:end], startLine)
			i = end
		case isIdentStart(c):
			j := i + 1
			for j < len(src) && isIdentPart(src[j]) {
				j++
			}
			add(tIdent, src[i:j], line)
			i = j
		case c >= '0' && c <= '9':
			j := i + 1
			for j < len(src) && src[j] >= '0' && src[j] <= '9' {
				j++
			}
			add(tNumber, src[i:j], line)
			i = j
		default:
			p := string(c)
			for _, m := range multiPunct {
				if strings.HasPrefix(src[i:], m) {
					p = m
					break
				}
			}
			add(tPunct, p, line)
			i += len(p)
		}
	}
	if len(stack) > 0 {
		return nil, fmt.Errorf("line %d: %q is never closed", toks[stack[len(stack)-1]].line, toks[stack[len(stack)-1]].text)
	}
	return toks, nil
}

func isIdentStart(c byte) bool { return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }
func isIdentPart(c byte) bool  { return isIdentStart(c) || (c >= '0' && c <= '9') }

// scanString returns the index just past the string starting at src[i] (a quote).
func scanString(src string, i int) (int, error) {
	if strings.HasPrefix(src[i:], "'''") {
		end := strings.Index(src[i+3:], "'''")
		if end < 0 {
			return 0, fmt.Errorf("unterminated multi-line string")
		}
		return i + 3 + end + 3, nil
	}
	j := i + 1
	for j < len(src) {
		switch {
		case src[j] == '\\':
			j += 2
		case src[j] == '\'':
			return j + 1, nil
		case src[j] == '\n':
			return 0, fmt.Errorf("newline in string")
		case strings.HasPrefix(src[j:], "${"):
			j += 2
			depth := 0
			for {
				if j >= len(src) {
					return 0, fmt.Errorf("unterminated interpolation")
				}
				if src[j] == '\'' {
					end, err := scanString(src, j)
					if err != nil {
						return 0, err
					}
					j = end
					continue
				}
				if src[j] == '{' {
					depth++
				} else if src[j] == '}' {
					if depth == 0 {
						j++
						break
					}
					depth--
				}
				j++
			}
		default:
			j++
		}
	}
	return 0, fmt.Errorf("unterminated string")
}

// ---- resources ----

type resource struct {
	sym      string
	typ      string // full type with API version, unquoted
	existing bool
	line     int
	path     string // sym, or parent::…::sym for nested resources
	open     int    // index of the body's "{"
	close    int
	props    map[string][]token // top-level properties of the body
}

func (r *resource) baseType() string {
	t, _, _ := strings.Cut(r.typ, "@")
	return t
}

type file struct {
	name      string
	toks      []token
	resources []*resource
	byPath    map[string]*resource
	others    map[string]string // params, vars, modules, outputs: name -> keyword
}

func parseFile(name, src string) (*file, error) {
	toks, err := tokenize(src)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	f := &file{name: name, toks: toks, byPath: map[string]*resource{}, others: map[string]string{}}
	for i := 0; i+2 < len(toks); i++ {
		t := toks[i]
		if t.kind != tIdent || !t.first {
			continue
		}
		switch t.text {
		case "param", "var", "module", "output", "type", "func":
			if toks[i+1].kind == tIdent {
				f.others[toks[i+1].text] = t.text
			}
			continue
		case "resource":
		default:
			continue
		}
		if toks[i+1].kind != tIdent || toks[i+2].kind != tString {
			continue
		}
		r := &resource{sym: toks[i+1].text, typ: strings.Trim(toks[i+2].text, "'"), line: t.line, open: -1}
		j := i + 3
		if j < len(toks) && toks[j].text == "existing" {
			r.existing = true
			j++
		}
		if j >= len(toks) || toks[j].text != "=" {
			continue
		}
		// The body is the first "{" after "=" outside parentheses: "= {", "= if (c) {", "= [for x in y: {".
		parens := 0
		for k := j + 1; k < len(toks); k++ {
			switch toks[k].text {
			case "(":
				parens++
			case ")":
				parens--
			}
			if toks[k].text == "{" && toks[k].kind == tPunct && parens == 0 {
				r.open, r.close = k, toks[k].match
				break
			}
		}
		if r.open < 0 || r.close < 0 {
			return nil, fmt.Errorf("%s:%d: resource %s has no body", name, r.line, r.sym)
		}
		r.props = properties(toks, r.open, r.close)
		f.resources = append(f.resources, r)
	}
	// Nested resources are reached as parent::child.
	for _, r := range f.resources {
		var parent *resource
		for _, p := range f.resources {
			if p != r && p.open < r.open && r.close < p.close && (parent == nil || p.open > parent.open) {
				parent = p
			}
		}
		r.path = r.sym
		for p := parent; p != nil; {
			r.path = p.sym + "::" + r.path
			var up *resource
			for _, q := range f.resources {
				if q != p && q.open < p.open && p.close < q.close && (up == nil || q.open > up.open) {
					up = q
				}
			}
			p = up
		}
		f.byPath[r.path] = r
	}
	return f, nil
}

// properties returns the top-level properties of the object between toks[open] "{" and toks[close] "}".
func properties(toks []token, open, close int) map[string][]token {
	inner := toks[open].depth + 1
	isKey := func(k int) bool {
		t := toks[k]
		if t.depth != inner || (t.kind != tIdent && t.kind != tString) || k+1 >= close || toks[k+1].text != ":" {
			return false
		}
		return t.first || toks[k-1].text == "{" || toks[k-1].text == ","
	}
	props := map[string][]token{}
	for k := open + 1; k < close; k++ {
		if !isKey(k) {
			continue
		}
		key := strings.Trim(toks[k].text, "'")
		end := k + 2
		for end < close && !(toks[end].depth == inner && (toks[end].text == "," || (toks[end].first && isKey(end)))) {
			end++
		}
		props[key] = toks[k+2 : end]
		k = end - 1
	}
	return props
}

// ---- the rule ----

var (
	containerFuncs = map[string]string{
		"resourceGroup":   "the whole resource group",
		"subscription":    "the whole subscription",
		"managementGroup": "a whole management group",
		"tenant":          "the whole tenant",
	}
	containerTypes = map[string]string{
		"Microsoft.Resources/resourceGroups":    "a whole resource group",
		"Microsoft.Resources/subscriptions":     "a whole subscription",
		"Microsoft.Subscription/aliases":        "a whole subscription",
		"Microsoft.Management/managementGroups": "a whole management group",
	}
	refPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\[[^\]]+\])?(::[A-Za-z_][A-Za-z0-9_]*(\[[^\]]+\])?)*$`)
	indexPart  = regexp.MustCompile(`\[[^\]]+\]`)
)

const roleAssignmentType = "Microsoft.Authorization/roleAssignments"

type assignment struct {
	file      string
	line      int
	sym       string
	scope     string    // the scope expression as written
	target    *resource // the resource it is scoped to, when the rule holds
	violation string
}

func (a assignment) String() string {
	return fmt.Sprintf("%s:%d: role assignment %s: %s", a.file, a.line, a.sym, a.violation)
}

func text(ts []token) string {
	var b strings.Builder
	for _, t := range ts {
		b.WriteString(t.text)
	}
	return b.String()
}

// assignments checks every role assignment of f.
func assignments(f *file) []assignment {
	var out []assignment
	for _, r := range f.resources {
		if r.baseType() != roleAssignmentType {
			continue
		}
		a := assignment{file: f.name, line: r.line, sym: r.sym}
		v, ok := r.props["scope"]
		a.scope = text(v)
		switch {
		case !ok:
			a.violation = "no scope: it would apply to the deployment's whole resource group; set scope to the resource it is for"
		case len(v) == 0:
			a.violation = "empty scope"
		case v[0].kind == tIdent && len(v) > 1 && v[1].text == "(":
			if what, bad := containerFuncs[v[0].text]; bad {
				a.violation = fmt.Sprintf("scope %s covers %s; scope it to the specific resource (an existing vault reference)", a.scope, what)
			} else {
				a.violation = fmt.Sprintf("scope %s is a function call, not a resource declared in this file", a.scope)
			}
		case v[0].kind == tString:
			a.violation = fmt.Sprintf("scope %s is a string, not a resource declared in this file", a.scope)
		case !refPattern.MatchString(a.scope):
			a.violation = fmt.Sprintf("scope %s is an expression; it must be a resource symbol (optionally indexed or a ::child)", a.scope)
		default:
			path := indexPart.ReplaceAllString(a.scope, "")
			target := f.byPath[path]
			switch {
			case target == nil && f.others[path] != "":
				a.violation = fmt.Sprintf("scope %s is a %s, not a resource declared in this file", a.scope, f.others[path])
			case target == nil:
				a.violation = fmt.Sprintf("scope %s names no resource declared in this file", a.scope)
			case containerTypes[target.baseType()] != "":
				a.violation = fmt.Sprintf("scope %s is %s (%s); scope it to the specific resource", a.scope, containerTypes[target.baseType()], target.baseType())
			case target.baseType() == roleAssignmentType:
				a.violation = fmt.Sprintf("scope %s is another role assignment", a.scope)
			default:
				a.target = target
			}
		}
		out = append(out, a)
	}
	return out
}

func checkFile(t *testing.T, path string) []assignment {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parseFile(path, string(src))
	if err != nil {
		t.Fatal(err)
	}
	return assignments(f)
}

// repoFiles lists the .bicep files under infra/bicep (the parent directory), without test fixtures.
func repoFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir("..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || d.Name() == "node_modules" || (strings.HasPrefix(d.Name(), ".") && p != "..")) {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".bicep") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files
}

// ---- tests ----

// TestRoleAssignmentScopes is the check itself: every role assignment under infra/bicep (or in the files given
// with -bicep) is scoped to a specific resource.
func TestRoleAssignmentScopes(t *testing.T) {
	files := repoFiles(t)
	if *bicepFiles != "" {
		files = strings.Split(*bicepFiles, ",")
	}
	if len(files) == 0 {
		t.Fatal("no .bicep files found")
	}
	total := 0
	for _, p := range files {
		for _, a := range checkFile(t, p) {
			total++
			if a.violation != "" {
				t.Error(a)
			} else {
				t.Logf("%s:%d: %s scoped to %s (%s)", a.file, a.line, a.sym, a.scope, a.target.baseType())
			}
		}
	}
	if *bicepFiles == "" && total == 0 {
		t.Fatal("no role assignment found under infra/bicep: the parser is broken or the templates lost them")
	}
}

// TestVaultRolesAreScopedToTheVault: the Key Vault roles (modules/vault.bicep) are on an existing vault
// reference, not only "some resource" — or, for the CA's signing keys, on an existing key of that vault.
func TestVaultRolesAreScopedToTheVault(t *testing.T) {
	as := checkFile(t, filepath.Join("..", "modules", "vault.bicep"))
	if len(as) < 4 {
		t.Fatalf("modules/vault.bicep: %d role assignments, want the function's and the federated app's, certificates and signing keys", len(as))
	}
	onKey := 0
	for _, a := range as {
		if a.violation != "" {
			t.Error(a)
			continue
		}
		switch {
		case a.target.baseType() == "Microsoft.KeyVault/vaults" && a.target.existing:
		case a.target.baseType() == "Microsoft.KeyVault/vaults/keys" && a.target.existing:
			onKey++
		default:
			t.Errorf("%s:%d: %s is scoped to %s (%s, existing=%v), want an existing Microsoft.KeyVault/vaults reference (or one of its keys)",
				a.file, a.line, a.sym, a.scope, a.target.baseType(), a.target.existing)
		}
	}
	if onKey != 1 {
		t.Errorf("%d assignments on a key, want the signing keys' one", onKey)
	}
}

// TestBadScopeFixture shows the check failing: every role assignment of testdata/bad-scope.bicep but the last
// breaks the rule, each in its own way.
func TestBadScopeFixture(t *testing.T) {
	want := map[string]string{
		"rgWide":        "scope resourceGroup() covers the whole resource group",
		"subWide":       "scope subscription() covers the whole subscription",
		"rgByName":      "scope resourceGroup('rg-other') covers the whole resource group",
		"noScope":       "no scope",
		"rgSymbol":      "is a whole resource group (Microsoft.Resources/resourceGroups)",
		"stringScope":   "is a string",
		"paramScope":    "is a param, not a resource",
		"idExpression":  "is an expression",
		"unknownSymbol": "names no resource declared in this file",
		"loopRgWide":    "scope resourceGroup() covers the whole resource group",
	}
	got := map[string]assignment{}
	for _, a := range checkFile(t, filepath.Join("testdata", "bad-scope.bicep")) {
		got[a.sym] = a
	}
	for sym, w := range want {
		a, ok := got[sym]
		switch {
		case !ok:
			t.Errorf("%s: not found in the fixture", sym)
		case !strings.Contains(a.violation, w):
			t.Errorf("%s: violation %q, want it to contain %q", sym, a.violation, w)
		default:
			t.Logf("rejected as expected: %s", a)
		}
	}
	good, ok := got["vaultScoped"]
	if !ok || good.violation != "" || good.target == nil || good.target.baseType() != "Microsoft.KeyVault/vaults" {
		t.Errorf("vaultScoped: %+v, want it accepted, scoped to the vault", good)
	}
	if len(got) != len(want)+1 {
		t.Errorf("found %d role assignments in the fixture, want %d", len(got), len(want)+1)
	}
}

func TestTokenizer(t *testing.T) {
	src := `// scope: resourceGroup() in a comment
/* resource x 'Microsoft.Authorization/roleAssignments@2022-04-01' = {} */
var s = 'a}b{c\'d'
var i = 'x${foo({ a: 'b}' })}y'
var m = '''
multi } line { with 'quotes'
'''
resource kv 'Microsoft.KeyVault/vaults@2024-11-01' existing = {
  name: 'v'
}
resource ra 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (p, i) in ps: if (p != '') {
  name: guid(kv.id, p)
  properties: {
    scope: resourceGroup() // nested, not the resource's scope
    principalId: i > 0 ? p : 'x'
  }
  scope: kv
}]
`
	toks, err := tokenize(src)
	if err != nil {
		t.Fatal(err)
	}
	var strs []string
	for _, tk := range toks {
		if tk.kind == tString {
			strs = append(strs, tk.text)
		}
	}
	for _, w := range []string{`'a}b{c\'d'`, `'x${foo({ a: 'b}' })}y'`, "'''\nmulti } line { with 'quotes'\n'''"} {
		found := false
		for _, s := range strs {
			found = found || s == w
		}
		if !found {
			t.Errorf("string %q not lexed as one token; strings: %q", w, strs)
		}
	}
	f, err := parseFile("inline.bicep", src)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.resources) != 2 {
		t.Fatalf("%d resources, want 2 (the commented one is not one)", len(f.resources))
	}
	ra := f.resources[1]
	if ra.line != 11 || !strings.HasPrefix(ra.typ, roleAssignmentType) {
		t.Errorf("role assignment at line %d type %q", ra.line, ra.typ)
	}
	if got := text(ra.props["scope"]); got != "kv" {
		t.Errorf("top-level scope = %q, want kv (the nested properties.scope is not the resource's)", got)
	}
	if got := text(ra.props["name"]); got != "guid(kv.id,p)" {
		t.Errorf("name = %q", got)
	}
	as := assignments(f)
	if len(as) != 1 || as[0].violation != "" || as[0].target != f.resources[0] {
		t.Errorf("assignments = %+v, want one, scoped to kv", as)
	}

	// Nested resources are reached as parent::child; single-line objects separate properties with commas.
	nested := `resource sa 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'sa'
  resource blobs 'blobServices' = {
    name: 'default'
    resource c 'containers' = { name: 'dl' }
  }
}
resource ra 'Microsoft.Authorization/roleAssignments@2022-04-01' = { name: 'x', scope: sa::blobs::c, properties: {} }
`
	f, err = parseFile("nested.bicep", nested)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.byPath["sa::blobs::c"]; !ok {
		t.Errorf("paths: %v, want sa::blobs::c", f.byPath)
	}
	as = assignments(f)
	if len(as) != 1 || as[0].violation != "" || as[0].target.baseType() != "containers" {
		t.Errorf("assignments = %+v, want one scoped to the container", as)
	}

	for _, bad := range []string{"var s = 'unterminated\n", "var o = {\n", "/* open"} {
		if _, err := tokenize(bad); err == nil {
			t.Errorf("tokenize(%q): no error", bad)
		}
	}
}
