package generate

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/template"
	"text/template/parse"
	"unicode/utf8"
)

// templatePlan is what analyze learns about a valid Template: the parsed compose templates and the order
// in which the composed fields must be resolved.
type templatePlan struct {
	compose map[int]*template.Template // by field index
	order   []int                      // composed field indices, dependencies first
}

// analyze validates t (at path) and, when it is valid, returns how to generate it.
func (t *Template) analyze(path string) ([]error, *templatePlan) {
	fieldsPath := join(path, "fields")
	if len(t.Fields) == 0 {
		return []error{problem(fieldsPath, "at least one field is required")}, nil
	}
	var errs []error
	plan := &templatePlan{compose: make(map[int]*template.Template)}
	index := make(map[string]int) // name -> first field with that name
	refs := make(map[int][]string)
	fpath := func(i int) string { return fmt.Sprintf("%s[%d]", fieldsPath, i) }

	for i, f := range t.Fields {
		p := fpath(i)
		switch {
		case f.Name == "":
			errs = append(errs, problem(join(p, "name"), "is empty"))
		case !utf8.ValidString(f.Name):
			errs = append(errs, problem(join(p, "name"), "not valid UTF-8"))
		default:
			if j, dup := index[f.Name]; dup {
				errs = append(errs, problem(join(p, "name"), "duplicate name %q (also %s)", f.Name, fpath(j)))
			} else {
				index[f.Name] = i
			}
		}

		var set []string
		if f.Static != nil {
			set = append(set, "static")
		}
		if f.Generate != nil {
			set = append(set, "generate")
		}
		if f.Compose != "" {
			set = append(set, "compose")
		}
		switch len(set) {
		case 0:
			errs = append(errs, problem(p, "no value: set one of static, generate or compose"))
			continue
		case 1:
		default:
			errs = append(errs, problem(p, "%s are all set: set only one", strings.Join(set, ", ")))
			continue
		}

		switch {
		case f.Static != nil:
			if !utf8.ValidString(*f.Static) {
				errs = append(errs, problem(join(p, "static"), "not valid UTF-8"))
			}
		case f.Generate != nil:
			gp := join(p, "generate")
			if f.Generate.Template != nil {
				errs = append(errs, problem(gp, "a generated field cannot be a template; put its fields in this template instead"))
				continue
			}
			errs = append(errs, f.Generate.validate(gp)...)
		default:
			cp := join(p, "compose")
			tmpl, err := template.New(fmt.Sprintf("fields[%d]", i)).Option("missingkey=error").Parse(f.Compose)
			if err != nil {
				errs = append(errs, problem(cp, "%v", err))
				continue
			}
			if len(tmpl.Templates()) > 1 || tmpl.Tree == nil {
				errs = append(errs, problem(cp, "define and block actions are not supported"))
				continue
			}
			names, err := references(tmpl.Tree.Root)
			if err != nil {
				errs = append(errs, problem(cp, "%v", err))
				continue
			}
			plan.compose[i] = tmpl
			refs[i] = names
		}
	}

	// Resolve references to field indices.
	edges := make(map[int][]int)
	for i, f := range t.Fields {
		if _, ok := plan.compose[i]; !ok {
			continue
		}
		cp := join(fpath(i), "compose")
		for _, name := range refs[i] {
			j, known := index[name]
			switch {
			case name == f.Name:
				errs = append(errs, problem(cp, "refers to itself (%q)", name))
			case !known:
				errs = append(errs, problem(cp, "refers to unknown field %q (fields: %s)", name, fieldNames(t.Fields)))
			default:
				edges[i] = append(edges[i], j)
			}
		}
	}

	// Order the composed fields, dependencies first, and report cycles.
	const (
		white = iota
		grey
		black
	)
	color := make(map[int]int)
	var stack []int
	var visit func(i int)
	visit = func(i int) {
		color[i] = grey
		stack = append(stack, i)
		for _, j := range edges[i] {
			switch color[j] {
			case white:
				visit(j)
			case grey:
				start := slices.Index(stack, j)
				var names []string
				for _, k := range stack[start:] {
					names = append(names, fmt.Sprintf("%q", t.Fields[k].Name))
				}
				names = append(names, fmt.Sprintf("%q", t.Fields[j].Name))
				errs = append(errs, problem(join(fpath(j), "compose"), "compose cycle %s", strings.Join(names, " -> ")))
			}
		}
		stack = stack[:len(stack)-1]
		color[i] = black
		if _, ok := plan.compose[i]; ok {
			plan.order = append(plan.order, i)
		}
	}
	for i := range t.Fields {
		if _, ok := plan.compose[i]; ok && color[i] == white {
			visit(i)
		}
	}

	if len(errs) > 0 {
		return errs, nil
	}
	return nil, plan
}

// fieldNames lists the field names for messages.
func fieldNames(fields []Field) string {
	var names []string
	for _, f := range fields {
		if f.Name != "" {
			names = append(names, fmt.Sprintf("%q", f.Name))
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// references returns the field names a compose template refers to ({{.name}}, {{$.name}},
// {{index . "name"}}), deduplicated in order of appearance. It refuses constructs whose references cannot
// be known statically: a bare dot, range, with and template actions.
func references(root *parse.ListNode) ([]string, error) {
	var names []string
	add := func(name string) {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	var walk func(n parse.Node) error
	walkPipe := func(p *parse.PipeNode) error {
		if p == nil {
			return nil
		}
		for _, c := range p.Cmds {
			if err := walk(c); err != nil {
				return err
			}
		}
		return nil
	}
	isDot := func(n parse.Node) bool {
		switch n := n.(type) {
		case *parse.DotNode:
			return true
		case *parse.VariableNode:
			return len(n.Ident) == 1 && n.Ident[0] == "$"
		}
		return false
	}
	walk = func(n parse.Node) error {
		switch n := n.(type) {
		case nil:
			return nil
		case *parse.ListNode:
			if n == nil {
				return nil
			}
			for _, c := range n.Nodes {
				if err := walk(c); err != nil {
					return err
				}
			}
		case *parse.ActionNode:
			return walkPipe(n.Pipe)
		case *parse.PipeNode:
			return walkPipe(n)
		case *parse.IfNode:
			if err := walkPipe(n.Pipe); err != nil {
				return err
			}
			if err := walk(n.List); err != nil {
				return err
			}
			if n.ElseList != nil {
				return walk(n.ElseList)
			}
		case *parse.CommandNode:
			args := n.Args
			if len(args) >= 2 {
				if id, ok := args[0].(*parse.IdentifierNode); ok && id.Ident == "index" && isDot(args[1]) {
					if len(args) < 3 {
						return errors.New(`index of . needs a field name, as in {{index . "name"}}`)
					}
					s, ok := args[2].(*parse.StringNode)
					if !ok {
						return errors.New(`index of . needs a constant field name, as in {{index . "name"}}`)
					}
					add(s.Text)
					args = args[3:]
				}
			}
			for _, a := range args {
				if err := walk(a); err != nil {
					return err
				}
			}
		case *parse.FieldNode:
			add(n.Ident[0])
		case *parse.VariableNode:
			if n.Ident[0] == "$" {
				if len(n.Ident) == 1 {
					return errors.New("refers to $ as a whole; refer to fields as {{.name}}")
				}
				add(n.Ident[1])
			}
		case *parse.ChainNode:
			if isDot(n.Node) && len(n.Field) > 0 {
				add(n.Field[0])
				return nil
			}
			return walk(n.Node)
		case *parse.DotNode:
			return errors.New("refers to . as a whole; refer to fields as {{.name}}")
		case *parse.RangeNode:
			return errors.New("range actions are not supported")
		case *parse.WithNode:
			return errors.New("with actions are not supported")
		case *parse.TemplateNode:
			return errors.New("template actions are not supported")
		case *parse.BreakNode, *parse.ContinueNode:
			return errors.New("break and continue are not supported")
		default:
			// Text, comments and literals (bool, number, string, nil, identifier) refer to no field.
		}
		return nil
	}
	if err := walk(root); err != nil {
		return nil, err
	}
	return names, nil
}

// generateTemplate produces the JSON object of a validated template.
func generateTemplate(t *Template) ([]byte, error) {
	errs, plan := t.analyze("template")
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	values := make(map[string]string, len(t.Fields))
	for i, f := range t.Fields {
		switch {
		case f.Static != nil:
			values[f.Name] = *f.Static
		case f.Generate != nil:
			v, err := f.Generate.generate()
			if err != nil {
				return nil, fmt.Errorf("template.fields[%d].generate: %w", i, err)
			}
			values[f.Name] = string(v)
		}
	}
	for _, i := range plan.order {
		var out bytes.Buffer
		if err := plan.compose[i].Execute(&out, values); err != nil {
			return nil, fmt.Errorf("template.fields[%d].compose: %s", i, redact(err, values))
		}
		if !utf8.Valid(out.Bytes()) {
			return nil, fmt.Errorf("template.fields[%d].compose: result is not valid UTF-8", i)
		}
		values[t.Fields[i].Name] = out.String()
	}

	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, f := range t.Fields {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := jsonString(&buf, f.Name); err != nil {
			return nil, fmt.Errorf("template.fields[%d].name: %w", i, err)
		}
		buf.WriteByte(':')
		if err := jsonString(&buf, values[f.Name]); err != nil {
			return nil, fmt.Errorf("template.fields[%d]: encoding the value failed", i)
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// redact returns the text of a compose execution error, or a generic text when the error's message
// contains any field value, so that no value ever leaks through an error.
func redact(err error, values map[string]string) string {
	msg := err.Error()
	for _, v := range values {
		if v != "" && strings.Contains(msg, v) {
			return "executing the template failed (details withheld because they contain a field value)"
		}
	}
	return msg
}
