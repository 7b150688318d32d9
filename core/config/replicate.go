package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"text/template"

	"github.com/gobwas/glob"
	"gopkg.in/yaml.v3"

	"github.com/keyferry/keyferry/core/replicate"
)

// The `replicate:` section: a list of rules, each from one source store to one or more targets.
// What the rules mean is core/replicate's business (docs/architecture.md, "Replication"); this file
// checks that they are well-formed and refer to configured stores, and reports every problem with its
// line. Checks that need the stores' declared limits (target names a store cannot hold, collisions) are
// made by replicate.Check when `keyferry validate` opens the stores.

var (
	ruleKeys   = []string{"name", "from", "to", "on_conflict", "delete", "granularity", "keys"}
	fromKeys   = []string{"store", "match", "exclude", "tags", "exclude_tags"}
	targetKeys = []string{"store", "name", "tags"}
	tagKeys    = []string{"propagate", "include", "exclude", "rename", "set"}
)

var ruleNamePattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// NameFuncs are the helpers a target name template may call. core/replicate renders names with the same
// set (a test keeps the two equal); here they only need to exist for parsing.
var NameFuncs = template.FuncMap{
	"lower": strings.ToLower, "upper": strings.ToUpper, "replace": strings.ReplaceAll,
	"trimPrefix": strings.TrimPrefix, "trimSuffix": strings.TrimSuffix,
	"base": func(s string) string { return s }, "dir": func(s string) string { return s },
}

func (p *parser) parseReplicate(cfg *Config, key, val *yaml.Node) {
	const path = "replicate"
	n := resolve(val)
	switch {
	case n == nil || isNull(n):
		return // an empty section: nothing is replicated
	case n.Kind != yaml.SequenceNode:
		p.errorf(key, path, "must be a list of rules, each starting with `- name:`, not %s", kindName(n))
		p.credentialsIn(n, path)
		return
	}
	names := map[string]int{}
	for i, item := range n.Content {
		rp := fmt.Sprintf("%s[%d]", path, i)
		r := p.parseRule(item, rp)
		if r == nil {
			continue
		}
		if first, dup := names[r.Name]; dup {
			p.errorf(item, rp+".name", "rule name %s is used twice (first at line %d): give each rule its own name", p.show(r.Name), first)
			continue
		}
		names[r.Name] = r.Line
		cfg.Replicate = append(cfg.Replicate, *r)
	}
}

func (p *parser) parseRule(item *yaml.Node, path string) *replicate.Rule {
	m := resolve(item)
	if m == nil || m.Kind != yaml.MappingNode {
		p.errorf(item, path, "a rule must be a mapping with name, from and to, not %s", kindName(item))
		if m != nil {
			p.credentialsIn(m, path)
		}
		return nil
	}
	fields := p.fieldsOf(m, path, ruleKeys, "rules")
	r := &replicate.Rule{Line: item.Line, OnConflict: replicate.ConflictAlert, Delete: replicate.DeleteKeep,
		Granularity: replicate.WholeValue}
	ok := true
	if f, has := fields["name"]; !has {
		p.errorf(item, path, "name is required: add `name:` (lower-case letters, digits and hyphens, such as prod-dr)")
		ok = false
	} else if v, good := p.str(f); good {
		if !ruleNamePattern.MatchString(v) {
			p.errorf(f.key, f.path, "rule name %s must be 1–63 lower-case letters, digits and hyphens, starting with a letter", p.show(v))
			ok = false
		}
		r.Name = v
	} else {
		ok = false
	}
	if f, has := fields["from"]; !has {
		p.errorf(item, path, "from is required: add `from: {store: <store name>}`")
		ok = false
	} else if !p.parseSource(f, &r.From) {
		ok = false
	}
	if f, has := fields["to"]; !has {
		p.errorf(item, path, "to is required: add `to:` with a list of target stores, such as `to: [{store: azure}]`")
		ok = false
	} else if !p.parseTargets(f, r) {
		ok = false
	}
	p.enum(fields, "on_conflict", (*string)(&r.OnConflict), []string{"overwrite", "skip", "alert"},
		"what to do when someone else wrote a replica")
	p.enum(fields, "delete", (*string)(&r.Delete), []string{"propagate", "keep"},
		"whether deleting a source deletes the replicas keyferry wrote")
	p.enum(fields, "granularity", (*string)(&r.Granularity), []string{"value", "keys"},
		"whether the whole value or some keys of a JSON object are copied")
	if f, has := fields["keys"]; has {
		if r.Granularity != replicate.JSONKeys {
			p.errorf(f.key, f.path, "keys are only used with `granularity: keys`: add it, or remove keys")
		} else {
			r.Keys = p.strings(f, "a JSON key such as password", nil)
		}
	}
	if !ok {
		return nil
	}
	return r
}

// fieldsOf reads a mapping's entries, reporting unknown keys (with a suggestion) and credentials.
func (p *parser) fieldsOf(m *yaml.Node, path string, known []string, what string) map[string]field {
	fields := map[string]field{}
	for _, kv := range p.pairs(m, path) {
		k := kv.key.Value
		f := field{kv.key, kv.val, join(path, p.showKey(k))}
		switch {
		case slices.Contains(known, k): // a key this mapping defines is never a credential (generate: {password: …})
			fields[k] = f
		case isCredentialKey(k):
			p.credential(kv.key, k, path)
		default:
			msg := fmt.Sprintf("unknown key %s", p.show(k))
			if s := suggest(k, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			p.errorf(kv.key, f.path, "%s; %s take: %s", msg, what, strings.Join(known, ", "))
			p.credentialsIn(kv.val, f.path)
		}
	}
	return fields
}

// storeRef reads a store name and checks that it is configured.
func (p *parser) storeRef(f field) (string, bool) {
	v, ok := p.str(f)
	if !ok {
		return "", false
	}
	if _, known := p.storeTypes[v]; !known {
		var names []string
		for n := range p.storeTypes {
			names = append(names, n)
		}
		slices.Sort(names)
		msg := fmt.Sprintf("there is no store named %s", p.show(v))
		if s := suggest(v, names); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		p.errorf(f.key, f.path, "%s; the stores are: %s", msg, strings.Join(names, ", "))
		return "", false
	}
	return v, true
}

func (p *parser) parseSource(f field, s *replicate.Source) bool {
	m := resolve(f.val)
	if m != nil && m.Kind == yaml.ScalarNode && !isNull(m) {
		v, ok := p.storeRef(f) // shorthand: `from: aws`
		s.Store = v
		return ok
	}
	if m == nil || m.Kind != yaml.MappingNode {
		p.errorf(f.key, f.path, "must be a store name or a mapping such as {store: aws, match: [\"prod/*\"]}, not %s", kindName(f.val))
		if m != nil {
			p.credentialsIn(m, f.path)
		}
		return false
	}
	fields := p.fieldsOf(m, f.path, fromKeys, "sources")
	sf, has := fields["store"]
	if !has {
		p.errorf(f.key, f.path, "store is required: add `store: <store name>`")
		return false
	}
	v, ok := p.storeRef(sf)
	s.Store = v
	if g, has := fields["match"]; has {
		s.Match = p.strings(g, "a name glob such as prod/*", checkGlob)
	}
	if g, has := fields["exclude"]; has {
		s.Exclude = p.strings(g, "a name glob such as *-local", checkGlob)
	}
	if g, has := fields["tags"]; has {
		s.Tags = p.stringMap(g, "tags to match, such as {replicate: \"true\"} (\"*\" matches any value)")
	}
	if g, has := fields["exclude_tags"]; has {
		s.ExcludeTags = p.stringMap(g, "tags that exclude a secret, such as {no-sync: \"true\"}")
	}
	return ok
}

func (p *parser) parseTargets(f field, r *replicate.Rule) bool {
	n := resolve(f.val)
	if n == nil || n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		p.errorf(f.key, f.path, "must be a non-empty list of targets, such as [{store: azure}, {store: gcp, name: \"app-{{ .Base }}\"}], not %s", p.describe(n))
		if n != nil {
			p.credentialsIn(n, f.path)
		}
		return false
	}
	ok := true
	seen := map[[2]string]int{}
	for i, item := range n.Content {
		tp := fmt.Sprintf("%s[%d]", f.path, i)
		t, good := p.parseTarget(field{item, item, tp})
		if !good {
			ok = false
			continue
		}
		k := [2]string{t.Store, t.Name}
		if first, dup := seen[k]; dup {
			p.errorf(item, tp, "store %s is a target twice with the same name (first at line %d): keep one", p.show(t.Store), first)
			ok = false
			continue
		}
		seen[k] = item.Line
		if t.Store == r.From.Store && (t.Name == "" || t.Name == "{{ .Name }}" || t.Name == "{{.Name}}") {
			p.errorf(item, tp, "store %s is the rule's source and this target names every secret as itself: a rule cannot copy a secret onto itself; give the target a different store or a name template", p.show(t.Store))
			ok = false
			continue
		}
		r.To = append(r.To, t)
	}
	return ok
}

func (p *parser) parseTarget(f field) (replicate.Target, bool) {
	var t replicate.Target
	m := resolve(f.val)
	if m != nil && m.Kind == yaml.ScalarNode && !isNull(m) {
		v, ok := p.storeRef(f) // shorthand: `- gcp`
		t.Store = v
		return t, ok
	}
	if m == nil || m.Kind != yaml.MappingNode {
		p.errorf(f.key, f.path, "a target must be a store name or a mapping such as {store: azure}, not %s", kindName(f.val))
		if m != nil {
			p.credentialsIn(m, f.path)
		}
		return t, false
	}
	fields := p.fieldsOf(m, f.path, targetKeys, "targets")
	sf, has := fields["store"]
	if !has {
		p.errorf(f.key, f.path, "store is required: add `store: <store name>`")
		return t, false
	}
	v, ok := p.storeRef(sf)
	t.Store = v
	if nf, has := fields["name"]; has {
		if s, good := p.str(nf); good {
			if _, err := template.New("name").Funcs(NameFuncs).Option("missingkey=error").Parse(s); err != nil {
				p.errorf(nf.key, nf.path, "the name template does not parse: %s; write Go template syntax such as \"app-{{ .Base }}\" (fields: .Name .Base .Dir .SourceStore .TargetStore)",
					templateError(err))
				ok = false
			} else {
				t.Name = s
			}
		} else {
			ok = false
		}
	}
	if tf, has := fields["tags"]; has {
		t.Tags = p.tagPolicy(tf)
	}
	return t, ok
}

// templateError trims text/template's prefix from a parse error.
func templateError(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && strings.HasPrefix(s, "template: ") {
		return s[i+2:]
	}
	return s
}

func (p *parser) tagPolicy(f field) replicate.TagPolicy {
	var tp replicate.TagPolicy
	m := resolve(f.val)
	if m != nil && m.Kind == yaml.ScalarNode && m.Tag == "!!bool" {
		tp.Propagate, _ = p.boolean(f) // shorthand: `tags: true`
		return tp
	}
	if m == nil || m.Kind != yaml.MappingNode {
		p.errorf(f.key, f.path, "must be true, false or a mapping such as {propagate: true, exclude: [cost-center]}, not %s", p.describe(m))
		if m != nil {
			p.credentialsIn(m, f.path)
		}
		return tp
	}
	fields := p.fieldsOf(m, f.path, tagKeys, "tag settings")
	if g, has := fields["propagate"]; has {
		tp.Propagate, _ = p.boolean(g)
	}
	if g, has := fields["include"]; has {
		tp.Include = p.strings(g, "a tag key", checkTagKey)
	}
	if g, has := fields["exclude"]; has {
		tp.Exclude = p.strings(g, "a tag key", checkTagKey)
	}
	if g, has := fields["rename"]; has {
		tp.Rename = p.stringMap(g, "source tag keys to target tag keys, such as {team: owner}")
		for _, k := range sortedKeys(tp.Rename) {
			if msg := checkTagKey(tp.Rename[k]); msg != "" {
				p.errorf(g.key, g.path, "%s", p.withValue(msg, tp.Rename[k]))
			}
		}
	}
	if g, has := fields["set"]; has {
		tp.Set = p.stringMap(g, "fixed tags such as {managed-by: keyferry}")
	}
	for _, k := range sortedKeys(tp.Set) {
		if msg := checkTagKey(k); msg != "" {
			p.errorf(fields["set"].key, fields["set"].path, "%s", p.withValue(msg, k))
		}
	}
	return tp
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func checkTagKey(v string) string {
	if strings.HasPrefix(strings.ToLower(v), "keyferry-") {
		return "tag key %v uses the prefix keyferry- that keyferry keeps for its own records: choose another key"
	}
	return ""
}

func checkGlob(v string) string {
	if _, err := glob.Compile(v, '/'); err != nil {
		return "%v is not a valid name glob (" + strings.TrimPrefix(err.Error(), "unexpected ") + "): use * within a path segment, ** across segments, ? and [abc]"
	}
	return ""
}

// enum reads a setting that takes one of a few words.
func (p *parser) enum(fields map[string]field, key string, dst *string, values []string, what string) {
	f, ok := fields[key]
	if !ok {
		return
	}
	v, ok := p.str(f)
	if !ok {
		return
	}
	if slices.Contains(values, v) {
		*dst = v
		return
	}
	msg := fmt.Sprintf("must be one of %s (%s), not %s", strings.Join(values, ", "), what, p.show(v))
	if s := suggest(strings.ToLower(v), values); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	p.errorf(f.key, f.path, "%s", msg)
}

// strings reads a list of text values (a single text value is taken as a list of one).
func (p *parser) strings(f field, what string, check func(string) string) []string {
	n := resolve(f.val)
	if n != nil && n.Kind == yaml.ScalarNode && !isNull(n) && n.Tag != "!!bool" {
		n = &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{n}, Line: n.Line, Column: n.Column}
	}
	if n == nil || n.Kind != yaml.SequenceNode {
		p.errorf(f.key, f.path, "must be a list, each item %s, not %s", what, p.describe(n))
		if n != nil {
			p.credentialsIn(n, f.path)
		}
		return nil
	}
	var out []string
	for i, item := range n.Content {
		ip := fmt.Sprintf("%s[%d]", f.path, i)
		v, ok := p.str(field{item, item, ip})
		if !ok {
			continue
		}
		if check != nil {
			if msg := check(v); msg != "" {
				p.errorf(item, ip, "%s", p.withValue(msg, v))
				continue
			}
		}
		out = append(out, v)
	}
	return out
}

// stringMap reads a mapping of text to text.
func (p *parser) stringMap(f field, what string) map[string]string {
	m := resolve(f.val)
	if m == nil || m.Kind != yaml.MappingNode {
		p.errorf(f.key, f.path, "must be a mapping of %s, not %s", what, p.describe(m))
		if m != nil {
			p.credentialsIn(m, f.path)
		}
		return nil
	}
	out := map[string]string{}
	for _, kv := range p.pairs(m, f.path) {
		k := kv.key.Value
		kp := join(f.path, p.showKey(k))
		if isCredentialKey(k) {
			p.credential(kv.key, k, f.path)
			continue
		}
		n := resolve(kv.val)
		if n == nil || n.Kind != yaml.ScalarNode || isNull(n) {
			p.errorf(kv.key, kp, "must be text: quote it, such as \"true\", not %s", kindName(kv.val))
			continue
		}
		out[k] = n.Value
	}
	return out
}
