package main

import (
	"encoding/json"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"

	"github.com/keyferry/keyferry/infra/cdk/policycheck"
)

func TestMain(m *testing.M) {
	code := m.Run()
	jsii.Close()
	os.Exit(code)
}

// synth builds the stack in-process and returns its template (assertions.Template_FromStack).
func synth(t *testing.T, ctx map[string]string) (*policycheck.Template, map[string]any) {
	t.Helper()
	s, err := LoadSettings(mapContext(ctx), ".")
	if err != nil {
		t.Fatal(err)
	}
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())})
	return render(t, NewKeyferryStack(app, s))
}

// render returns a stack's template (assertions.Template_FromStack), parsed for the checks and as a map.
func render(t *testing.T, stack awscdk.Stack) (*policycheck.Template, map[string]any) {
	t.Helper()
	raw, err := json.Marshal(assertions.Template_FromStack(stack, nil).ToJSON())
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := policycheck.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	var full map[string]any
	if err := json.Unmarshal(raw, &full); err != nil {
		t.Fatal(err)
	}
	return tmpl, full
}

// resources returns the template's resources of one type, by logical id.
func resources(full map[string]any, typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range full["Resources"].(map[string]any) {
		r := r.(map[string]any)
		if r["Type"] == typ {
			props, _ := r["Properties"].(map[string]any)
			out[id] = props
		}
	}
	return out
}

func one(t *testing.T, full map[string]any, typ, idPrefix string) map[string]any {
	t.Helper()
	for id, p := range resources(full, typ) {
		if strings.HasPrefix(id, idPrefix) {
			return p
		}
	}
	t.Fatalf("no %s %s* in the template", typ, idPrefix)
	return nil
}

func get(v any, path ...any) any {
	for _, p := range path {
		switch p := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[p]
		case int:
			l, _ := v.([]any)
			if p >= len(l) {
				return nil
			}
			v = l[p]
		}
	}
	return v
}

func rendered(v any) []string {
	var out []string
	if l, ok := v.([]any); ok {
		for _, e := range l {
			out = append(out, policycheck.Render(e))
		}
	} else if v != nil {
		out = append(out, policycheck.Render(v))
	}
	sort.Strings(out)
	return out
}

// TestExampleStack builds testdata/keyferry.yaml's stack and checks what it creates, and that every
// least-privilege check passes on it.
func TestExampleStack(t *testing.T) {
	tmpl, full := synth(t, exampleContext(t))

	t.Run("LeastPrivilege", func(t *testing.T) {
		for _, f := range policycheck.Check(tmpl) {
			t.Error(f)
		}
		// Each check individually, as the bad fixtures exercise them.
		if n := len(policycheck.WildcardActions(tmpl)) + len(policycheck.SecretsWriteOnStar(tmpl)) +
			len(policycheck.StarResources(tmpl)) + len(policycheck.WebIdentityTrust(tmpl)); n != 0 {
			t.Errorf("%d findings", n)
		}
	})

	t.Run("SecretsManagerScopedToPrefixes", func(t *testing.T) {
		doc := get(one(t, full, "AWS::IAM::ManagedPolicy", "StoreAccess"), "PolicyDocument", "Statement").([]any)
		got := map[string][]string{}
		for _, st := range doc {
			for _, a := range rendered(get(st, "Action")) {
				got[a] = append(got[a], rendered(get(st, "Resource"))...)
			}
		}
		for _, a := range secretsManagerActions {
			want := []string{
				"arn:aws:secretsmanager:eu-central-1:123456789012:secret:dr/prod/*",
				"arn:aws:secretsmanager:eu-central-1:123456789012:secret:dr/shared/db-*",
				"arn:aws:secretsmanager:eu-west-1:123456789012:secret:apps/app-db*",
				"arn:aws:secretsmanager:eu-west-1:123456789012:secret:certs/api*",
				"arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/*",
				"arn:aws:secretsmanager:eu-west-1:123456789012:secret:shared/db-*",
				"arn:aws:secretsmanager:eu-west-1:123456789012:secret:vault/*",
			}
			sort.Strings(got[a])
			if !slices.Equal(got[a], want) {
				t.Errorf("%s on %q, want %q", a, got[a], want)
			}
		}
		if !slices.Equal(got["secretsmanager:ListSecrets"], []string{"*"}) {
			t.Errorf("ListSecrets on %v", got["secretsmanager:ListSecrets"])
		}
	})

	t.Run("Function", func(t *testing.T) {
		fn := one(t, full, "AWS::Lambda::Function", "Function")
		cfgYAML, _ := os.ReadFile("testdata/keyferry.yaml")
		checks := map[string][2]any{
			"runtime":      {get(fn, "Runtime"), "provided.al2023"},
			"architecture": {get(fn, "Architectures", 0), "arm64"},
			"handler":      {get(fn, "Handler"), "bootstrap"},
			"memory":       {get(fn, "MemorySize"), 256.0},
			"timeout":      {get(fn, "Timeout"), 300.0},
			"concurrency":  {get(fn, "ReservedConcurrentExecutions"), 10.0},
			"config":       {get(fn, "Environment", "Variables", "KEYFERRY_CONFIG_YAML"), string(cfgYAML)},
			"tracing":      {get(fn, "TracingConfig"), nil},
		}
		for what, c := range checks {
			if c[0] != c[1] {
				t.Errorf("%s: %v, want %v", what, c[0], c[1])
			}
		}
		if lg := one(t, full, "AWS::Logs::LogGroup", "FunctionLogs"); get(lg, "RetentionInDays") != 30.0 {
			t.Errorf("log retention %v", get(lg, "RetentionInDays"))
		}
		// Secrets Manager may invoke the function only from this account and only for the secrets a rotation
		// policy covers (prod/db/* of aws-prod).
		if perms := secretsManagerInvokes(full); len(perms) != 1 {
			t.Errorf("%d Lambda permissions for Secrets Manager, want 1 (the rotation policy on aws-prod): %v", len(perms), perms)
		}
		perm := one(t, full, "AWS::Lambda::Permission", "FunctionSecretsManagerRotation0")
		if get(perm, "Principal") != "secretsmanager.amazonaws.com" || get(perm, "Action") != "lambda:InvokeFunction" || get(perm, "SourceAccount") != "123456789012" ||
			policycheck.Render(get(perm, "SourceArn")) != "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db/*" {
			t.Errorf("rotation permission %v", perm)
		}
		// The role has no AWS managed policy (AWSLambdaBasicExecutionRole grants logs on "*").
		role := one(t, full, "AWS::IAM::Role", "FunctionRole")
		if arns := rendered(get(role, "ManagedPolicyArns")); len(arns) != 1 || !strings.Contains(arns[0], "StoreAccess") {
			t.Errorf("function role managed policies %v", arns)
		}
	})

	t.Run("Events", func(t *testing.T) {
		rules := resources(full, "AWS::Events::Rule")
		if len(rules) != 7 {
			t.Errorf("%d rules, want 7", len(rules))
		}
		patterns := map[string]bool{}
		for id, r := range rules {
			target := get(r, "Targets", 0)
			if get(target, "DeadLetterConfig", "Arn") == nil || get(target, "RetryPolicy", "MaximumRetryAttempts") != 8.0 {
				t.Errorf("rule %s: target without dead-letter queue or retry policy: %v", id, target)
			}
			if p := get(r, "EventPattern"); p != nil {
				patterns[policycheck.Render(get(p, "source", 0))+"|"+policycheck.Render(get(p, "detail-type", 0))] = true
			}
			switch {
			case strings.HasPrefix(id, "SecretsManagerApiCalls"):
				if got := rendered(get(r, "EventPattern", "detail", "eventName")); !slices.Equal(got, []string{"CreateSecret", "DeleteSecret", "PutSecretValue", "RestoreSecret", "UpdateSecret", "UpdateSecretVersionStage"}) {
					t.Errorf("CloudTrail event names %v", got)
				}
			case strings.HasPrefix(id, "Sweep"):
				if get(r, "ScheduleExpression") != "rate(15 minutes)" || get(target, "Input") != `{"job":"sweep"}` {
					t.Errorf("sweep rule %v", r)
				}
			case strings.HasPrefix(id, "DeepSweep"):
				if !strings.HasPrefix(get(r, "ScheduleExpression").(string), "cron(") || get(target, "Input") != `{"job":"deep-sweep"}` {
					t.Errorf("deep sweep rule %v", r)
				}
			case strings.HasPrefix(id, "Renew"):
				// core/event.DecodeAWS reads {"job": …} as the scheduler input naming the job.
				if get(r, "ScheduleExpression") != "rate(6 hours)" || get(target, "Input") != `{"job":"renew"}` {
					t.Errorf("renew rule %v", r)
				}
				patterns["renew"] = true
			}
		}
		for _, want := range []string{"aws.secretsmanager|AWS API Call via CloudTrail", "aws.secretsmanager|Secret Label Updated",
			"aws.secretsmanager|AWS Service Event via CloudTrail", "aws.ssm|Parameter Store Change", "renew"} {
			if !patterns[want] {
				t.Errorf("no rule for %s (have %v)", want, patterns)
			}
		}
	})

	t.Run("Alarms", func(t *testing.T) {
		got := map[string]bool{}
		for _, a := range resources(full, "AWS::CloudWatch::Alarm") {
			if get(a, "Threshold") != 0.0 || get(a, "ComparisonOperator") != "GreaterThanThreshold" || get(a, "Period") != 300.0 {
				t.Errorf("alarm %v", a)
			}
			got[get(a, "Namespace").(string)+"/"+get(a, "MetricName").(string)] = true
		}
		for _, want := range []string{"AWS/Lambda/Errors", "AWS/Lambda/Throttles", "AWS/SQS/ApproximateNumberOfMessagesVisible"} {
			if !got[want] {
				t.Errorf("no alarm on %s (have %v)", want, got)
			}
		}
	})

	t.Run("Trust", func(t *testing.T) {
		oidc := resources(full, "AWS::IAM::OIDCProvider")
		if len(oidc) != 1 {
			t.Fatalf("%d OIDC providers, want 1 (Entra; Google is IAM's built-in accounts.google.com)", len(oidc))
		}
		for _, p := range oidc {
			if get(p, "Url") != "https://sts.windows.net/11111111-2222-3333-4444-555555555555/" || !slices.Equal(rendered(get(p, "ClientIdList")), []string{"api://aws-federation"}) {
				t.Errorf("Entra provider %v", p)
			}
		}
		azure := get(one(t, full, "AWS::IAM::Role", "AzureFunctionRole"), "AssumeRolePolicyDocument", "Statement", 0, "Condition", "StringEquals")
		wantAzure := map[string]any{
			"sts.windows.net/11111111-2222-3333-4444-555555555555/:aud": "api://aws-federation",
			"sts.windows.net/11111111-2222-3333-4444-555555555555/:sub": "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
		}
		if b1, b2 := jsonOf(azure), jsonOf(wantAzure); b1 != b2 {
			t.Errorf("Azure trust conditions %s, want %s", b1, b2)
		}
		gcp := get(one(t, full, "AWS::IAM::Role", "GcpFunctionRole"), "AssumeRolePolicyDocument", "Statement", 0)
		if get(gcp, "Principal", "Federated") != "accounts.google.com" || get(gcp, "Condition", "StringEquals", "accounts.google.com:sub") != "112233445566778899001" ||
			get(gcp, "Condition", "StringEquals", "accounts.google.com:aud") != "112233445566778899001" ||
			get(gcp, "Condition", "StringEquals", "accounts.google.com:oaud") != "sts.amazonaws.com" {
			t.Errorf("GCP trust %v", gcp)
		}
		outputs, _ := full["Outputs"].(map[string]any)
		for _, o := range []string{"FunctionName", "AzureRoleArn", "GcpRoleArn"} {
			if outputs[o] == nil {
				t.Errorf("no output %s", o)
			}
		}
	})
}

// secretsManagerInvokes are the Lambda permissions letting Secrets Manager invoke the function.
func secretsManagerInvokes(full map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, p := range resources(full, "AWS::Lambda::Permission") {
		if get(p, "Principal") == "secretsmanager.amazonaws.com" {
			out[id] = p
		}
	}
	return out
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestMinimalStack: a configuration with only Secrets Manager and no other cloud builds no Parameter
// Store rule, no trust roles, and the GCP variant with an IAM OIDC provider keeps aud and sub.
func TestMinimalStack(t *testing.T) {
	dir := t.TempDir()
	cfg := dir + "/keyferry.yaml"
	if err := os.WriteFile(cfg, []byte(`
stores:
  a: {type: aws-secretsmanager, region: us-east-1}
  b: {type: aws-secretsmanager, region: us-east-1}
  g: {type: gcp-secretmanager, project: kf-prod}
replicate:
  - {name: ab, from: {store: a, match: ["app/*"]}, to: [{store: b, name: "copy/{{ .Name }}"}, g]}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tmpl, full := synth(t, map[string]string{ctxConfig: cfg, ctxAssetDir: fakeAsset(t), ctxGCPServiceAccountID: "112233445566778899001",
		ctxGCPFederation: "oidc-provider", ctxReservedConcurrency: "0", ctxLogRetentionDays: "7"})
	for _, f := range policycheck.Check(tmpl) {
		t.Error(f)
	}
	if n := len(resources(full, "AWS::Events::Rule")); n != 5 {
		t.Errorf("%d rules, want 5 (no Parameter Store rule, no renew rule without certificates)", n)
	}
	if perms := secretsManagerInvokes(full); len(perms) != 0 {
		t.Errorf("Lambda permissions for Secrets Manager %v, want none (no rotation policy: Secrets Manager may not invoke the function)", perms)
	}
	if n := len(resources(full, "AWS::IAM::Role")); n != 2 {
		t.Errorf("%d roles, want 2 (function, GCP)", n)
	}
	oidc := resources(full, "AWS::IAM::OIDCProvider")
	if len(oidc) != 1 {
		t.Fatalf("%d OIDC providers, want 1 (Google)", len(oidc))
	}
	gcp := get(one(t, full, "AWS::IAM::Role", "GcpFunctionRole"), "AssumeRolePolicyDocument", "Statement", 0)
	if get(gcp, "Condition", "StringEquals", "accounts.google.com:aud") != "sts.amazonaws.com" ||
		get(gcp, "Condition", "StringEquals", "accounts.google.com:sub") != "112233445566778899001" {
		t.Errorf("GCP trust with an IAM OIDC provider %v", gcp)
	}
	fn := one(t, full, "AWS::Lambda::Function", "Function")
	if get(fn, "ReservedConcurrentExecutions") != nil {
		t.Errorf("reservedConcurrency=0 reserves %v", get(fn, "ReservedConcurrentExecutions"))
	}
	// Environment-agnostic: the account is the stack's pseudo parameter.
	doc := get(one(t, full, "AWS::IAM::ManagedPolicy", "StoreAccess"), "PolicyDocument", "Statement")
	for i, want := range map[int]string{ // store a (the source), its KMS statement, then store b (the target)
		0: "arn:aws:secretsmanager:us-east-1:{Ref:AWS::AccountId}:secret:app/*",
		2: "arn:aws:secretsmanager:us-east-1:{Ref:AWS::AccountId}:secret:copy/app/*",
	} {
		if got := rendered(get(doc, i, "Resource")); !slices.Equal(got, []string{want}) {
			t.Errorf("statement %d: resources %v, want %v", i, got, want)
		}
	}
}

// TestChecksCatchGrantsInjectedIntoStack shows the checks failing on the real stack, rendered by the CDK,
// once wide grants are added to it: a wildcard action, a Secrets Manager write on "*", and a web-identity
// role trusting a whole issuer.
func TestChecksCatchGrantsInjectedIntoStack(t *testing.T) {
	s, err := LoadSettings(mapContext(exampleContext(t)), ".")
	if err != nil {
		t.Fatal(err)
	}
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())})
	stack := NewKeyferryStack(app, s)
	awsiam.NewManagedPolicy(stack, jsii.String("Injected"), &awsiam.ManagedPolicyProps{Statements: &[]awsiam.PolicyStatement{
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{Actions: jsii.Strings("secretsmanager:*"), Resources: jsii.Strings("*")}),
	}})
	awsiam.NewRole(stack, jsii.String("InjectedRole"), &awsiam.RoleProps{
		AssumedBy: awsiam.NewFederatedPrincipal(jsii.String("accounts.google.com"),
			&map[string]interface{}{"StringEquals": map[string]interface{}{"accounts.google.com:aud": "112233445566778899001"}},
			jsii.String("sts:AssumeRoleWithWebIdentity")),
	})
	tmpl, _ := render(t, stack)
	got := map[string][]string{}
	for _, f := range policycheck.Check(tmpl) {
		got[f.Rule] = append(got[f.Rule], f.Resource)
		t.Log(f)
	}
	for _, rule := range []string{policycheck.RuleWildcardAction, policycheck.RuleSecretsWriteOnStar, policycheck.RuleStarResource, policycheck.RuleWebIdentityTrust} {
		if len(got[rule]) != 1 || !strings.HasPrefix(got[rule][0], "Injected") {
			t.Errorf("%s reported %v, want exactly the injected resource", rule, got[rule])
		}
	}
}
