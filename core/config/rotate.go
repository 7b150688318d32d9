package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"

	"github.com/keyferry/keyferry/core/generate"
	"github.com/keyferry/keyferry/core/rotate"
)

// The `rotate:` section: rotation policies. What rotation does is core/rotate's business; this file checks
// that each policy is well-formed — a known store, name globs, exactly one schedule, a generator spec that
// can be satisfied — and reports every problem with its line.

var (
	rotateKeys   = []string{"name", "store", "match", "every", "cron", "generate", "test", "grace", "max_age", "lease_ttl"}
	generateKeys = []string{"password", "random", "bytes", "uuid", "template"}
	passwordKeys = []string{"length", "lower", "upper", "digits", "symbols", "exclude"}
	randomKeys   = []string{"length", "charset"}
	bytesKeys    = []string{"length", "encoding"}
	fieldKeys    = []string{"name", "static", "generate", "compose"}
)

// cronParser accepts standard 5-field expressions and the @daily-style descriptors.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

var durationPattern = regexp.MustCompile(`^([0-9]+)d$`)

// ParseDuration reads a duration as keyferry.yaml writes it: Go's form (90m, 12h) or whole days (30d).
func ParseDuration(s string) (time.Duration, error) {
	if m := durationPattern.FindStringSubmatch(s); m != nil {
		n, err := strconv.Atoi(m[1])
		if err != nil || n > 36500 {
			return 0, fmt.Errorf("%s is too long", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s is not a duration: write whole days such as 30d, or hours and minutes such as 12h or 90m", s)
	}
	return d, nil
}

func (p *parser) parseRotate(cfg *Config, key, val *yaml.Node) {
	const path = "rotate"
	n := resolve(val)
	switch {
	case n == nil || isNull(n):
		return
	case n.Kind != yaml.SequenceNode:
		p.errorf(key, path, "must be a list of policies, each starting with `- name:`, not %s", kindName(n))
		p.credentialsIn(n, path)
		return
	}
	names := map[string]int{}
	for i, item := range n.Content {
		rp := fmt.Sprintf("%s[%d]", path, i)
		pol := p.parsePolicy(item, rp)
		if pol == nil {
			continue
		}
		if first, dup := names[pol.Name]; dup {
			p.errorf(item, rp+".name", "policy name %s is used twice (first at line %d): give each policy its own name", p.show(pol.Name), first)
			continue
		}
		names[pol.Name] = pol.Line
		cfg.Rotate = append(cfg.Rotate, *pol)
	}
}

func (p *parser) parsePolicy(item *yaml.Node, path string) *rotate.Policy {
	m := resolve(item)
	if m == nil || m.Kind != yaml.MappingNode {
		p.errorf(item, path, "a policy must be a mapping with name, store, a schedule and generate, not %s", kindName(item))
		if m != nil {
			p.credentialsIn(m, path)
		}
		return nil
	}
	fields := p.fieldsOf(m, path, rotateKeys, "rotation policies")
	pol := &rotate.Policy{Line: item.Line}
	ok := true
	if f, has := fields["name"]; !has {
		p.errorf(item, path, "name is required: add `name:` (lower-case letters, digits and hyphens, such as db-password)")
		ok = false
	} else if v, good := p.str(f); good && ruleNamePattern.MatchString(v) {
		pol.Name = v
	} else {
		if good {
			p.errorf(f.key, f.path, "policy name %s must be 1–63 lower-case letters, digits and hyphens, starting with a letter", p.show(v))
		}
		ok = false
	}
	if f, has := fields["store"]; !has {
		p.errorf(item, path, "store is required: add `store: <store name>` (the primary store of the rotated secrets)")
		ok = false
	} else if v, good := p.storeRef(f); good {
		pol.Store = v
	} else {
		ok = false
	}
	if f, has := fields["match"]; !has {
		p.errorf(item, path, "match is required: add `match:` with the names of the secrets to rotate, such as [\"prod/db/*\"]")
		ok = false
	} else {
		pol.Match = p.strings(f, "a name glob such as prod/db/*", checkGlob)
	}
	every, hasEvery := fields["every"]
	cr, hasCron := fields["cron"]
	switch {
	case hasEvery && hasCron:
		p.errorf(cr.key, cr.path, "give either every or cron, not both")
		ok = false
	case !hasEvery && !hasCron:
		p.errorf(item, path, "a schedule is required: add `every: 30d` or `cron: \"0 3 * * 1\"` (UTC)")
		ok = false
	case hasEvery:
		var good bool
		pol.Every, good = p.duration(every, time.Hour)
		ok = ok && good
	default:
		if v, good := p.str(cr); good {
			if _, err := cronParser.Parse(v); err != nil {
				p.errorf(cr.key, cr.path, "%s is not a cron expression: %v; write five fields (minute hour day-of-month month day-of-week), such as \"0 3 * * 1\"", p.show(v), err)
				ok = false
			}
			pol.Cron = v
		}
	}
	if f, has := fields["generate"]; !has {
		p.errorf(item, path, "generate is required: say how the new value is made, such as `generate: {password: {length: 32}}`")
		ok = false
	} else if spec, good := p.generateSpec(f, false); good {
		if err := spec.Validate(); err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				p.errorf(f.key, f.path, "%s", line)
			}
			ok = false
		}
		pol.Generate = spec
	} else {
		ok = false
	}
	if f, has := fields["test"]; has {
		if v, good := p.str(f); good && ruleNamePattern.MatchString(v) {
			pol.Test = v
		} else if good {
			p.errorf(f.key, f.path, "test %s must name a verification hook (lower-case letters, digits, hyphens)", p.show(v))
		}
	}
	for k, dst := range map[string]*time.Duration{"grace": &pol.Grace, "max_age": &pol.MaxAge, "lease_ttl": &pol.LeaseTTL} {
		if f, has := fields[k]; has {
			var good bool
			*dst, good = p.duration(f, time.Minute)
			ok = ok && good
		}
	}
	if !ok {
		return nil
	}
	return pol
}

// duration reads a duration of at least min (rotation schedules and periods, certificate lifetimes).
func (p *parser) duration(f field, min time.Duration) (time.Duration, bool) {
	v, ok := p.str(f)
	if !ok {
		return 0, false
	}
	d, err := ParseDuration(v)
	switch {
	case err != nil:
		p.errorf(f.key, f.path, "%v", err)
		return 0, false
	case d < min:
		p.errorf(f.key, f.path, "%s is shorter than %s", p.show(v), min)
		return 0, false
	}
	return d, true
}

// generateSpec reads a generator: exactly one of password, random, bytes, uuid, template (a template
// field's generator may not be a template itself).
func (p *parser) generateSpec(f field, inTemplate bool) (generate.Spec, bool) {
	var s generate.Spec
	m := resolve(f.val)
	if m == nil || m.Kind != yaml.MappingNode {
		p.errorf(f.key, f.path, "must be a mapping with one of %s, such as {password: {length: 32}}, not %s", strings.Join(generateKeys, ", "), p.describe(m))
		if m != nil {
			p.credentialsIn(m, f.path)
		}
		return s, false
	}
	fields := p.fieldsOf(m, f.path, generateKeys, "generators")
	if len(fields) != 1 {
		p.errorf(f.key, f.path, "give exactly one generator (%s), not %d", strings.Join(generateKeys, ", "), len(fields))
		return s, false
	}
	ok := true
	for k, g := range fields {
		switch k {
		case "password":
			pw := &generate.Password{}
			gf := p.mapping(g, passwordKeys, "password settings")
			if gf == nil {
				return s, false
			}
			pw.Length = p.intField(gf, "length", &ok)
			for ck, dst := range map[string]**int{"lower": &pw.Lower, "upper": &pw.Upper, "digits": &pw.Digits, "symbols": &pw.Symbols} {
				if _, has := gf[ck]; has {
					v := p.intField(gf, ck, &ok)
					*dst = &v
				}
			}
			if pw.Lower == nil && pw.Upper == nil && pw.Digits == nil && pw.Symbols == nil {
				one := 1
				pw.Lower, pw.Upper, pw.Digits = &one, &one, &one // default: letters and digits, one of each at least
			}
			if e, has := gf["exclude"]; has {
				pw.Exclude, _ = p.str(e)
			}
			s.Password = pw
		case "random":
			gf := p.mapping(g, randomKeys, "random string settings")
			if gf == nil {
				return s, false
			}
			r := &generate.Random{Length: p.intField(gf, "length", &ok)}
			if c, has := gf["charset"]; has {
				r.Charset, _ = p.str(c)
			} else {
				r.Charset = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
			}
			s.Random = r
		case "bytes":
			gf := p.mapping(g, bytesKeys, "random bytes settings")
			if gf == nil {
				return s, false
			}
			b := &generate.Bytes{Length: p.intField(gf, "length", &ok), Encoding: "base64"}
			if e, has := gf["encoding"]; has {
				b.Encoding, _ = p.str(e)
			}
			s.Bytes = b
		case "uuid":
			s.UUID, ok = p.boolean(g)
			if ok && !s.UUID {
				p.errorf(g.key, g.path, "uuid: false generates nothing: write uuid: true, or choose another generator")
				ok = false
			}
		case "template":
			if inTemplate {
				p.errorf(g.key, g.path, "a template field cannot be a template itself: use static, generate or compose")
				return s, false
			}
			s.Template, ok = p.templateSpec(g)
		}
	}
	return s, ok
}

func (p *parser) templateSpec(f field) (*generate.Template, bool) {
	gf := p.mapping(f, []string{"fields"}, "template settings")
	if gf == nil {
		return nil, false
	}
	list, has := gf["fields"]
	n := resolve(list.val)
	if !has || n == nil || n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		p.errorf(f.key, f.path, "fields is required: a list such as [{name: username, static: app}, {name: password, generate: {password: {length: 32}}}]")
		return nil, false
	}
	t := &generate.Template{}
	ok := true
	for i, item := range n.Content {
		ip := fmt.Sprintf("%s.fields[%d]", f.path, i)
		ff := p.mapping(field{item, item, ip}, fieldKeys, "template fields")
		if ff == nil {
			ok = false
			continue
		}
		var fd generate.Field
		if nf, has := ff["name"]; has {
			fd.Name, _ = p.str(nf)
		} else {
			p.errorf(item, ip, "name is required")
			ok = false
		}
		kinds := 0
		if sf, has := ff["static"]; has {
			kinds++
			v, _ := p.str(sf)
			fd.Static = &v
		}
		if gf, has := ff["generate"]; has {
			kinds++
			spec, good := p.generateSpec(gf, true)
			ok = ok && good
			fd.Generate = &spec
		}
		if cf, has := ff["compose"]; has {
			kinds++
			fd.Compose, _ = p.str(cf)
		}
		if kinds != 1 {
			p.errorf(item, ip, "a field needs exactly one of static, generate or compose")
			ok = false
		}
		t.Fields = append(t.Fields, fd)
	}
	return t, ok
}

// mapping reads a mapping's fields, or reports what it should be.
func (p *parser) mapping(f field, keys []string, what string) map[string]field {
	m := resolve(f.val)
	if m == nil || m.Kind != yaml.MappingNode {
		p.errorf(f.key, f.path, "must be a mapping of %s (%s), not %s", what, strings.Join(keys, ", "), p.describe(m))
		if m != nil {
			p.credentialsIn(m, f.path)
		}
		return nil
	}
	return p.fieldsOf(m, f.path, keys, what)
}

func (p *parser) intField(fields map[string]field, k string, ok *bool) int {
	f, has := fields[k]
	if !has {
		return 0
	}
	v, good := p.integer(f)
	if !good {
		*ok = false
	}
	return v
}
