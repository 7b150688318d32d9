package replicate

import (
	"bytes"
	"fmt"
	"path"
	"regexp"
	"strings"
	"text/template"

	"github.com/keyferry/keyferry/core/store"
)

// NameFuncs are the helpers a target name template may call.
var NameFuncs = template.FuncMap{
	"lower":      strings.ToLower,
	"upper":      strings.ToUpper,
	"replace":    func(old, new, s string) string { return strings.ReplaceAll(s, old, new) },
	"trimPrefix": func(prefix, s string) string { return strings.TrimPrefix(s, prefix) },
	"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
	"base":       path.Base,
	"dir": func(s string) string {
		if d := path.Dir(s); d != "." {
			return d
		}
		return ""
	},
}

// DefaultName is the target name template when a target gives none.
const DefaultName = "{{ .Name }}"

// parseName parses a target name template.
func parseName(tmpl string) (*template.Template, error) {
	if tmpl == "" {
		tmpl = DefaultName
	}
	return template.New("name").Funcs(NameFuncs).Option("missingkey=error").Parse(tmpl)
}

// nameData builds what a name template sees for a source secret.
func nameData(sourceStore, targetStore, name string) NameData {
	d := NameData{Name: name, Base: name, SourceStore: sourceStore, TargetStore: targetStore}
	if i := strings.LastIndex(name, "/"); i >= 0 {
		d.Dir, d.Base = name[:i], name[i+1:]
	}
	return d
}

var runsOfDash = regexp.MustCompile(`-{2,}`)

// TargetName renders t's name template for a source secret and maps the result onto the target's name
// rules: the same input gives the same name everywhere. Characters the target cannot hold become "-"
// (runs collapse, and a name cannot start or end with one); a leading "/" is dropped for stores that do
// not take one. A name still out of bounds (too long, empty) is an error saying so: names are never
// silently truncated, because two long names would then collide.
func TargetName(t Target, sourceStore, sourceName string, lim store.Limits) (string, error) {
	tmpl, err := parseName(t.Name)
	if err != nil {
		return "", fmt.Errorf("target %s: name template: %w", t.Store, err)
	}
	return renderName(tmpl, t.Store, sourceStore, sourceName, lim)
}

func renderName(tmpl *template.Template, targetStore, sourceStore, sourceName string, lim store.Limits) (string, error) {
	var b bytes.Buffer
	if err := tmpl.Execute(&b, nameData(sourceStore, targetStore, sourceName)); err != nil {
		return "", fmt.Errorf("target %s: name template: %w", targetStore, err)
	}
	name := mapName(b.String(), lim)
	if err := lim.CheckName(name); err != nil {
		return name, err
	}
	return name, nil
}

// mapName replaces what the store's name pattern refuses. It works character by character against the
// store's own pattern, so it needs no per-store table.
func mapName(name string, lim store.Limits) string {
	if lim.NamePattern == nil || lim.NamePattern.MatchString(name) {
		return name
	}
	var b strings.Builder
	for _, r := range name {
		if lim.NamePattern.MatchString(string(r)) || lim.NamePattern.MatchString("a"+string(r)+"a") {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	out := runsOfDash.ReplaceAllString(b.String(), "-")
	if !lim.NamePattern.MatchString(out) || strings.Trim(out, "-") == "" {
		out = strings.Trim(out, "-/")
	}
	return out
}
