package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/keyferry/keyferry/core/config"
)

// Context keys the app reads (`cdk deploy -c key=value`, or the "context" of cdk.json).
const (
	ctxConfig              = "config"              // path to keyferry.yaml, relative to infra/cdk (default keyferry.yaml)
	ctxAssetDir            = "lambdaAssetDir"      // directory holding the bootstrap binary (default build/lambda)
	ctxStackName           = "stackName"           // default Keyferry
	ctxAccount             = "account"             // default $CDK_DEFAULT_ACCOUNT
	ctxRegion              = "region"              // default $CDK_DEFAULT_REGION
	ctxLogRetentionDays    = "logRetentionDays"    // default 30
	ctxReservedConcurrency = "reservedConcurrency" // default 10; 0 = do not reserve
	ctxAlarmTopicArn       = "alarmTopicArn"       // optional SNS topic for the alarms
	ctxRenewSchedule       = "renewSchedule"       // default rate(6 hours); used only with certificates:
	ctxAzureTrust          = "azureTrust"          // auto (default) | true | false
	ctxAzureTenantID       = "azureTenantId"
	ctxAzurePrincipalID    = "azurePrincipalId"
	ctxAzureAudience       = "azureAudience"
	ctxAzureTokenVersion   = "azureTokenVersion" // 1 (default: iss https://sts.windows.net/<tenant>/) | 2
	ctxGCPTrust            = "gcpTrust"          // auto (default) | true | false
	ctxGCPServiceAccountID = "gcpServiceAccountId"
	ctxGCPAudience         = "gcpAudience"   // default sts.amazonaws.com
	ctxGCPFederation       = "gcpFederation" // builtin (default) | oidc-provider
)

// Defaults.
const (
	defaultConfig              = "keyferry.yaml"
	defaultAssetDir            = "build/lambda"
	defaultStackName           = "Keyferry"
	defaultLogRetentionDays    = 30
	defaultReservedConcurrency = 10
	defaultGCPAudience         = "sts.amazonaws.com"
	defaultRenewSchedule       = "rate(6 hours)"
	// lambdaEnvLimit is Lambda's limit on the total size of a function's environment variables.
	lambdaEnvLimit = 4096
)

// Settings are everything the stack is built from: keyferry.yaml and the deployment's context values.
type Settings struct {
	StackName           string
	Account, Region     string // "" : environment-agnostic (CloudFormation pseudo parameters)
	Config              *config.Config
	ConfigYAML          string // the file as written, handed to the function as KEYFERRY_CONFIG_YAML
	AssetDir            string // directory with the bootstrap binary
	LogRetentionDays    int
	ReservedConcurrency int // 0 : none
	AlarmTopicArn       string
	RenewSchedule       string      // EventBridge schedule expression of the renew job (rules only with certificates)
	Azure               *AzureTrust // nil : no role for the Azure function
	GCP                 *GCPTrust   // nil : no role for the GCP function
}

// AzureTrust is the Azure function's managed identity, trusted through an IAM OIDC provider for Entra ID.
type AzureTrust struct {
	TenantID     string // directory (tenant) GUID
	PrincipalID  string // object id of the managed identity's service principal: the token's sub (= oid)
	Audience     string // the token's aud: the App ID URI (v1 tokens) or the app's client id (v2 tokens)
	TokenVersion int    // 1 or 2
}

// Issuer is the token issuer URL, which is also the IAM OIDC provider's URL.
func (a AzureTrust) Issuer() string {
	if a.TokenVersion == 2 {
		return "https://login.microsoftonline.com/" + a.TenantID + "/v2.0"
	}
	return "https://sts.windows.net/" + a.TenantID + "/"
}

// GCPTrust is the GCP function's service account, trusted through Google's OIDC issuer.
type GCPTrust struct {
	ServiceAccountID string // the service account's numeric unique id: the ID token's sub (and azp)
	Audience         string // the audience the function requests for its ID token
	// OIDCProvider: create an IAM OIDC provider for https://accounts.google.com instead of using IAM's
	// built-in "accounts.google.com" federated principal.
	OIDCProvider bool
}

var (
	guidPattern      = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	gcpSAIDPattern   = regexp.MustCompile(`^[0-9]{10,30}$`)
	accountPattern   = regexp.MustCompile(`^[0-9]{12}$`)
	regionPattern    = regexp.MustCompile(`^[a-z]{2,4}(-[a-z]+)+-[0-9]{1,2}$`)
	stackNamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,127}$`)
	snsARNPattern    = regexp.MustCompile(`^arn:aws(-[a-z]+)*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$`)
	// EventBridge schedule expressions: rate(1 minute), rate(N minutes|hours|days), cron(6 fields).
	ratePattern = regexp.MustCompile(`^rate\((1 (minute|hour|day)|[1-9][0-9]* (minutes|hours|days))\)$`)
	cronPattern = regexp.MustCompile(`^cron\(\S+( \S+){5}\)$`)
)

// retentionDays are the values CloudWatch Logs accepts.
var retentionDays = []int{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}

// Context reads one context value; ok is false when it is not set.
type Context func(key string) (value string, ok bool)

// SettingsError lists every problem with the context values and the configuration.
type SettingsError []string

func (e SettingsError) Error() string {
	return "keyferry CDK app: cannot build the stack:\n  - " + strings.Join(e, "\n  - ")
}

// LoadSettings reads the context, loads keyferry.yaml and checks everything, reporting every problem at once.
// baseDir is the directory relative paths in the context are resolved against (the CDK app's directory).
func LoadSettings(ctx Context, baseDir string) (*Settings, error) {
	var errs SettingsError
	get := func(key, def string) string {
		if v, ok := ctx(key); ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
		return def
	}
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(baseDir, p)
	}
	s := &Settings{
		StackName: get(ctxStackName, defaultStackName),
		Account:   get(ctxAccount, os.Getenv("CDK_DEFAULT_ACCOUNT")),
		Region:    get(ctxRegion, os.Getenv("CDK_DEFAULT_REGION")),
		AssetDir:  abs(get(ctxAssetDir, defaultAssetDir)),
	}
	if !stackNamePattern.MatchString(s.StackName) {
		errs = append(errs, fmt.Sprintf("%s %q: a stack name is letters, digits and hyphens, starting with a letter", ctxStackName, s.StackName))
	}
	if s.Account != "" && !accountPattern.MatchString(s.Account) {
		errs = append(errs, fmt.Sprintf("%s %q: an AWS account id is 12 digits", ctxAccount, s.Account))
	}
	if s.Region != "" && !regionPattern.MatchString(s.Region) {
		errs = append(errs, fmt.Sprintf("%s %q: not an AWS region code such as eu-west-1", ctxRegion, s.Region))
	}

	// keyferry.yaml
	cfgPath := abs(get(ctxConfig, defaultConfig))
	if data, err := os.ReadFile(cfgPath); err != nil {
		errs = append(errs, fmt.Sprintf("%s: cannot read keyferry.yaml: %v (pass its path with -c %s=PATH, relative to infra/cdk)", ctxConfig, err, ctxConfig))
	} else if cfg, err := config.Parse(cfgPath, data); err != nil {
		errs = append(errs, fmt.Sprintf("%s is not valid:\n%s", cfgPath, indent(err.Error())))
	} else {
		s.Config, s.ConfigYAML = cfg, string(data)
		errs = append(errs, checkDeployable(cfg)...)
		if n := PolicySize(cfg); n > ManagedPolicyLimit {
			errs = append(errs, fmt.Sprintf("%s: the StoreAccess policy its rules need is %d characters; IAM allows %d in a managed policy: "+
				"use fewer, broader match globs or target names sharing a prefix", cfgPath, n, ManagedPolicyLimit))
		}
		if n := len("KEYFERRY_CONFIG_YAML") + len(data); n > lambdaEnvLimit {
			errs = append(errs, fmt.Sprintf("%s is %d bytes: with its variable name it exceeds the %d bytes Lambda allows for a function's environment; shorten it (comments, anchors)",
				cfgPath, len(data), lambdaEnvLimit))
		}
	}

	// The function's code.
	if fi, err := os.Stat(filepath.Join(s.AssetDir, "bootstrap")); err != nil || fi.IsDir() {
		errs = append(errs, fmt.Sprintf("%s: %s has no bootstrap binary: build it with `make infra-check-cdk` or "+
			"`GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -tags lambda.norpc -o %s/bootstrap ./functions/aws` from the repository root",
			ctxAssetDir, s.AssetDir, s.AssetDir))
	}

	var err error
	if s.LogRetentionDays, err = intSetting(get(ctxLogRetentionDays, strconv.Itoa(defaultLogRetentionDays))); err != nil || !slices.Contains(retentionDays, s.LogRetentionDays) {
		errs = append(errs, fmt.Sprintf("%s %q: must be one of the retention periods CloudWatch Logs accepts: %s",
			ctxLogRetentionDays, get(ctxLogRetentionDays, ""), joinInts(retentionDays)))
	}
	if s.ReservedConcurrency, err = intSetting(get(ctxReservedConcurrency, strconv.Itoa(defaultReservedConcurrency))); err != nil || s.ReservedConcurrency < 0 || s.ReservedConcurrency > 1000 {
		errs = append(errs, fmt.Sprintf("%s %q: a whole number from 1 to 1000, or 0 to reserve none", ctxReservedConcurrency, get(ctxReservedConcurrency, "")))
	}
	if s.AlarmTopicArn = get(ctxAlarmTopicArn, ""); s.AlarmTopicArn != "" && !snsARNPattern.MatchString(s.AlarmTopicArn) {
		errs = append(errs, fmt.Sprintf("%s %q: not an SNS topic ARN", ctxAlarmTopicArn, s.AlarmTopicArn))
	}

	if s.RenewSchedule = get(ctxRenewSchedule, defaultRenewSchedule); !ratePattern.MatchString(s.RenewSchedule) && !cronPattern.MatchString(s.RenewSchedule) {
		errs = append(errs, fmt.Sprintf("%s %q: an EventBridge schedule expression such as rate(6 hours) or cron(41 */6 * * ? *) (six fields, UTC)", ctxRenewSchedule, s.RenewSchedule))
	}

	if s.Config != nil {
		errs = append(errs, s.loadAzure(get)...)
		errs = append(errs, s.loadGCP(get)...)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return s, nil
}

// checkDeployable refuses what cannot run in a deployed function: stores and routes of the local cloud.
func checkDeployable(cfg *config.Config) []string {
	var errs []string
	for _, sc := range cfg.Stores {
		if sc.Local {
			errs = append(errs, fmt.Sprintf("%s:%d: store %s is a store of the local cloud (local: true): a deployed function cannot reach this machine; remove it from the file you deploy",
				cfg.File, sc.Line, sc.Name))
		}
	}
	if c := cfg.Certificates; c != nil {
		if c.Issuer != nil && c.Issuer.Builtin != nil && c.Issuer.Builtin.KMS != nil && c.Issuer.Builtin.KMS.Local {
			errs = append(errs, fmt.Sprintf("%s:%d: the issuer's KMS key is a key of the local cloud (local: true): remove it from the file you deploy", cfg.File, c.Line))
		}
		for _, spec := range c.Specs {
			for _, t := range spec.Targets {
				if (t.ACM != nil && t.ACM.Local) || (t.KeyVault != nil && t.KeyVault.Local) || (t.CertificateManager != nil && t.CertificateManager.Local) {
					errs = append(errs, fmt.Sprintf("%s:%d: certificate %s: target %s is a target of the local cloud (local: true): remove it from the file you deploy",
						cfg.File, t.Line, spec.Name, t.ID()))
				}
			}
		}
	}
	for _, r := range cfg.Notify {
		if r.Local {
			errs = append(errs, fmt.Sprintf("%s:%d: a notify route of type %s is a route of the local cloud (local: true): remove it from the file you deploy",
				cfg.File, r.Line, r.Type))
		}
	}
	return errs
}

// trustWanted decides whether a trust role is built: "auto" builds it when the configuration has a store of
// that cloud.
func trustWanted(get func(string, string) string, key string, cfg *config.Config, storeType string) (bool, []string, string) {
	var stores []string
	for _, sc := range cfg.Stores {
		if sc.Type == storeType {
			stores = append(stores, sc.Name)
		}
	}
	switch v := strings.ToLower(get(key, "auto")); v {
	case "auto":
		return len(stores) > 0, stores, ""
	case "true", "yes", "1":
		return true, stores, ""
	case "false", "no", "0":
		return false, stores, ""
	default:
		return false, stores, fmt.Sprintf("%s %q: auto, true or false", key, v)
	}
}

func (s *Settings) loadAzure(get func(string, string) string) []string {
	want, stores, bad := trustWanted(get, ctxAzureTrust, s.Config, config.TypeAzureKeyVault)
	if bad != "" {
		return []string{bad}
	}
	if !want {
		return nil
	}
	a := &AzureTrust{
		TenantID:    get(ctxAzureTenantID, ""),
		PrincipalID: get(ctxAzurePrincipalID, ""),
		Audience:    get(ctxAzureAudience, ""),
	}
	// The tenant may come from the azure-keyvault stores when they all name the same tenant GUID.
	if a.TenantID == "" {
		for _, sc := range s.Config.Stores {
			if sc.AzureKeyVault != nil && guidPattern.MatchString(sc.AzureKeyVault.TenantID) {
				if a.TenantID != "" && !strings.EqualFold(a.TenantID, sc.AzureKeyVault.TenantID) {
					a.TenantID = ""
					break
				}
				a.TenantID = sc.AzureKeyVault.TenantID
			}
		}
	}
	why := "the Azure function needs a role to reach AWS"
	if len(stores) > 0 {
		why = fmt.Sprintf("keyferry.yaml has azure-keyvault stores (%s), so the Azure function needs a role to reach AWS", strings.Join(stores, ", "))
	}
	var missing, errs []string
	switch {
	case a.TenantID == "":
		missing = append(missing, ctxAzureTenantID+" (the Entra directory (tenant) GUID)")
	case !guidPattern.MatchString(a.TenantID):
		errs = append(errs, fmt.Sprintf("%s %q: the tenant id is a GUID such as 00000000-0000-0000-0000-000000000000 (not a domain name: the issuer URL carries the GUID)", ctxAzureTenantID, a.TenantID))
	}
	switch {
	case a.PrincipalID == "":
		missing = append(missing, ctxAzurePrincipalID+" (the object id of the Function App's managed identity: its tokens' sub)")
	case !guidPattern.MatchString(a.PrincipalID):
		errs = append(errs, fmt.Sprintf("%s %q: the managed identity's object (principal) id is a GUID", ctxAzurePrincipalID, a.PrincipalID))
	}
	if a.Audience == "" {
		missing = append(missing, ctxAzureAudience+" (the aud of the identity's tokens: the App ID URI such as api://aws-federation for v1 tokens, the app's client id for v2)")
	} else if strings.ContainsAny(a.Audience, "*? ") {
		errs = append(errs, fmt.Sprintf("%s %q: an audience is an exact value, without wildcards or spaces", ctxAzureAudience, a.Audience))
	}
	switch v := get(ctxAzureTokenVersion, "1"); v {
	case "1", "v1":
		a.TokenVersion = 1
	case "2", "v2", "2.0":
		a.TokenVersion = 2
	default:
		errs = append(errs, fmt.Sprintf("%s %q: 1 (issuer https://sts.windows.net/<tenant>/) or 2 (issuer https://login.microsoftonline.com/<tenant>/v2.0)", ctxAzureTokenVersion, v))
	}
	if len(missing) > 0 {
		errs = append(errs, fmt.Sprintf("%s, but these context values are missing: %s. Pass them with `cdk deploy -c %s=… -c %s=… -c %s=…`, or -c %s=false to build no role for Azure",
			why, strings.Join(missing, "; "), ctxAzureTenantID, ctxAzurePrincipalID, ctxAzureAudience, ctxAzureTrust))
	}
	if len(errs) == 0 {
		s.Azure = a
	}
	return errs
}

func (s *Settings) loadGCP(get func(string, string) string) []string {
	want, stores, bad := trustWanted(get, ctxGCPTrust, s.Config, config.TypeGCPSecretManager)
	if bad != "" {
		return []string{bad}
	}
	if !want {
		return nil
	}
	g := &GCPTrust{ServiceAccountID: get(ctxGCPServiceAccountID, ""), Audience: get(ctxGCPAudience, defaultGCPAudience)}
	var errs []string
	switch {
	case g.ServiceAccountID == "":
		why := "the GCP function needs a role to reach AWS"
		if len(stores) > 0 {
			why = fmt.Sprintf("keyferry.yaml has gcp-secretmanager stores (%s), so the GCP function needs a role to reach AWS", strings.Join(stores, ", "))
		}
		errs = append(errs, fmt.Sprintf("%s, but the context value %s is missing: the numeric unique id of the function's service account "+
			"(`gcloud iam service-accounts describe SA_EMAIL --format='value(uniqueId)'`; not its email). Pass it with `cdk deploy -c %s=…`, or -c %s=false to build no role for GCP",
			why, ctxGCPServiceAccountID, ctxGCPServiceAccountID, ctxGCPTrust))
	case !gcpSAIDPattern.MatchString(g.ServiceAccountID):
		errs = append(errs, fmt.Sprintf("%s %q: the service account's unique id is a number (21 digits), not its email", ctxGCPServiceAccountID, g.ServiceAccountID))
	}
	if strings.ContainsAny(g.Audience, "*? ") {
		errs = append(errs, fmt.Sprintf("%s %q: an audience is an exact value, without wildcards or spaces", ctxGCPAudience, g.Audience))
	}
	switch v := get(ctxGCPFederation, "builtin"); v {
	case "builtin":
	case "oidc-provider":
		g.OIDCProvider = true
	default:
		errs = append(errs, fmt.Sprintf("%s %q: builtin (IAM's built-in accounts.google.com principal) or oidc-provider (an IAM OIDC provider for https://accounts.google.com)", ctxGCPFederation, v))
	}
	if len(errs) == 0 {
		s.GCP = g
	}
	return errs
}

func intSetting(v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, errors.New("not a whole number")
	}
	return n, nil
}

func joinInts(ns []int) string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = strconv.Itoa(n)
	}
	return strings.Join(out, ", ")
}

func indent(s string) string {
	return "      " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n      ")
}
