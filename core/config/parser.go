package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// parser collects located errors while it walks the YAML tree.
type parser struct {
	file string
	dir  string
	errs Errors
	// secrets are the values found under credential keys: never repeated in a message.
	secrets []string
	// reported keeps credential keys already reported (an anchor reached through several aliases).
	reported map[*yaml.Node]bool
	lines    int // in the file
	// mappings keeps the entries of each mapping read so far (see pairs).
	mappings map[*yaml.Node][]pair
	// storeTypes maps store names to their types once known, for the federation hint.
	storeTypes map[string]string
}

// section is a top-level section of keyferry.yaml. Sections are parsed in this order whatever their order
// in the file, so that later sections can refer to what earlier ones define.
type section struct {
	name     string
	required bool
	parse    func(p *parser, cfg *Config, key, val *yaml.Node)
}

var sections = []section{
	{name: "stores", required: true, parse: (*parser).parseStores},
	{name: "replicate", parse: (*parser).parseReplicate},
	{name: "notify", parse: (*parser).parseNotify},
	{name: "rotate", parse: (*parser).parseRotate},
	{name: "certificates", parse: (*parser).parseCertificates},
}

func sectionNames() []string {
	out := make([]string, len(sections))
	for i, s := range sections {
		out[i] = s.name
	}
	return out
}

// extensionPrefix starts top-level keys that keyferry ignores: a place to define YAML anchors.
const extensionPrefix = "x-"

func (p *parser) errAt(line, col int, path, format string, args ...any) {
	if line > p.lines {
		line, col = p.lines, 1 // the YAML parser places some end-of-input nodes past the last line
	}
	if line < 1 {
		line = 1
	}
	if col < 1 {
		col = 1
	}
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Column: col, Path: path, Message: fmt.Sprintf(format, args...)})
}

func (p *parser) errorf(n *yaml.Node, path, format string, args ...any) {
	p.errAt(n.Line, n.Column, path, format, args...)
}

func (p *parser) parse(data []byte) (cfg *Config) {
	cfg = &Config{File: p.file}
	p.lines = bytes.Count(data, []byte("\n")) + 1
	if len(data) > MaxFileBytes {
		p.errAt(1, 1, "", "the file is %d bytes; a configuration is at most %d", len(data), MaxFileBytes)
		return cfg
	}
	doc, err := decodeDocument(data)
	if err != nil {
		p.syntaxError(data, err)
		return cfg
	}
	if doc == nil {
		p.errAt(1, 1, "", "the file is empty: it needs a `stores:` section (see docs/configuration.md)")
		return cfg
	}
	if second, err := decodeDocument2(data); second != nil {
		p.errorf(second, "", "the file holds more than one YAML document: keep everything in one and remove the \"---\" separator")
	} else if err != nil {
		p.syntaxError(data, err)
	}
	root := doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			p.errAt(1, 1, "", "the file is empty: it needs a `stores:` section (see docs/configuration.md)")
			return cfg
		}
		root = root.Content[0]
	}
	p.collectSecrets(root, 0)
	root = resolve(root)
	if root == nil || isNull(root) {
		p.errAt(1, 1, "", "the file holds no settings: it needs a `stores:` section (see docs/configuration.md)")
		return cfg
	}
	if root.Kind != yaml.MappingNode {
		p.errorf(root, "", "the top level must be a mapping of sections (%s), not %s", strings.Join(sectionNames(), ", "), kindName(root))
		p.credentialsIn(root, "")
		return cfg
	}
	found := map[string]pair{}
	for _, kv := range p.pairs(root, "") {
		name := kv.key.Value
		switch {
		case isCredentialKey(name):
			p.credential(kv.key, name, "")
		case p.isSection(name):
			found[name] = kv
		case strings.HasPrefix(name, extensionPrefix):
			p.credentialsIn(kv.val, p.showKey(name))
		default:
			msg := fmt.Sprintf("unknown section %s", p.show(name))
			if s := suggest(name, sectionNames()); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			p.errorf(kv.key, "", "%s; the sections are: %s (keys starting with %q are ignored)", msg,
				strings.Join(sectionNames(), ", "), extensionPrefix)
			p.credentialsIn(kv.val, p.showKey(name)) // the name may itself be a secret: never echo it raw
		}
	}
	for _, s := range sections {
		kv, ok := found[s.name]
		if !ok {
			if s.required {
				p.errAt(root.Line, root.Column, "", "there is no `%s:` section: add one (see docs/configuration.md)", s.name)
			}
			continue
		}
		s.parse(p, cfg, kv.key, kv.val)
	}
	return cfg
}

func (p *parser) isSection(name string) bool {
	for _, s := range sections {
		if s.name == name {
			return true
		}
	}
	return false
}

// decodeDocument parses the first YAML document; nil when there is none.
func decodeDocument(data []byte) (doc *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			doc, err = nil, fmt.Errorf("yaml: the YAML parser failed on this input")
		}
	}()
	var n yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&n); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	return &n, nil
}

// decodeDocument2 returns the second YAML document's first node, if there is one.
func decodeDocument2(data []byte) (second *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			second, err = nil, fmt.Errorf("yaml: the YAML parser failed on this input")
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var first, n yaml.Node
	if err := dec.Decode(&first); err != nil {
		return nil, nil
	}
	if err := dec.Decode(&n); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	if len(n.Content) > 0 {
		return n.Content[0], nil
	}
	return &n, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError reports a YAML syntax error. The YAML parser names the line where the construct it was
// reading began, often well above the mistake; the line reported here is the first at which the file,
// cut after that line, fails with the same problem. The column is that of the first tab (if tabs are the
// problem) or of the line's first non-blank character.
func (p *parser) syntaxError(data []byte, err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	line = max(1, min(line, len(lines)))
	line = locate(lines, line, msg)
	text := strings.TrimRight(string(lines[line-1]), "\r\n")
	col := 1
	if i := strings.IndexFunc(text, func(r rune) bool { return r != ' ' }); i >= 0 {
		col = utf8.RuneCountInString(text[:i]) + 1
	}
	hint := "check the indentation and quoting of this line and the ones just above it"
	switch {
	case strings.Contains(msg, "cannot start any token") && tabLine(lines, line) > 0:
		line = tabLine(lines, line)
		text = string(lines[line-1])
		col = utf8.RuneCountInString(text[:strings.IndexByte(text, '\t')]) + 1
		msg, hint = "a tab character", "YAML indentation must use spaces: replace the tabs with spaces"
	case strings.Contains(msg, "anchor"):
		// The only messages quoting input: anchor names are not repeated.
		msg, hint = "an alias (*name) refers to an anchor that is not defined", "define the anchor (&name) before the alias that uses it"
	case strings.Contains(msg, "mapping values are not allowed"):
		hint = "a value containing \": \" must be quoted, and a nested key must be indented under its parent"
	case strings.Contains(msg, "found unexpected end of stream"):
		hint = "a quoted string or a bracket is not closed"
	case strings.Contains(msg, "UTF-8"):
		hint = "save the file as UTF-8 text"
	}
	p.errAt(line, col, "", "YAML syntax error: %s: %s", msg, hint)
}

// locate finds the first line, from the one the parser named, after which the file cut there fails with
// the same problem. It gives up (keeping the parser's line) after a bounded amount of work.
func locate(lines [][]byte, from int, msg string) int {
	size := 0
	for k := from; k <= len(lines) && k-from < 500; k++ {
		if size += len(lines[k-1]); size > 256<<10 {
			break
		}
		err := parseAll(bytes.Join(lines[:k], nil))
		if err == nil {
			continue
		}
		m := strings.TrimPrefix(err.Error(), "yaml: ")
		if sm := yamlLine.FindStringSubmatch(err.Error()); sm != nil {
			m = sm[2]
		}
		if m == msg {
			return k
		}
	}
	return from
}

// parseAll parses every document of data, returning the first error.
func parseAll(data []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: the YAML parser failed on this input")
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// tabLine finds the line holding a tab, looking from line backwards then forwards; 0 if none.
func tabLine(lines [][]byte, line int) int {
	for i := min(line, len(lines)); i >= 1; i-- {
		if bytes.IndexByte(lines[i-1], '\t') >= 0 {
			return i
		}
	}
	for i := line + 1; i <= len(lines); i++ {
		if bytes.IndexByte(lines[i-1], '\t') >= 0 {
			return i
		}
	}
	return 0
}

// resolve follows aliases to the node they stand for.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.AliasNode {
		return nil
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n = resolve(n); {
	case n == nil:
		return "an alias loop"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case isNull(n):
		return "empty"
	case n.Tag == "!!bool":
		return "true/false"
	case n.Tag == "!!int" || n.Tag == "!!float":
		return "a number"
	default:
		return "text"
	}
}

// pair is one entry of a mapping.
type pair struct{ key, val *yaml.Node }

// pairs returns the entries of mapping m in file order, with merge keys (<<: *anchor) applied: an entry
// written in m wins over a merged one. Keys that are not plain text and keys given twice are reported.
// Results are kept per mapping, so a mapping reached through many aliases and merges is read (and its
// problems reported) once.
func (p *parser) pairs(m *yaml.Node, path string) []pair {
	return p.pairsOf(m, path, map[*yaml.Node]bool{})
}

func (p *parser) pairsOf(m *yaml.Node, path string, active map[*yaml.Node]bool) []pair {
	if kvs, ok := p.mappings[m]; ok {
		return kvs
	}
	if p.mappings == nil {
		p.mappings = map[*yaml.Node][]pair{}
	}
	active[m] = true
	defer delete(active, m)
	var own, merged []pair
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			for _, src := range p.mergeSources(k, v, path) {
				if active[src] {
					p.errorf(k, path, "this merge (<<) includes the mapping it is in: remove it")
					continue
				}
				merged = append(merged, p.pairsOf(src, path, active)...)
			}
			continue
		}
		rk := resolve(k)
		if rk == nil || rk.Kind != yaml.ScalarNode {
			p.errorf(k, path, "a key must be plain text, not %s", kindName(k))
			p.credentialsIn(v, path)
			continue
		}
		if first, dup := seen[rk.Value]; dup {
			p.errorf(k, join(path, p.showKey(rk.Value)), "is set twice (first at line %d): keep one", first.Line)
			continue
		}
		seen[rk.Value] = k
		own = append(own, pair{key: rk, val: v})
	}
	for _, kv := range merged {
		if _, dup := seen[kv.key.Value]; dup {
			continue
		}
		seen[kv.key.Value] = kv.key
		own = append(own, kv)
	}
	p.mappings[m] = own
	return own
}

// mergeSources returns the mappings a merge key's value names.
func (p *parser) mergeSources(k, v *yaml.Node, path string) []*yaml.Node {
	src := resolve(v)
	switch {
	case src != nil && src.Kind == yaml.MappingNode:
		return []*yaml.Node{src}
	case src != nil && src.Kind == yaml.SequenceNode:
		var maps []*yaml.Node
		for _, item := range src.Content {
			if r := resolve(item); r != nil && r.Kind == yaml.MappingNode {
				maps = append(maps, r)
			} else {
				p.errorf(item, path, "a merge key (<<) takes mappings, such as <<: [*defaults, *eu]")
			}
		}
		return maps
	default:
		p.errorf(k, path, "a merge key (<<) takes a mapping or a list of mappings, such as <<: *defaults")
		return nil
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// ----- showing input in messages -----

// show renders an input string for a message: quoted, and only if it cannot be a credential.
func (p *parser) show(s string) string {
	if !p.showable(s) {
		return "(value not shown)"
	}
	return strconv.Quote(s)
}

// showKey renders a key for a path: bare when it is a simple word, else as show does.
func (p *parser) showKey(s string) string {
	if plainKey.MatchString(s) && p.showable(s) {
		return s
	}
	return p.show(s)
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// showable is false for long strings, strings with a stretch that looks like a key or token (letters
// of both cases and digits), and anything overlapping a value found under a credential key.
func (p *parser) showable(s string) bool {
	if len(s) > 80 || looksSecret(s) {
		return false
	}
	for _, sec := range p.secrets {
		if len(sec) >= 4 && strings.Contains(s, sec) || len(s) >= 4 && strings.Contains(sec, s) {
			return false
		}
	}
	return true
}

var secretRun = regexp.MustCompile(`[A-Za-z0-9+/=_-]{12,}`)

// looksSecret reports whether s holds a run of 12 or more key-like characters mixing upper case, lower
// case and digits, as access keys, tokens and passwords do (names and URLs in a configuration do not).
func looksSecret(s string) bool {
	if strings.Contains(s, "-----BEGIN") {
		return true
	}
	for _, run := range secretRun.FindAllString(s, -1) {
		var up, low, dig bool
		for _, r := range run {
			switch {
			case r >= 'A' && r <= 'Z':
				up = true
			case r >= 'a' && r <= 'z':
				low = true
			case r >= '0' && r <= '9':
				dig = true
			}
		}
		if up && low && dig || up && dig && len(run) >= 16 {
			return true
		}
	}
	return false
}
