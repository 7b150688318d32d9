package tfcheck

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

var tfFiles = flag.String("tf", "", "comma-separated .tf files to check instead of the configuration in infra/gcp")

// ---- tokenizer ----

type tokKind int

const (
	tIdent tokKind = iota
	tString
	tHeredoc
	tNumber
	tPunct
)

type token struct {
	kind  tokKind
	text  string // strings and heredocs: the raw source, quotes or markers included
	line  int
	depth int  // nesting of ( [ { around the token; brackets carry their outer depth
	first bool // first token on its line
	match int  // brackets: index of the matching one
}

var multiPunct = []string{"...", "==", "!=", "<=", ">=", "&&", "||", "=>"}

var heredocStart = regexp.MustCompile(`^<<(-?)([A-Za-z_][A-Za-z0-9_-]*)[ \t]*\r?\n`)

// tokenize splits HCL into tokens. Quoted strings (escapes, ${…} and %{…} templates holding nested strings
// and braces, $${ and %%{ escapes) and heredocs (<<EOT, <<-EOT) are one token each; comments are dropped.
func tokenize(src string) ([]token, error) {
	var toks []token
	var stack []int
	line, i := 1, 0
	lineStart := true
	add := func(k tokKind, text string, l int) {
		t := token{kind: k, text: text, line: l, depth: len(stack), first: lineStart, match: -1}
		lineStart = false
		if k == tPunct {
			switch text {
			case "(", "[", "{":
				stack = append(stack, len(toks))
			case ")", "]", "}":
				if len(stack) == 0 {
					break
				}
				open := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				t.depth, t.match = len(stack), open
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
		case c == '#' || strings.HasPrefix(src[i:], "//"):
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("line %d: unterminated comment", line)
			}
			line += strings.Count(src[i:i+end+4], "\n")
			i += end + 4
		case c == '"':
			end, err := scanString(src, i)
			if err != nil {
				return nil, fmt.Errorf("line %d: %v", line, err)
			}
			add(tString, src[i:end], line)
			i = end
		case heredocStart.MatchString(src[i:]):
			m := heredocStart.FindStringSubmatch(src[i:])
			body := i + len(m[0])
			end := -1
			for j := body; j <= len(src); {
				nl := strings.IndexByte(src[j:], '\n')
				lineEnd := len(src)
				if nl >= 0 {
					lineEnd = j + nl
				}
				if strings.TrimSpace(src[j:lineEnd]) == m[2] {
					end = lineEnd
					break
				}
				if nl < 0 {
					break
				}
				j = lineEnd + 1
			}
			if end < 0 {
				return nil, fmt.Errorf("line %d: heredoc %s is never closed", line, m[2])
			}
			add(tHeredoc, src[i:end], line)
			line += strings.Count(src[i:end], "\n")
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
			for j < len(src) && (src[j] >= '0' && src[j] <= '9' || src[j] == '.') {
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
func isIdentPart(c byte) bool  { return isIdentStart(c) || (c >= '0' && c <= '9') || c == '-' }

// scanString returns the index just past the quoted string starting at src[i].
func scanString(src string, i int) (int, error) {
	j := i + 1
	for j < len(src) {
		switch {
		case src[j] == '\\':
			j += 2
		case src[j] == '"':
			return j + 1, nil
		case src[j] == '\n':
			return 0, fmt.Errorf("newline in string")
		case strings.HasPrefix(src[j:], "$${") || strings.HasPrefix(src[j:], "%%{"):
			j += 3
		case strings.HasPrefix(src[j:], "${") || strings.HasPrefix(src[j:], "%{"):
			end, err := scanTemplate(src, j+2)
			if err != nil {
				return 0, err
			}
			j = end
		default:
			j++
		}
	}
	return 0, fmt.Errorf("unterminated string")
}

// scanTemplate returns the index just past the "}" closing a template sequence whose body starts at src[j].
func scanTemplate(src string, j int) (int, error) {
	depth := 0
	for j < len(src) {
		switch src[j] {
		case '"':
			end, err := scanString(src, j)
			if err != nil {
				return 0, err
			}
			j = end
			continue
		case '{':
			depth++
		case '}':
			if depth == 0 {
				return j + 1, nil
			}
			depth--
		}
		j++
	}
	return 0, fmt.Errorf("unterminated template sequence")
}

// ---- blocks ----

type block struct {
	typ    string   // resource, data, variable, …
	labels []string // unquoted
	line   int
	attrs  map[string][]token            // top-level arguments of the body
	nested map[string]map[string][]token // arguments of the body's nested blocks, by block type (the first of each)
	file   string
}

// blocks returns the top-level blocks of a file with their top-level arguments.
func blocks(name string, toks []token) ([]*block, error) {
	var out []*block
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.depth != 0 || t.kind != tIdent || !t.first {
			continue
		}
		b := &block{typ: t.text, line: t.line, file: name}
		j := i + 1
		for j < len(toks) && toks[j].kind == tString {
			b.labels = append(b.labels, strings.Trim(toks[j].text, `"`))
			j++
		}
		if j >= len(toks) || toks[j].text != "{" {
			continue // a top-level attribute (tfvars) or something else
		}
		if toks[j].match < 0 {
			return nil, fmt.Errorf("%s:%d: %s block is never closed", name, t.line, t.text)
		}
		b.attrs = arguments(toks, j, toks[j].match)
		b.nested = nestedBlocks(toks, j, toks[j].match)
		out = append(out, b)
		i = toks[j].match
	}
	return out, nil
}

// arguments returns the `name = value` arguments directly in the body between toks[open] and toks[close].
func arguments(toks []token, open, close int) map[string][]token {
	inner := toks[open].depth + 1
	// starts reports whether toks[k] begins an argument or a nested block of this body.
	starts := func(k int) bool {
		t := toks[k]
		if t.depth != inner || !t.first || t.kind != tIdent || k+1 >= close {
			return false
		}
		n := toks[k+1]
		return n.text == "=" || n.text == "{" || n.kind == tString
	}
	args := map[string][]token{}
	for k := open + 1; k < close; k++ {
		if !starts(k) || toks[k+1].text != "=" {
			continue
		}
		end := k + 2
		for end < close && !starts(end) {
			end++
		}
		args[toks[k].text] = toks[k+2 : end]
		k = end - 1
	}
	return args
}

// nestedBlocks returns the arguments of the blocks directly in the body between toks[open] and toks[close]
// (`condition { … }`), by block type; a type given twice keeps the first.
func nestedBlocks(toks []token, open, close int) map[string]map[string][]token {
	inner := toks[open].depth + 1
	out := map[string]map[string][]token{}
	for k := open + 1; k+1 < close; k++ {
		t := toks[k]
		if t.depth != inner || !t.first || t.kind != tIdent || toks[k+1].text != "{" || toks[k+1].match < 0 {
			continue
		}
		if _, seen := out[t.text]; !seen {
			out[t.text] = arguments(toks, k+1, toks[k+1].match)
		}
		k = toks[k+1].match
	}
	return out
}

// ---- the rule ----

var (
	containerIAM = regexp.MustCompile(`^google_(project|folder|organization)_iam_(member|binding|policy)$`)
	resourceIAM  = regexp.MustCompile(`^google_([a-z0-9_]+)_iam_(member|binding|policy)$`)
	// The argument naming the resource of each resource-level IAM type.
	resourceArg = map[string]string{
		"secret_manager_secret":          "secret_id",
		"secret_manager_regional_secret": "secret_id",
		"pubsub_topic":                   "topic",
		"pubsub_subscription":            "subscription",
		"service_account":                "service_account_id",
		"cloud_run_v2_service":           "name",
		"cloud_run_service":              "service",
		"cloudfunctions2_function":       "cloud_function",
		"cloudfunctions_function":        "cloud_function",
		"storage_bucket":                 "bucket",
		"kms_crypto_key":                 "crypto_key_id",
		"artifact_registry_repository":   "repository",
	}
	// Permissions a project-level grant may carry: listing, never a value or a write.
	listPermissions = map[string]bool{
		"secretmanager.secrets.list":   true,
		"secretmanager.locations.get":  true,
		"secretmanager.locations.list": true,
	}
	customRoleRef = regexp.MustCompile(`google_(project|organization)_iam_custom_role\.([A-Za-z0-9_-]+)(\[[^\]]*\])?\.(name|id)`)
	// Certificate Manager has no IAM on individual certificates: creating and replacing keyferry's
	// certificates is granted on the project. None of these reads a secret (a certificate's private key
	// cannot be read back) or deletes anything.
	certManagerPermissions = map[string]bool{
		"certificatemanager.certs.create":   true,
		"certificatemanager.certs.get":      true,
		"certificatemanager.certs.update":   true,
		"certificatemanager.operations.get": true,
	}
	// pendingSuffix ends the names of rotation's pending siblings (core/store.PendingSuffix). A project-level
	// grant of secret permissions is accepted only with a condition limiting it to those names.
	pendingSuffix = "--keyferry-pending"
)

type grant struct {
	file, typ, name string
	line            int
	violation       string
}

func (g grant) String() string {
	return fmt.Sprintf("%s:%d: %s.%s: %s", g.file, g.line, g.typ, g.name, g.violation)
}

func text(ts []token) string {
	var b strings.Builder
	for i, t := range ts {
		if i > 0 && (t.kind == tIdent || t.kind == tString) && (ts[i-1].kind == tIdent || ts[i-1].kind == tString) {
			b.WriteByte(' ')
		}
		b.WriteString(t.text)
	}
	return b.String()
}

// roleCandidates returns the literal roles and the custom roles (by resource name) a role expression can
// take (both arms of a conditional).
func roleCandidates(v []token) (literals, custom []string) {
	for _, t := range v {
		if t.kind == tString && !strings.Contains(t.text, "${") {
			literals = append(literals, strings.Trim(t.text, `"`))
		}
	}
	for _, m := range customRoleRef.FindAllStringSubmatch(text(v), -1) {
		custom = append(custom, m[2])
	}
	return literals, custom
}

func stringList(v []token) []string {
	var out []string
	for _, t := range v {
		if t.kind == tString {
			out = append(out, strings.Trim(t.text, `"`))
		}
	}
	return out
}

// check applies the rule to every IAM grant of the given blocks (one Terraform configuration).
func check(bs []*block) []grant {
	customPerms := map[string][]string{}
	for _, b := range bs {
		if b.typ == "resource" && len(b.labels) == 2 && strings.HasSuffix(b.labels[0], "_iam_custom_role") {
			customPerms[b.labels[1]] = stringList(b.attrs["permissions"])
		}
	}
	var out []grant
	for _, b := range bs {
		if b.typ != "resource" || len(b.labels) != 2 {
			continue
		}
		typ := b.labels[0]
		g := grant{file: b.file, typ: typ, name: b.labels[1], line: b.line}
		role, hasRole := b.attrs["role"]
		literals, custom := roleCandidates(role)
		switch {
		case containerIAM.MatchString(typ):
			level := containerIAM.FindStringSubmatch(typ)[1]
			g.violation = containerViolation(level, typ, hasRole, role, literals, custom, customPerms, pendingOnly(b))
		case resourceIAM.MatchString(typ):
			m := resourceIAM.FindStringSubmatch(typ)
			g.violation = resourceViolation(m[1], m[2], b, literals)
		default:
			continue
		}
		out = append(out, g)
	}
	return out
}

// pendingOnly reports whether a grant's condition limits it to rotation's pending siblings: every
// alternative of its expression names the suffix, or admits only the project resource (where secret
// creation is checked).
func pendingOnly(b *block) bool {
	c, ok := b.nested["condition"]
	if !ok {
		return false
	}
	expr := strings.Trim(text(c["expression"]), `"`)
	if expr == "" {
		return false
	}
	for _, alt := range strings.Split(expr, "||") {
		alt = strings.TrimSpace(alt)
		if !strings.Contains(alt, pendingSuffix) && alt != `resource.type == \"cloudresourcemanager.googleapis.com/Project\"` {
			return false
		}
	}
	return true
}

func containerViolation(level, typ string, hasRole bool, role []token, literals, custom []string, customPerms map[string][]string, pending bool) string {
	if strings.HasSuffix(typ, "_iam_policy") {
		return fmt.Sprintf("an authoritative %s-wide policy", level)
	}
	if !hasRole || len(literals)+len(custom) == 0 {
		return fmt.Sprintf("role %q is not a literal or a custom role of this configuration: cannot show it grants no secret access %s-wide", text(role), level)
	}
	var problems []string
	for _, r := range literals {
		if strings.HasPrefix(r, "roles/secretmanager.") {
			problems = append(problems, fmt.Sprintf("grants %s %s-wide: grant it on each secret (google_secret_manager_secret_iam_member)", r, level))
		} else {
			problems = append(problems, fmt.Sprintf("grants %s %s-wide: grant it on the specific resource", r, level))
		}
	}
	for _, c := range custom {
		perms, ok := customPerms[c]
		if !ok {
			problems = append(problems, fmt.Sprintf("custom role %s is not defined in this configuration", c))
			continue
		}
		var bad []string
		for _, p := range perms {
			switch {
			case listPermissions[p], certManagerPermissions[p]:
			case pending && strings.HasPrefix(p, "secretmanager."):
			default:
				bad = append(bad, p)
			}
		}
		if len(bad) > 0 {
			problems = append(problems, fmt.Sprintf("custom role %s carries %s %s-wide; only listing (%s), Certificate Manager certificates, "+
				"or secret permissions under a condition naming rotation's pending siblings (%s) may be granted there",
				c, strings.Join(bad, ", "), level, "secretmanager.secrets.list", pendingSuffix))
		}
	}
	return strings.Join(problems, "; ")
}

func resourceViolation(kind, form string, b *block, literals []string) string {
	arg, known := resourceArg[kind]
	switch {
	case !known:
		return "no rule for this IAM resource type: add the argument naming its resource to tfcheck's resourceArg"
	case form == "policy":
		return "an authoritative IAM policy replaces every other binding on the resource: use _iam_member"
	}
	var problems []string
	v, ok := b.attrs[arg]
	switch {
	case !ok:
		problems = append(problems, fmt.Sprintf("%s is not set: the grant must name its %s", arg, strings.ReplaceAll(kind, "_", " ")))
	case text(v) == `""` || len(v) == 0:
		problems = append(problems, fmt.Sprintf("%s is empty", arg))
	case strings.Contains(text(v), "*"):
		problems = append(problems, fmt.Sprintf("%s = %s is a wildcard, not a specific resource", arg, text(v)))
	}
	if kind != "secret_manager_secret" && kind != "secret_manager_regional_secret" {
		for _, r := range literals {
			if strings.HasPrefix(r, "roles/secretmanager.") {
				problems = append(problems, fmt.Sprintf("grants %s on a %s: secret roles belong on secrets", r, strings.ReplaceAll(kind, "_", " ")))
			}
		}
	}
	return strings.Join(problems, "; ")
}

// load tokenizes and parses the given files as one configuration.
func load(t *testing.T, files []string) []*block {
	t.Helper()
	var all []*block
	for _, p := range files {
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		toks, err := tokenize(string(src))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		bs, err := blocks(p, toks)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, bs...)
	}
	return all
}

// configFiles lists the .tf files of infra/gcp (the parent directory) and any directories below it, without
// fixtures, the provider module or Terraform's own directories.
func configFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir("..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != ".." {
			switch name := d.Name(); {
			case name == "testdata", name == "provider", name == "build", strings.HasPrefix(name, "."):
				return filepath.SkipDir
			}
		}
		if !d.IsDir() && strings.HasSuffix(p, ".tf") {
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

// TestIAMGrantsNameResources is the check itself, on infra/gcp (or the files given with -tf).
func TestIAMGrantsNameResources(t *testing.T) {
	files := configFiles(t)
	if *tfFiles != "" {
		files = strings.Split(*tfFiles, ",")
	}
	if len(files) == 0 {
		t.Fatal("no .tf files found")
	}
	gs := check(load(t, files))
	secretGrants := 0
	for _, g := range gs {
		if g.violation != "" {
			t.Error(g)
			continue
		}
		if g.typ == "google_secret_manager_secret_iam_member" {
			secretGrants++
		}
		t.Logf("%s:%d: %s.%s: ok", g.file, g.line, g.typ, g.name)
	}
	if *tfFiles == "" && secretGrants == 0 {
		t.Fatal("no google_secret_manager_secret_iam_member in infra/gcp: the parser is broken or the grants are gone")
	}
}

// TestBadIAMFixture shows the check failing on testdata/bad-iam.tf, each grant for its own reason, and
// accepting the two good ones there.
func TestBadIAMFixture(t *testing.T) {
	want := map[string]string{
		"project_secret_accessor": "grants roles/secretmanager.secretAccessor project-wide",
		"project_secret_admin":    "grants roles/secretmanager.admin project-wide",
		"custom_project_wide":     "custom role too_much carries secretmanager.versions.access project-wide",
		"editor":                  "grants roles/editor project-wide",
		"folder_secrets":          "grants roles/secretmanager.viewer folder-wide",
		"dynamic_role":            "is not a literal or a custom role of this configuration",
		"project_policy":          "an authoritative project-wide policy",
		"no_secret":               "secret_id is not set",
		"empty_secret":            "secret_id is empty",
		"secret_role_on_topic":    "grants roles/secretmanager.secretAccessor on a pubsub topic",
		"bucket_policy":           "an authoritative IAM policy",
		"wildcard_sa":             "is a wildcard",
		"unknown_type":            "no rule for this IAM resource type",
		"pending_unconditioned":   "custom role pending carries secretmanager.secrets.create, secretmanager.versions.add project-wide",
		"pending_wide_condition":  "custom role pending carries secretmanager.secrets.create, secretmanager.versions.add project-wide",
	}
	ok := map[string]bool{"list_only": true, "one_secret": true, "pending_conditioned": true, "cert_manager": true}
	got := map[string]grant{}
	for _, g := range check(load(t, []string{filepath.Join("testdata", "bad-iam.tf")})) {
		got[g.name] = g
	}
	for name, w := range want {
		g, found := got[name]
		switch {
		case !found:
			t.Errorf("%s: not found in the fixture", name)
		case !strings.Contains(g.violation, w):
			t.Errorf("%s: violation %q, want it to contain %q", name, g.violation, w)
		default:
			t.Logf("rejected as expected: %s", g)
		}
	}
	for name := range ok {
		if g, found := got[name]; !found || g.violation != "" {
			t.Errorf("%s: %+v, want it accepted", name, g)
		}
	}
	if len(got) != len(want)+len(ok) {
		t.Errorf("%d grants in the fixture, want %d", len(got), len(want)+len(ok))
	}
}

func TestTokenizer(t *testing.T) {
	src := `# resource "google_project_iam_member" "commented" { role = "roles/owner" }
/* resource "google_project_iam_member" "block_commented" {} */
locals {
  s = "a}b{c\"d ${jsonencode({ x = "}" })} %{ if true }y%{ endif } $${literal"
  h = <<-EOT
    resource "google_project_iam_member" "in_heredoc" {
    }
  EOT
  c = (var.x == 2
    ? "one"
  : "two")
}
resource "google_secret_manager_secret_iam_member" "m" {
  for_each  = var.secrets
  secret_id = each.value.create ? google_secret_manager_secret.managed[each.key].secret_id : each.key
  role = (each.value.access == "write"
    ? google_project_iam_custom_role.writer.name
  : google_project_iam_custom_role.reader.name)
  member = "serviceAccount:${google_service_account.fn.email}"
  condition {
    title = "nested block, not an argument"
  }
}
`
	toks, err := tokenize(src)
	if err != nil {
		t.Fatal(err)
	}
	bs, err := blocks("inline.tf", toks)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 2 || bs[0].typ != "locals" || bs[1].typ != "resource" {
		t.Fatalf("blocks: %+v, want locals and one resource (comments and heredocs hold none)", bs)
	}
	if got := text(bs[0].attrs["s"]); !strings.HasPrefix(got, `"a}b{c\"d ${jsonencode(`) || !strings.HasSuffix(got, `$${literal"`) {
		t.Errorf("string s lexed as %q", got)
	}
	if got := text(bs[0].attrs["c"]); got != `(var.x==2?"one":"two")` {
		t.Errorf("multi-line conditional c = %q", got)
	}
	r := bs[1]
	if r.line != 13 || r.labels[0] != "google_secret_manager_secret_iam_member" || r.labels[1] != "m" {
		t.Errorf("resource %v at line %d, want google_secret_manager_secret_iam_member.m at 13", r.labels, r.line)
	}
	if _, ok := r.attrs["title"]; ok {
		t.Error("an argument of a nested block was taken for the resource's")
	}
	if got := text(r.attrs["member"]); got != `"serviceAccount:${google_service_account.fn.email}"` {
		t.Errorf("member = %q", got)
	}
	lits, custom := roleCandidates(r.attrs["role"])
	if len(custom) != 2 || custom[0] != "writer" || custom[1] != "reader" {
		t.Errorf("role candidates: literals %q custom %q, want the custom roles writer and reader", lits, custom)
	}
	for _, bad := range []string{`x = "open`, "a = <<EOT\nnever closed\n", "b {\n", "/* open"} {
		if _, err := tokenize(bad); err == nil {
			t.Errorf("tokenize(%q): no error", bad)
		}
	}
}
