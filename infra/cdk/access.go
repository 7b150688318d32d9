package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"text/template"
	"text/template/parse"

	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/replicate"
)

// Statement is one IAM policy statement, independent of the CDK so that it can be derived and tested
// without jsii. Effect is always Allow.
type Statement struct {
	Sid        string
	Actions    []string
	Resources  []string
	Conditions map[string]map[string][]string // operator → key → values
}

// Access is what keyferry's identities may do in AWS, derived from keyferry.yaml.
type Access struct {
	// Store are the statements for the stores and notification routes. The function's role and the roles
	// of the other clouds' functions all get them.
	Store []Statement
	// Prefixes are, for each AWS store used by a rule, a rotation policy or a certificate, the name
	// prefixes keyferry may write under.
	Prefixes map[string][]string
	// RotationSources are the ARN patterns of the Secrets Manager secrets the rotation policies rotate:
	// Secrets Manager may invoke the function as their rotation function, for them only.
	RotationSources []string
	// Warnings are grants wider than one would like (a whole store), for the synth output.
	Warnings []string
}

// Actions keyferry's AWS stores call. Only the list calls have no resource-level permissions.
var (
	secretsManagerActions = []string{
		"secretsmanager:CreateSecret", "secretsmanager:PutSecretValue",
		"secretsmanager:UpdateSecretVersionStage", "secretsmanager:TagResource", "secretsmanager:UntagResource",
		"secretsmanager:DeleteSecret", "secretsmanager:RestoreSecret", "secretsmanager:DescribeSecret",
		"secretsmanager:GetSecretValue", "secretsmanager:ListSecretVersionIds",
	}
	secretsManagerListActions = []string{"secretsmanager:ListSecrets"}
	ssmActions                = []string{
		"ssm:GetParameter", "ssm:GetParameterHistory", "ssm:PutParameter", "ssm:DeleteParameter",
		"ssm:AddTagsToResource", "ssm:RemoveTagsFromResource", "ssm:ListTagsForResource",
	}
	ssmListActions = []string{"ssm:DescribeParameters"}
	kmsActions     = []string{"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"}

	// Certificates: ACM imports and the builtin issuer's KMS key.
	acmImportActions = []string{"acm:ImportCertificate", "acm:AddTagsToCertificate"} // ImportCertificate with tags needs both
	acmManageActions = []string{"acm:ImportCertificate", "acm:AddTagsToCertificate", "acm:GetCertificate"}
	acmTagActions    = []string{"acm:ListTagsForCertificate"}
	acmListActions   = []string{"acm:ListCertificates"}
	kmsSignActions   = []string{"kms:Sign", "kms:GetPublicKey"}
)

// acmMarkTag is the tag keyferry marks its ACM certificates with (core/certs.TagKey), value the spec name.
const acmMarkTag = "keyferry-cert"

// DeriveAccess computes the grants keyferry.yaml needs. partition and account may be CDK tokens.
func DeriveAccess(cfg *config.Config, partition, account string) Access {
	acc := Access{Prefixes: map[string][]string{}}
	used := map[string][]string{} // AWS store → raw prefixes
	for _, r := range cfg.Replicate {
		src := cfg.Store(r.From.Store)
		sources := sourcePrefixes(r)
		if isAWS(src) {
			for _, sp := range sources {
				used[src.Name] = append(used[src.Name], sp.prefix)
			}
		}
		for _, t := range r.To {
			ts := cfg.Store(t.Store)
			if !isAWS(ts) {
				continue
			}
			for _, sp := range sources {
				used[ts.Name] = append(used[ts.Name], sanitize(targetPrefix(t, r, sp), ts.Type))
			}
		}
	}

	// Rotation: a policy's primary store, under its match globs (replicas are the rules' targets above).
	rotated := map[string][]string{} // Secrets Manager store → prefixes it rotates
	for _, p := range cfg.Rotate {
		sc := cfg.Store(p.Store)
		if !isAWS(sc) {
			continue
		}
		for _, sp := range sourcePrefixes(replicate.Rule{From: replicate.Source{Match: p.Match}}) {
			used[sc.Name] = append(used[sc.Name], sp.prefix)
			if sc.Type == config.TypeAWSSecretsManager {
				rotated[sc.Name] = append(rotated[sc.Name], sp.prefix)
			}
		}
	}

	// Certificates written as secrets into AWS stores, and ACM targets by region.
	acmSpecs := map[string][]string{} // region → spec names
	if c := cfg.Certificates; c != nil {
		for _, spec := range c.Specs {
			for _, t := range spec.Targets {
				switch t.Kind() {
				case config.TargetStore:
					if sc := cfg.Store(t.Store); isAWS(sc) {
						name := t.Name
						if name == "" {
							name = spec.Name
						}
						used[sc.Name] = append(used[sc.Name], sanitize(name, sc.Type))
					}
				case config.TargetACM:
					acmSpecs[t.ACM.Region] = appendNew(acmSpecs[t.ACM.Region], spec.Name)
				}
			}
		}
	}

	hasSM, hasSSM := false, false
	for _, sc := range cfg.Stores { // file order, for a stable template
		raw, ok := used[sc.Name]
		if !ok {
			continue
		}
		prefixes := minimize(raw)
		acc.Prefixes[sc.Name] = prefixes
		if slices.Contains(prefixes, "") {
			acc.Warnings = append(acc.Warnings, fmt.Sprintf("store %s: a rule selects every name (no match glob, or a target name without a literal prefix), "+
				"so keyferry may write every secret of %s %s; give the rules match globs or target names with a fixed prefix to narrow it", sc.Name, sc.Type, region(sc)))
		}
		var res []string
		switch sc.Type {
		case config.TypeAWSSecretsManager:
			hasSM = true
			for _, p := range prefixes {
				res = append(res, fmt.Sprintf("arn:%s:secretsmanager:%s:%s:secret:%s*", partition, region(sc), account, p))
			}
			acc.Store = append(acc.Store, Statement{Sid: "SecretsManager" + sidPart(sc.Name), Actions: secretsManagerActions, Resources: res})
		case config.TypeAWSSSM:
			hasSSM = true
			for _, p := range prefixes {
				if !strings.HasPrefix(p, "/") {
					p = "/" + p // parameter "a" is parameter/a; parameter "/a/b" is parameter/a/b
				}
				res = append(res, fmt.Sprintf("arn:%s:ssm:%s:%s:parameter%s*", partition, region(sc), account, p))
			}
			acc.Store = append(acc.Store, Statement{Sid: "ParameterStore" + sidPart(sc.Name), Actions: ssmActions, Resources: res})
		}
		acc.Store = append(acc.Store, kmsStatement(sc, partition, account))
	}
	for _, sc := range cfg.Stores {
		for _, p := range minimize(rotated[sc.Name]) {
			acc.RotationSources = append(acc.RotationSources, fmt.Sprintf("arn:%s:secretsmanager:%s:%s:secret:%s*", partition, region(sc), account, p))
		}
	}
	if hasSM {
		acc.Store = append(acc.Store, Statement{Sid: "SecretsManagerList", Actions: secretsManagerListActions, Resources: []string{"*"}})
	}
	if hasSSM {
		acc.Store = append(acc.Store, Statement{Sid: "ParameterStoreList", Actions: ssmListActions, Resources: []string{"*"}})
	}

	// ACM: a new import cannot name its certificate (it has no ARN yet), so it is allowed in the region only
	// with keyferry's mark for one of the specs on the request; re-imports, tags and reads only on
	// certificates already carrying that mark. Finding a spec's certificate reads every certificate's tags.
	regions := make([]string, 0, len(acmSpecs))
	for r := range acmSpecs {
		regions = append(regions, r)
	}
	sort.Strings(regions)
	for _, r := range regions {
		names := acmSpecs[r]
		certs := []string{fmt.Sprintf("arn:%s:acm:%s:%s:certificate/*", partition, r, account)}
		acc.Store = append(acc.Store,
			Statement{Sid: "ACMImportNew" + sidPart(r), Actions: acmImportActions, Resources: certs,
				Conditions: map[string]map[string][]string{"StringEquals": {"aws:RequestTag/" + acmMarkTag: names}}},
			Statement{Sid: "ACMManage" + sidPart(r), Actions: acmManageActions, Resources: certs,
				Conditions: map[string]map[string][]string{"StringEquals": {"aws:ResourceTag/" + acmMarkTag: names}}},
			Statement{Sid: "ACMFindByTag" + sidPart(r), Actions: acmTagActions, Resources: certs})
	}
	if len(regions) > 0 {
		acc.Store = append(acc.Store, Statement{Sid: "ACMList", Actions: acmListActions, Resources: []string{"*"}})
	}
	if c := cfg.Certificates; c != nil && c.Issuer != nil && c.Issuer.Builtin != nil && c.Issuer.Builtin.KMS != nil {
		acc.Store = append(acc.Store, signingKeyStatement(c.Issuer.Builtin.KMS, partition, account))
	}

	// Notification routes.
	var topics, buses []string
	for _, r := range cfg.Notify {
		switch r.Type {
		case config.NotifySNS:
			topics = appendNew(topics, r.Topic)
		case config.NotifyEventBridge:
			bus := r.Bus
			if !strings.HasPrefix(bus, "arn:") {
				bus = fmt.Sprintf("arn:%s:events:%s:%s:event-bus/%s", partition, r.Region, account, bus)
			}
			buses = appendNew(buses, bus)
		}
	}
	if len(topics) > 0 {
		acc.Store = append(acc.Store, Statement{Sid: "NotifySNS", Actions: []string{"sns:Publish"}, Resources: topics})
	}
	if len(buses) > 0 {
		acc.Store = append(acc.Store, Statement{Sid: "NotifyEventBridge", Actions: []string{"events:PutEvents"}, Resources: buses})
	}
	return acc
}

func isAWS(sc *config.StoreConfig) bool {
	return sc != nil && (sc.Type == config.TypeAWSSecretsManager || sc.Type == config.TypeAWSSSM)
}

func region(sc *config.StoreConfig) string {
	switch {
	case sc.AWSSecretsManager != nil:
		return sc.AWSSecretsManager.Region
	case sc.AWSSSM != nil:
		return sc.AWSSSM.Region
	}
	return ""
}

var kmsARN = regexp.MustCompile(`^arn:(aws[a-z-]*):kms:([a-z0-9-]+):([0-9]{12}):(key|alias)/(.+)$`)

// kmsStatement grants the store's KMS key: the key itself when the configuration names it by id or key
// ARN; otherwise (an alias, or the service's AWS managed key) any key of the store's account and region,
// but only through that store's service (kms:ViaService).
func kmsStatement(sc *config.StoreConfig, partition, account string) Statement {
	keyID, svc := "", "secretsmanager"
	if sc.AWSSecretsManager != nil {
		keyID = sc.AWSSecretsManager.KMSKeyID
	} else {
		keyID, svc = sc.AWSSSM.KMSKeyID, "ssm"
	}
	reg, acct := region(sc), account
	st := Statement{Sid: "KMS" + sidPart(sc.Name), Actions: kmsActions}
	switch m := kmsARN.FindStringSubmatch(keyID); {
	case m != nil && m[4] == "key":
		st.Resources = []string{keyID}
		return st
	case m != nil: // alias ARN
		partition, reg, acct = m[1], m[2], m[3]
	case keyID != "" && !strings.HasPrefix(keyID, "alias/"): // key id or mrk- id
		st.Resources = []string{fmt.Sprintf("arn:%s:kms:%s:%s:key/%s", partition, reg, acct, keyID)}
		return st
	}
	st.Resources = []string{fmt.Sprintf("arn:%s:kms:%s:%s:key/*", partition, reg, acct)}
	st.Conditions = map[string]map[string][]string{"StringEquals": {"kms:ViaService": {fmt.Sprintf("%s.%s.amazonaws.com", svc, reg)}}}
	return st
}

// signingKeyStatement grants the builtin issuer's asymmetric KMS key: Sign and GetPublicKey on that key.
// A key named by an alias is any key of its account and region that carries the alias (kms:ResourceAliases),
// which also covers the signer's later Sign calls by key ARN.
func signingKeyStatement(k *config.KMSKey, partition, account string) Statement {
	st := Statement{Sid: "CASigningKey", Actions: kmsSignActions}
	reg, acct, alias := k.Region, account, ""
	switch m := kmsARN.FindStringSubmatch(k.KeyID); {
	case m != nil && m[4] == "key":
		st.Resources = []string{k.KeyID}
		return st
	case m != nil: // alias ARN
		partition, reg, acct, alias = m[1], m[2], m[3], "alias/"+m[5]
	case strings.HasPrefix(k.KeyID, "alias/"):
		alias = k.KeyID
	default: // key id or mrk- id
		st.Resources = []string{fmt.Sprintf("arn:%s:kms:%s:%s:key/%s", partition, reg, acct, k.KeyID)}
		return st
	}
	st.Resources = []string{fmt.Sprintf("arn:%s:kms:%s:%s:key/*", partition, reg, acct)}
	st.Conditions = map[string]map[string][]string{"ForAnyValue:StringEquals": {"kms:ResourceAliases": {alias}}}
	return st
}

// namePrefix is what is known of the names a glob selects: a literal prefix, and whether the glob is
// the name itself.
type namePrefix struct {
	prefix string
	exact  bool
}

// sourcePrefixes are the literal prefixes of a rule's match globs; no glob means every name.
func sourcePrefixes(r replicate.Rule) []namePrefix {
	if len(r.From.Match) == 0 {
		return []namePrefix{{}}
	}
	out := make([]namePrefix, 0, len(r.From.Match))
	for _, g := range r.From.Match {
		if i := strings.IndexAny(g, `*?[]{}\`); i >= 0 {
			out = append(out, namePrefix{prefix: g[:i]})
		} else {
			out = append(out, namePrefix{prefix: g, exact: true})
		}
	}
	return out
}

// targetPrefix is the literal prefix of the names a target's name template produces for the source names
// that sp describes. It follows the template's text and the fields whose value is known while planning
// (.SourceStore, .TargetStore, and .Name/.Base/.Dir of an exact source name); .Name of a glob adds the
// glob's literal prefix and ends the known part; anything else (a function, a condition) ends it.
func targetPrefix(t replicate.Target, r replicate.Rule, sp namePrefix) string {
	text := t.Name
	if text == "" {
		text = replicate.DefaultName
	}
	tmpl, err := template.New("name").Funcs(replicate.NameFuncs).Option("missingkey=error").Parse(text)
	if err != nil || tmpl.Tree == nil {
		return "" // config.Parse accepted it; be safe anyway
	}
	var b strings.Builder
	for _, n := range tmpl.Tree.Root.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			b.Write(n.Text)
			continue
		case *parse.CommentNode:
			continue
		case *parse.ActionNode:
			field := simpleField(n)
			switch {
			case field == "SourceStore":
				b.WriteString(r.From.Store)
				continue
			case field == "TargetStore":
				b.WriteString(t.Store)
				continue
			case field == "Name":
				b.WriteString(sp.prefix)
				if sp.exact {
					continue
				}
			case field == "Dir" && sp.exact:
				if i := strings.LastIndex(sp.prefix, "/"); i >= 0 {
					b.WriteString(sp.prefix[:i])
				}
				continue
			case field == "Base" && sp.exact:
				b.WriteString(sp.prefix[strings.LastIndex(sp.prefix, "/")+1:])
				continue
			case field == "Dir" && strings.Contains(sp.prefix, "/"):
				// The directory of every selected name starts with the source prefix up to its last "/"
				// (or is that directory itself).
				b.WriteString(sp.prefix[:strings.LastIndex(sp.prefix, "/")])
			}
		}
		break // the rest of the name is not known
	}
	return b.String()
}

// simpleField returns X for an action that is exactly {{ .X }}, else "".
func simpleField(n *parse.ActionNode) string {
	if n.Pipe == nil || len(n.Pipe.Decl) > 0 || len(n.Pipe.Cmds) != 1 || len(n.Pipe.Cmds[0].Args) != 1 {
		return ""
	}
	if f, ok := n.Pipe.Cmds[0].Args[0].(*parse.FieldNode); ok && len(f.Ident) == 1 {
		return f.Ident[0]
	}
	return ""
}

// Characters each AWS store holds in a name as they are; keyferry maps any other to "-" (replicate.TargetName).
var (
	smNameChars  = regexp.MustCompile(`^[A-Za-z0-9/_+=.@-]*`)
	ssmNameChars = regexp.MustCompile(`^[A-Za-z0-9/_.-]*`)
)

// sanitize cuts a target prefix where keyferry's name mapping could change it, so that the names keyferry
// writes still start with it: at the first character the store cannot hold, inside a run of "-" (runs
// collapse), and, for Parameter Store, at a "/" of a name that does not start with one (such a "/" is
// mapped). A prefix that would be trimmed (a leading "-") becomes empty. The cut only ever widens a grant.
func sanitize(p, storeType string) string {
	chars := smNameChars
	if storeType == config.TypeAWSSSM {
		chars = ssmNameChars
	}
	p = chars.FindString(p)
	if i := strings.Index(p, "--"); i >= 0 {
		p = p[:i+1]
	}
	if storeType == config.TypeAWSSSM && !strings.HasPrefix(p, "/") {
		if i := strings.Index(p, "/"); i >= 0 {
			p = p[:i]
		}
	}
	if strings.HasPrefix(p, "-") {
		return ""
	}
	return p
}

// minimize sorts prefixes and drops every one already covered by a shorter one.
func minimize(ps []string) []string {
	ps = slices.Clone(ps)
	sort.Strings(ps)
	var out []string
	for _, p := range ps {
		if len(out) > 0 && strings.HasPrefix(p, out[len(out)-1]) {
			continue
		}
		out = append(out, p)
	}
	return out
}

func appendNew(list []string, v string) []string {
	if slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}

// sidPart turns a store name (a-z0-9-) into the alphanumeric part of a statement id.
func sidPart(name string) string {
	var b strings.Builder
	up := true
	for _, r := range name {
		switch {
		case r == '-':
			up = true
		case up && r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
			up = false
		default:
			b.WriteRune(r)
			up = false
		}
	}
	return b.String()
}

// ManagedPolicyLimit is IAM's limit on a managed policy document, in characters not counting whitespace.
const ManagedPolicyLimit = 6144

// PolicySize is the size of statements as an IAM policy document without whitespace, as IAM counts it,
// rendered for the commercial partition and a 12-digit account.
func PolicySize(cfg *config.Config) int {
	acc := DeriveAccess(cfg, "aws", "123456789012")
	var doc []map[string]any
	for _, st := range acc.Store {
		m := map[string]any{"Sid": st.Sid, "Effect": "Allow", "Action": st.Actions, "Resource": st.Resources}
		if st.Conditions != nil {
			m["Condition"] = st.Conditions
		}
		doc = append(doc, m)
	}
	b, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": doc})
	return len(b)
}
