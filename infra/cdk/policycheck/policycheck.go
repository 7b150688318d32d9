// Package policycheck checks a synthesized CloudFormation template for IAM grants wider than keyferry needs.
// It reads the template as JSON only (no CDK, no jsii), so it runs on cdk.out, on a template built in a test
// with Template.FromStack, and on hand-written fixtures that show each rule catching what it is for.
//
// Rules:
//
//   - wildcard-action: an Allow statement whose Action contains "*" ("*", "secretsmanager:*",
//     "secretsmanager:Put*"), or an Allow with NotAction.
//   - secrets-write-on-star: an Allow statement granting a Secrets Manager action other than ListSecrets /
//     GetRandomPassword (which have no resource) on Resource "*", on a secretsmanager ARN whose resource
//     part is "*", or with NotResource.
//   - star-resource: an Allow statement with Resource "*" (or NotResource) granting any action that has
//     resource-level permissions; only the actions in ResourcelessActions may have "*".
//   - web-identity-trust: a role whose trust policy allows sts:AssumeRoleWithWebIdentity without
//     StringEquals conditions on both <issuer>:aud and <issuer>:sub, with exact (wildcard-free) values.
package policycheck

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Rule names.
const (
	RuleWildcardAction     = "wildcard-action"
	RuleSecretsWriteOnStar = "secrets-write-on-star"
	RuleStarResource       = "star-resource"
	RuleWebIdentityTrust   = "web-identity-trust"
)

// ResourcelessActions are the actions keyferry uses that have no resource type: IAM only accepts
// Resource "*" for them.
var ResourcelessActions = []string{
	"secretsmanager:ListSecrets", "secretsmanager:GetRandomPassword",
	"ssm:DescribeParameters",
	"sts:GetWebIdentityToken",
	"acm:ListCertificates",
}

// Finding is one grant a rule refuses.
type Finding struct {
	Rule     string // one of the Rule* constants
	Resource string // the template's logical id
	Path     string // where the statement is, e.g. Properties.PolicyDocument.Statement[2]
	Detail   string
}

func (f Finding) String() string {
	return fmt.Sprintf("%s: %s %s: %s", f.Rule, f.Resource, f.Path, f.Detail)
}

// Template is a parsed CloudFormation template.
type Template struct {
	Resources map[string]struct {
		Type       string         `json:"Type"`
		Properties map[string]any `json:"Properties"`
	} `json:"Resources"`
}

// Parse reads a CloudFormation template in JSON.
func Parse(data []byte) (*Template, error) {
	var t Template
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, fmt.Errorf("policycheck: not a JSON CloudFormation template: %w", err)
	}
	if t.Resources == nil {
		return nil, fmt.Errorf("policycheck: the template has no Resources")
	}
	return &t, nil
}

// Check runs every rule.
func Check(t *Template) []Finding {
	var out []Finding
	out = append(out, WildcardActions(t)...)
	out = append(out, SecretsWriteOnStar(t)...)
	out = append(out, StarResources(t)...)
	out = append(out, WebIdentityTrust(t)...)
	return out
}

// statement is one policy statement found in the template.
type statement struct {
	resource, path string
	trust          bool // in a role's AssumeRolePolicyDocument
	s              map[string]any
}

func (st statement) allow() bool { return st.s["Effect"] == "Allow" }

func (st statement) finding(rule, format string, args ...any) Finding {
	return Finding{Rule: rule, Resource: st.resource, Path: st.path, Detail: fmt.Sprintf(format, args...)}
}

// statements walks every resource's properties for policy documents (anything with a "Statement" list):
// IAM policies, managed policies, role inline policies and trust policies, resource policies.
func (t *Template) statements() []statement {
	ids := make([]string, 0, len(t.Resources))
	for id := range t.Resources {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var out []statement
	for _, id := range ids {
		var walk func(v any, path string)
		walk = func(v any, path string) {
			switch v := v.(type) {
			case map[string]any:
				if sts, ok := v["Statement"]; ok {
					list, isList := sts.([]any)
					if !isList {
						list = []any{sts}
					}
					for i, s := range list {
						if m, ok := s.(map[string]any); ok {
							out = append(out, statement{resource: id, path: fmt.Sprintf("%s.Statement[%d]", path, i),
								trust: strings.Contains(path, "AssumeRolePolicyDocument"), s: m})
						}
					}
					return
				}
				keys := make([]string, 0, len(v))
				for k := range v {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					walk(v[k], path+"."+k)
				}
			case []any:
				for i, e := range v {
					walk(e, fmt.Sprintf("%s[%d]", path, i))
				}
			}
		}
		walk(t.Resources[id].Properties, "Properties")
	}
	return out
}

// strs returns the literal strings of an Action/Resource value (a string or a list); intrinsic functions
// (Fn::Join…) are rendered with their literal parts, {"Ref": "AWS::Partition"} as "aws".
func strs(v any) []string {
	switch v := v.(type) {
	case nil:
		return nil
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			out = append(out, strs(e)...)
		}
		return out
	case map[string]any:
		return []string{Render(v)}
	}
	return []string{fmt.Sprint(v)}
}

// Render turns a CloudFormation value into text: literals as they are, Fn::Join joined, pseudo parameters
// as the values they take in the commercial partition, other references as {Ref:X} / {GetAtt:X.Y}.
func Render(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = Render(e)
		}
		return strings.Join(parts, ",")
	case map[string]any:
		if j, ok := v["Fn::Join"].([]any); ok && len(j) == 2 {
			sep, _ := j[0].(string)
			items, _ := j[1].([]any)
			parts := make([]string, len(items))
			for i, e := range items {
				parts[i] = Render(e)
			}
			return strings.Join(parts, sep)
		}
		if r, ok := v["Ref"].(string); ok {
			switch r {
			case "AWS::Partition":
				return "aws"
			case "AWS::URLSuffix":
				return "amazonaws.com"
			}
			return "{Ref:" + r + "}"
		}
		if g, ok := v["Fn::GetAtt"].([]any); ok {
			return "{GetAtt:" + Render(g) + "}"
		}
		b, _ := json.Marshal(v)
		return string(b)
	}
	return fmt.Sprint(v)
}

// WildcardActions reports Allow statements with a wildcard in an action, or NotAction.
func WildcardActions(t *Template) []Finding {
	var out []Finding
	for _, st := range t.statements() {
		if !st.allow() {
			continue // a Deny may be broad (the DLQ's "deny sqs:* without TLS")
		}
		if _, ok := st.s["NotAction"]; ok {
			out = append(out, st.finding(RuleWildcardAction, "Allow with NotAction grants every other action"))
		}
		for _, a := range strs(st.s["Action"]) {
			if strings.Contains(a, "*") {
				out = append(out, st.finding(RuleWildcardAction, "action %q is a wildcard: list the actions", a))
			}
		}
	}
	return out
}

// smAllResources is a secretsmanager ARN whose resource part is "*" (every secret of a region).
var smAllResources = regexp.MustCompile(`^arn:[^:]*:secretsmanager:[^:]*:[^:]*:\*$`)

func starResource(st statement) (string, bool) {
	if _, ok := st.s["NotResource"]; ok {
		return "NotResource", true
	}
	for _, r := range strs(st.s["Resource"]) {
		if r == "*" {
			return `Resource "*"`, true
		}
	}
	return "", false
}

// SecretsWriteOnStar reports Secrets Manager actions (other than the list calls) on every secret.
func SecretsWriteOnStar(t *Template) []Finding {
	var out []Finding
	for _, st := range t.statements() {
		if !st.allow() || st.trust {
			continue
		}
		var sm []string
		for _, a := range strs(st.s["Action"]) {
			la := strings.ToLower(a)
			if la == "*" || strings.HasPrefix(la, "secretsmanager:") && la != "secretsmanager:listsecrets" && la != "secretsmanager:getrandompassword" {
				sm = append(sm, a)
			}
		}
		if _, ok := st.s["NotAction"]; ok {
			sm = append(sm, "NotAction")
		}
		if len(sm) == 0 {
			continue
		}
		where, star := starResource(st)
		if !star {
			for _, r := range strs(st.s["Resource"]) {
				if smAllResources.MatchString(r) {
					where, star = fmt.Sprintf("resource %q", r), true
				}
			}
		}
		if star {
			out = append(out, st.finding(RuleSecretsWriteOnStar, "%s on %s: scope Secrets Manager actions to arn:…:secret:PREFIX*",
				strings.Join(sm, ", "), where))
		}
	}
	return out
}

// StarResources reports Resource "*" on any action that has resource-level permissions.
func StarResources(t *Template) []Finding {
	var out []Finding
	for _, st := range t.statements() {
		if !st.allow() || st.trust {
			continue
		}
		where, star := starResource(st)
		if !star {
			continue
		}
		var bad []string
		for _, a := range strs(st.s["Action"]) {
			if !slices.ContainsFunc(ResourcelessActions, func(r string) bool { return strings.EqualFold(r, a) }) {
				bad = append(bad, a)
			}
		}
		if _, ok := st.s["NotAction"]; ok {
			bad = append(bad, "NotAction")
		}
		if len(bad) > 0 {
			out = append(out, st.finding(RuleStarResource, "%s on %s: only %s may have Resource \"*\"",
				strings.Join(bad, ", "), where, strings.Join(ResourcelessActions, ", ")))
		}
	}
	return out
}

// WebIdentityTrust reports web-identity trust statements lacking exact aud and sub conditions.
func WebIdentityTrust(t *Template) []Finding {
	var out []Finding
	for _, st := range t.statements() {
		if !st.trust || !st.allow() {
			continue
		}
		web := false
		for _, a := range strs(st.s["Action"]) {
			if strings.EqualFold(a, "sts:AssumeRoleWithWebIdentity") || a == "*" || strings.EqualFold(a, "sts:*") {
				web = true
			}
		}
		if !web {
			continue
		}
		cond, _ := st.s["Condition"].(map[string]any)
		equals, _ := cond["StringEquals"].(map[string]any)
		issuers := map[string][]string{} // issuer → claims conditioned
		for k, v := range equals {
			i := strings.LastIndex(k, ":")
			if i <= 0 {
				continue
			}
			issuer, claim := k[:i], k[i+1:]
			vals := strs(v)
			if len(vals) == 0 {
				out = append(out, st.finding(RuleWebIdentityTrust, "condition %s has no value", k))
				continue
			}
			exact := true
			for _, val := range vals {
				if val == "" || strings.ContainsAny(val, "*?") {
					out = append(out, st.finding(RuleWebIdentityTrust, "condition %s = %q is not an exact value", k, val))
					exact = false
				}
			}
			if exact {
				issuers[issuer] = append(issuers[issuer], claim)
			}
		}
		ok := false
		for _, claims := range issuers {
			if slices.Contains(claims, "aud") && slices.Contains(claims, "sub") {
				ok = true
			}
		}
		if !ok {
			out = append(out, st.finding(RuleWebIdentityTrust,
				"sts:AssumeRoleWithWebIdentity without StringEquals on both <issuer>:aud and <issuer>:sub: any identity of the issuer (or any audience) could assume the role"))
		}
	}
	return out
}
