package main

import (
	"fmt"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/jsii-runtime-go"

	"github.com/keyferry/keyferry/core/config"
)

// The Secrets Manager API calls whose CloudTrail events wake the function, and the service events
// (rotation, scheduled version deletion) that change a secret too. core/event decodes both.
var (
	secretWriteEvents   = []string{"CreateSecret", "PutSecretValue", "UpdateSecret", "UpdateSecretVersionStage", "DeleteSecret", "RestoreSecret"}
	secretServiceEvents = []string{"RotationSucceeded", "CancelSecretVersionDelete", "EndSecretVersionDelete"}
)

// Fixed operational settings (README.md, "What it creates").
const (
	memoryMB          = 256
	timeoutMinutes    = 5
	sweepEveryMinutes = 15
	targetRetries     = 8 // EventBridge → Lambda delivery attempts before the DLQ
	targetMaxAgeHours = 2
	dlqRetentionDays  = 14
)

var retentionEnum = map[int]awslogs.RetentionDays{
	1: awslogs.RetentionDays_ONE_DAY, 3: awslogs.RetentionDays_THREE_DAYS, 5: awslogs.RetentionDays_FIVE_DAYS,
	7: awslogs.RetentionDays_ONE_WEEK, 14: awslogs.RetentionDays_TWO_WEEKS, 30: awslogs.RetentionDays_ONE_MONTH,
	60: awslogs.RetentionDays_TWO_MONTHS, 90: awslogs.RetentionDays_THREE_MONTHS, 120: awslogs.RetentionDays_FOUR_MONTHS,
	150: awslogs.RetentionDays_FIVE_MONTHS, 180: awslogs.RetentionDays_SIX_MONTHS, 365: awslogs.RetentionDays_ONE_YEAR,
	400: awslogs.RetentionDays_THIRTEEN_MONTHS, 545: awslogs.RetentionDays_EIGHTEEN_MONTHS, 731: awslogs.RetentionDays_TWO_YEARS,
	1096: awslogs.RetentionDays_THREE_YEARS, 1827: awslogs.RetentionDays_FIVE_YEARS, 2192: awslogs.RetentionDays_SIX_YEARS,
	2557: awslogs.RetentionDays_SEVEN_YEARS, 2922: awslogs.RetentionDays_EIGHT_YEARS, 3288: awslogs.RetentionDays_NINE_YEARS,
	3653: awslogs.RetentionDays_TEN_YEARS,
}

// NewKeyferryStack builds keyferry's AWS side from validated settings.
func NewKeyferryStack(scope awscdk.App, s *Settings) awscdk.Stack {
	props := &awscdk.StackProps{Description: jsii.String("keyferry: keeps secrets consistent across AWS, Azure, GCP and Vault")}
	if s.Account != "" || s.Region != "" {
		props.Env = &awscdk.Environment{}
		if s.Account != "" {
			props.Env.Account = jsii.String(s.Account)
		}
		if s.Region != "" {
			props.Env.Region = jsii.String(s.Region)
		}
	}
	stack := awscdk.NewStack(scope, jsii.String(s.StackName), props)
	partition, account := *stack.Partition(), *stack.Account()
	access := DeriveAccess(s.Config, partition, account)
	for _, w := range access.Warnings {
		awscdk.Annotations_Of(stack).AddWarningV2(jsii.String("keyferry:wide-grant"), jsii.String(w))
	}
	if !*awscdk.Token_IsUnresolved(stack.Region()) {
		for _, sc := range s.Config.Stores {
			if r := region(sc); r != "" && r != *stack.Region() && (sc.AWSSecretsManager != nil || sc.AWSSSM != nil) {
				awscdk.Annotations_Of(stack).AddWarningV2(jsii.String("keyferry:other-region"), jsii.String(fmt.Sprintf(
					"store %s is in %s, not in the stack's region %s: its change events do not reach this stack's rules (the sweep still covers it); deploy the rules there or forward the events",
					sc.Name, r, *stack.Region())))
			}
		}
	}

	// Store access, shared by the function's role and the roles of the other clouds' functions.
	storePolicy := awsiam.NewManagedPolicy(stack, jsii.String("StoreAccess"), &awsiam.ManagedPolicyProps{
		Description: jsii.String("keyferry: the AWS stores and notification routes of keyferry.yaml, least privilege"),
		Statements:  toStatements(access.Store),
	})

	// The function.
	role := awsiam.NewRole(stack, jsii.String("FunctionRole"), &awsiam.RoleProps{
		AssumedBy:       awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Description:     jsii.String("keyferry Lambda function"),
		ManagedPolicies: &[]awsiam.IManagedPolicy{storePolicy},
	})
	// Outbound identity federation: the function signs its own JWTs for Azure, GCP and Vault. The action
	// has no resource type.
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid: jsii.String("OutboundFederation"), Actions: jsii.Strings("sts:GetWebIdentityToken"), Resources: jsii.Strings("*"),
	}))
	logGroup := awslogs.NewLogGroup(stack, jsii.String("FunctionLogs"), &awslogs.LogGroupProps{
		Retention:     retentionEnum[s.LogRetentionDays],
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	logGroup.GrantWrite(role)

	dlq := awssqs.NewQueue(stack, jsii.String("DeadLetters"), &awssqs.QueueProps{
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(dlqRetentionDays)),
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:      jsii.Bool(true),
	})

	fnProps := &awslambda.FunctionProps{
		Runtime:         awslambda.Runtime_PROVIDED_AL2023(),
		Architecture:    awslambda.Architecture_ARM_64(),
		Handler:         jsii.String("bootstrap"),
		Code:            awslambda.Code_FromAsset(jsii.String(s.AssetDir), nil),
		Description:     jsii.String("keyferry: replicates and rotates secrets on Secrets Manager and Parameter Store changes and on schedules, renews certificates"),
		MemorySize:      jsii.Number(memoryMB),
		Timeout:         awscdk.Duration_Minutes(jsii.Number(timeoutMinutes)),
		Role:            role,
		LogGroup:        logGroup,
		Tracing:         awslambda.Tracing_DISABLED,
		Environment:     &map[string]*string{"KEYFERRY_CONFIG_YAML": jsii.String(s.ConfigYAML)},
		RetryAttempts:   jsii.Number(2),
		MaxEventAge:     awscdk.Duration_Hours(jsii.Number(6)),
		DeadLetterQueue: dlq, // asynchronous invocations that still fail after Lambda's own retries
	}
	if s.ReservedConcurrency > 0 {
		fnProps.ReservedConcurrentExecutions = jsii.Number(s.ReservedConcurrency)
	}
	fn := awslambda.NewFunction(stack, jsii.String("Function"), fnProps)

	// Secrets Manager may invoke the function as the rotation function of the secrets the rotation
	// policies cover: from this account, for those secrets only (one permission per name prefix). Without
	// a rotation policy on a Secrets Manager store, Secrets Manager may not invoke it at all.
	for i, arn := range access.RotationSources {
		fn.AddPermission(jsii.String(fmt.Sprintf("SecretsManagerRotation%d", i)), &awslambda.Permission{
			Principal:     awsiam.NewServicePrincipal(jsii.String("secretsmanager.amazonaws.com"), nil),
			Action:        jsii.String("lambda:InvokeFunction"),
			SourceAccount: stack.Account(),
			SourceArn:     jsii.String(arn),
		})
	}

	// Events.
	target := func(input awsevents.RuleTargetInput) awsevents.IRuleTarget {
		return awseventstargets.NewLambdaFunction(fn, &awseventstargets.LambdaFunctionProps{
			DeadLetterQueue: dlq,
			RetryAttempts:   jsii.Number(targetRetries),
			MaxEventAge:     awscdk.Duration_Hours(jsii.Number(targetMaxAgeHours)),
			Event:           input,
		})
	}
	rule := func(id, description string, pattern *awsevents.EventPattern, schedule awsevents.Schedule, input awsevents.RuleTargetInput) {
		awsevents.NewRule(stack, jsii.String(id), &awsevents.RuleProps{
			Description:  jsii.String(description),
			EventPattern: pattern,
			Schedule:     schedule,
			Targets:      &[]awsevents.IRuleTarget{target(input)},
		})
	}
	hasType := func(t string) bool {
		for _, sc := range s.Config.Stores {
			if sc.Type == t {
				return true
			}
		}
		return false
	}
	if hasType(config.TypeAWSSecretsManager) {
		rule("SecretsManagerApiCalls", "keyferry: Secrets Manager writes (CloudTrail)", &awsevents.EventPattern{
			Source:     jsii.Strings("aws.secretsmanager"),
			DetailType: jsii.Strings("AWS API Call via CloudTrail"),
			Detail: &map[string]interface{}{
				"eventSource": []string{"secretsmanager.amazonaws.com"},
				"eventName":   secretWriteEvents,
			},
		}, nil, nil)
		rule("SecretsManagerServiceEvents", "keyferry: Secrets Manager rotation and version deletion (CloudTrail service events)", &awsevents.EventPattern{
			Source:     jsii.Strings("aws.secretsmanager"),
			DetailType: jsii.Strings("AWS Service Event via CloudTrail"),
			Detail: &map[string]interface{}{
				"eventSource": []string{"secretsmanager.amazonaws.com"},
				"eventName":   secretServiceEvents,
			},
		}, nil, nil)
		rule("SecretLabelUpdated", "keyferry: Secrets Manager staging labels moved", &awsevents.EventPattern{
			Source:     jsii.Strings("aws.secretsmanager"),
			DetailType: jsii.Strings("Secret Label Updated"),
		}, nil, nil)
	}
	if hasType(config.TypeAWSSSM) {
		rule("ParameterStoreChange", "keyferry: Parameter Store changes", &awsevents.EventPattern{
			Source:     jsii.Strings("aws.ssm"),
			DetailType: jsii.Strings("Parameter Store Change"),
		}, nil, nil)
	}
	rule("Sweep", fmt.Sprintf("keyferry: sweep every %d minutes", sweepEveryMinutes), nil,
		awsevents.Schedule_Rate(awscdk.Duration_Minutes(jsii.Number(sweepEveryMinutes))),
		awsevents.RuleTargetInput_FromObject(map[string]string{"job": "sweep"}))
	rule("DeepSweep", "keyferry: daily deep sweep (ignores the synced marks)", nil,
		awsevents.Schedule_Cron(&awsevents.CronOptions{Minute: jsii.String("17"), Hour: jsii.String("3")}),
		awsevents.RuleTargetInput_FromObject(map[string]string{"job": "deep-sweep"}))

	if s.Config.Certificates != nil && len(s.Config.Certificates.Specs) > 0 {
		rule("Renew", "keyferry: renew the certificates of keyferry.yaml that are due", nil,
			awsevents.Schedule_Expression(jsii.String(s.RenewSchedule)),
			awsevents.RuleTargetInput_FromObject(map[string]string{"job": "renew"}))
	}

	// Alarms.
	var alarmAction awscloudwatch.IAlarmAction
	if s.AlarmTopicArn != "" {
		alarmAction = awscloudwatchactions.NewSnsAction(awssns.Topic_FromTopicArn(stack, jsii.String("AlarmTopic"), jsii.String(s.AlarmTopicArn)))
	}
	alarm := func(id, description string, metric awscloudwatch.IMetric) {
		a := awscloudwatch.NewAlarm(stack, jsii.String(id), &awscloudwatch.AlarmProps{
			AlarmDescription:   jsii.String(description),
			Metric:             metric,
			Threshold:          jsii.Number(0),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
			EvaluationPeriods:  jsii.Number(1),
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		})
		if alarmAction != nil {
			a.AddAlarmAction(alarmAction)
		}
	}
	fiveMinutes := awscdk.Duration_Minutes(jsii.Number(5))
	alarm("FunctionErrors", "keyferry: the function failed (see its log group)",
		fn.MetricErrors(&awscloudwatch.MetricOptions{Period: fiveMinutes, Statistic: jsii.String("Sum")}))
	alarm("FunctionThrottles", "keyferry: the function was throttled (reserved concurrency too low?)",
		fn.MetricThrottles(&awscloudwatch.MetricOptions{Period: fiveMinutes, Statistic: jsii.String("Sum")}))
	alarm("DeadLettersVisible", "keyferry: events could not be delivered or processed; they wait in the dead-letter queue",
		dlq.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Period: fiveMinutes, Statistic: jsii.String("Maximum")}))

	awscdk.NewCfnOutput(stack, jsii.String("FunctionName"), &awscdk.CfnOutputProps{
		Value: fn.FunctionName(), Description: jsii.String("keyferry's Lambda function")})
	awscdk.NewCfnOutput(stack, jsii.String("DeadLetterQueueUrl"), &awscdk.CfnOutputProps{
		Value: dlq.QueueUrl(), Description: jsii.String("events that could not be delivered or processed")})

	// Trust for the other clouds' functions.
	if a := s.Azure; a != nil {
		provider := awsiam.NewOidcProviderNative(stack, jsii.String("AzureIssuer"), &awsiam.OidcProviderNativeProps{
			Url:       jsii.String(a.Issuer()),
			ClientIds: jsii.Strings(a.Audience),
		})
		r := webIdentityRole(stack, "AzureFunctionRole", "keyferry's Azure function (Entra managed identity "+a.PrincipalID+")",
			*provider.OidcProviderArn(), strings.TrimPrefix(a.Issuer(), "https://"),
			map[string]string{"aud": a.Audience, "sub": a.PrincipalID}, storePolicy)
		awscdk.NewCfnOutput(stack, jsii.String("AzureRoleArn"), &awscdk.CfnOutputProps{
			Value: r.RoleArn(), Description: jsii.String("role the Azure function assumes with its managed identity's token (AssumeRoleWithWebIdentity)")})
		awscdk.NewCfnOutput(stack, jsii.String("AzureOidcProviderArn"), &awscdk.CfnOutputProps{Value: provider.OidcProviderArn()})
	}
	if g := s.GCP; g != nil {
		federated := "accounts.google.com"
		conditions := map[string]string{
			// With IAM's built-in Google provider, :aud is the token's azp (the service account's unique id
			// for service-account ID tokens) and :oaud the audience requested.
			"aud": g.ServiceAccountID, "oaud": g.Audience, "sub": g.ServiceAccountID,
		}
		if g.OIDCProvider {
			provider := awsiam.NewOidcProviderNative(stack, jsii.String("GoogleIssuer"), &awsiam.OidcProviderNativeProps{
				Url:       jsii.String("https://accounts.google.com"),
				ClientIds: jsii.Strings(g.Audience),
			})
			federated = *provider.OidcProviderArn()
			conditions = map[string]string{"aud": g.Audience, "sub": g.ServiceAccountID}
		}
		r := webIdentityRole(stack, "GcpFunctionRole", "keyferry's GCP function (service account "+g.ServiceAccountID+")",
			federated, "accounts.google.com", conditions, storePolicy)
		awscdk.NewCfnOutput(stack, jsii.String("GcpRoleArn"), &awscdk.CfnOutputProps{
			Value: r.RoleArn(), Description: jsii.String("role the GCP function assumes with its service account's ID token (AssumeRoleWithWebIdentity)")})
	}
	return stack
}

// webIdentityRole is a role assumable only with AssumeRoleWithWebIdentity by one identity: StringEquals on
// <issuer>:aud and <issuer>:sub (and any other claim given).
func webIdentityRole(stack awscdk.Stack, id, description, federated, issuerKey string, claims map[string]string, policy awsiam.IManagedPolicy) awsiam.Role {
	equals := map[string]interface{}{}
	for claim, v := range claims {
		equals[issuerKey+":"+claim] = v
	}
	return awsiam.NewRole(stack, jsii.String(id), &awsiam.RoleProps{
		AssumedBy: awsiam.NewFederatedPrincipal(jsii.String(federated),
			&map[string]interface{}{"StringEquals": equals}, jsii.String("sts:AssumeRoleWithWebIdentity")),
		Description:        jsii.String(description),
		MaxSessionDuration: awscdk.Duration_Hours(jsii.Number(1)),
		ManagedPolicies:    &[]awsiam.IManagedPolicy{policy},
	})
}

func toStatements(sts []Statement) *[]awsiam.PolicyStatement {
	out := make([]awsiam.PolicyStatement, 0, len(sts))
	for _, st := range sts {
		p := &awsiam.PolicyStatementProps{
			Sid:       jsii.String(st.Sid),
			Effect:    awsiam.Effect_ALLOW,
			Actions:   jsii.Strings(st.Actions...),
			Resources: jsii.Strings(st.Resources...),
		}
		if len(st.Conditions) > 0 {
			c := map[string]interface{}{}
			for op, kv := range st.Conditions {
				m := map[string]interface{}{}
				for k, v := range kv {
					m[k] = v
				}
				c[op] = m
			}
			p.Conditions = &c
		}
		out = append(out, awsiam.NewPolicyStatement(p))
	}
	return &out
}
