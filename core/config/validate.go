package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
)

// Validators return "" for a good value, else a message saying what is wrong and how to fix it. "%v" in
// a message stands for the value and is filled in only when the value may be shown.

var (
	awsRegion   = regexp.MustCompile(`^[a-z]{2,4}(-[a-z]+)+-[0-9]{1,2}$`)
	kmsKeyID    = regexp.MustCompile(`^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$`)
	kmsAlias    = lazyRegexp(`^alias/[A-Za-z0-9/_-]{1,250}$`)
	kmsARN      = lazyRegexp(`^arn:aws(-[a-z]+)*:kms:[a-z]{2,4}(-[a-z]+)+-[0-9]{1,2}:[0-9]{12}:(key/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})|alias/[A-Za-z0-9/_-]{1,250})$`)
	ssmPath     = regexp.MustCompile(`^(/[A-Za-z0-9_.-]+)+$`)
	azureVault  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]$`)
	tenantGUID  = regexp.MustCompile(`^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$`)
	tenantName  = regexp.MustCompile(`^([A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,63}$`)
	gcpProject  = regexp.MustCompile(`^[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
	gcpLocation = regexp.MustCompile(`^[a-z]+(-[a-z]+)+[0-9]{1,2}$`)
	gcpTopic    = lazyRegexp(`^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$`)
	vaultPath   = regexp.MustCompile(`^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$`)
)

// fixed builds a message whose end repeats something derived from the value (a corrected spelling):
// base, then prefix+fix when fix may be shown, else fallback. See parser.withValue.
func fixed(base, prefix, fix, fallback string) string {
	return base + "\x00" + prefix + "\x00" + fix + "\x00" + fallback
}

// maxTopics is Secret Manager's limit of topics per secret.
const maxTopics = 10

// azureVaultSuffixes are the Key Vault DNS suffixes of the Azure clouds.
var azureVaultSuffixes = []string{".vault.azure.net", ".vault.azure.cn", ".vault.usgovcloudapi.net", ".vault.microsoftazure.de"}

func checkAWSRegion(v string) string {
	if awsRegion.MatchString(v) {
		return ""
	}
	if l := strings.ToLower(strings.TrimSpace(v)); awsRegion.MatchString(l) {
		return fixed("%v is not an AWS region code", ": write it ", l, ": write one such as eu-west-1 or us-east-1")
	}
	return "%v is not an AWS region code: write one such as eu-west-1 or us-east-1"
}

func checkKMSKey(v string) string {
	if kmsKeyID.MatchString(v) || kmsAlias().MatchString(v) || kmsARN().MatchString(v) {
		return ""
	}
	return "%v is not a KMS key: give a key id (1234abcd-12ab-34cd-56ef-1234567890ab), a key ARN, an alias " +
		"(alias/keyferry) or an alias ARN, or remove it to use the service's default key"
}

func checkSSMTier(v string) string {
	switch v {
	case "standard", "advanced":
		return ""
	}
	if l := strings.ToLower(strings.TrimSpace(v)); l == "standard" || l == "advanced" {
		return "%v: write it " + l
	}
	return "must be standard (values up to 4 KB, the default) or advanced (up to 8 KB), not %v"
}

func checkSSMPathPrefix(v string) string {
	switch {
	case !strings.HasPrefix(v, "/"):
		return "must start with \"/\", such as /keyferry, not %v"
	case len(v) > 1 && strings.HasSuffix(v, "/"):
		return fixed("write it without the trailing \"/\"", ": ", strings.TrimRight(v, "/"), "")
	case !ssmPath.MatchString(v):
		return "%v is not a parameter path: use segments of letters, digits, _ . - separated by \"/\", such as /keyferry/prod"
	}
	first := strings.ToLower(strings.Split(v, "/")[1])
	if strings.HasPrefix(first, "aws") || strings.HasPrefix(first, "ssm") {
		return "%v starts with \"aws\" or \"ssm\", which Parameter Store reserves: choose another prefix, such as /keyferry"
	}
	return ""
}

func checkTenant(v string) string {
	if tenantGUID.MatchString(v) || tenantName.MatchString(v) {
		return ""
	}
	return "%v is not a tenant: give the directory (tenant) ID, a GUID such as 00000000-0000-0000-0000-000000000000, or its domain such as contoso.onmicrosoft.com"
}

func checkGCPProject(v string) string {
	switch {
	case gcpProject.MatchString(v):
		return ""
	case strings.Trim(v, "0123456789") == "":
		return "%v is a project number: write the project ID instead, such as kf-prod"
	case gcpProject.MatchString(strings.ToLower(v)):
		return fixed("%v: project IDs are lower case", ": write it ", strings.ToLower(v), "")
	}
	return "%v is not a project ID: 6–30 lower-case letters, digits and hyphens, starting with a letter and not ending with a hyphen, such as kf-prod"
}

func checkTopic(v string) string {
	parts := strings.Split(v, "/")
	if len(parts) != 4 || parts[0] != "projects" || parts[2] != "topics" {
		return "%v is not a topic name: write it as projects/PROJECT/topics/TOPIC, such as projects/kf-prod/topics/secret-events"
	}
	if !gcpProject.MatchString(parts[1]) {
		return "%v: the project part must be a project ID, such as kf-prod"
	}
	if !gcpTopic().MatchString(parts[3]) || strings.HasPrefix(strings.ToLower(parts[3]), "goog") {
		return "%v: a topic ID is 3–255 letters, digits and - _ . ~ + %, starts with a letter and not with \"goog\""
	}
	return ""
}

func checkVaultPath(v, what, example string) string {
	if vaultPath.MatchString(v) {
		return ""
	}
	if t := strings.Trim(v, "/"); t != v && vaultPath.MatchString(t) {
		return fixed(fmt.Sprintf("write the %s without leading or trailing \"/\"", what), ": ", t, "")
	}
	return fmt.Sprintf("%%v is not a %s path: use segments of letters, digits, _ . - separated by \"/\", such as %s", what, example)
}

// checkPath checks a file or directory path.
func checkPath(v string) string {
	switch {
	case strings.ContainsRune(v, 0):
		return "the path contains a NUL character: remove it"
	case strings.HasPrefix(v, "~"):
		return "\"~\" is not expanded: write the full path, such as /home/keyferry/..."
	}
	return ""
}

// isLoopback reports whether host names this machine.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// parseBaseURL parses a service URL that must have no credentials, path, query or fragment. It returns
// a message (without the value if it may hold a credential) when it is not one.
func parseBaseURL(v, example string) (*url.URL, string) {
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || u.Opaque != "" || (u.Scheme != "http" && u.Scheme != "https") {
		if strings.Contains(v, "@") {
			return nil, "must be a URL such as " + example + " (the value is not shown)"
		}
		return nil, "must be a URL such as " + example + ", not %v"
	}
	if u.User != nil {
		return nil, "must not carry a user name or password (the value is not shown): remove the part before \"@\"; keyferry authenticates with workload identity"
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return nil, fixed("must be the service's base URL, without a path, query or fragment, such as "+example,
			": write ", u.Scheme+"://"+u.Host, "")
	}
	return u, ""
}

func checkLocalEndpoint(v string) string {
	u, msg := parseBaseURL(v, "http://127.0.0.1:5000")
	if msg != "" {
		return msg
	}
	if !isLoopback(u.Hostname()) {
		return "a local store's endpoint must be on this machine (127.0.0.1, ::1 or localhost), not %v: remove `local: true` and the endpoint to reach the real service"
	}
	return ""
}

func checkAzureVault(v string, local bool) string {
	const example = "https://kf-prod.vault.azure.net"
	u, msg := parseBaseURL(v, example)
	if msg != "" {
		return msg
	}
	if u.Scheme != "https" {
		return "must be an https URL such as " + example + ", not %v (the Key Vault client refuses plain http)"
	}
	host := u.Hostname()
	if isLoopback(host) {
		if !local {
			return "%v points at this machine: add `local: true` if this is a store of the local cloud, else give the vault's URL, such as " + example
		}
		return ""
	}
	for _, suffix := range azureVaultSuffixes {
		name, ok := strings.CutSuffix(strings.ToLower(host), suffix)
		if !ok {
			continue
		}
		if !azureVault.MatchString(name) || strings.Contains(name, "--") {
			return "%v: a vault name is 3–24 letters, digits and hyphens, starts with a letter, ends with a letter or digit and has no \"--\""
		}
		if p := u.Port(); p != "" && p != "443" {
			return "%v: Key Vault listens on port 443 only: remove the port"
		}
		return ""
	}
	return "must be an https URL such as " + example + ", not %v: Key Vault URLs end in .vault.azure.net (or .vault.azure.cn, .vault.usgovcloudapi.net)"
}

func checkVaultAddress(v string, local bool) string {
	u, msg := parseBaseURL(v, "https://vault.example.com:8200")
	if msg != "" {
		return msg
	}
	if isLoopback(u.Hostname()) {
		if !local {
			return "%v points at this machine: add `local: true` if this is a store of the local cloud, else give the Vault server's address"
		}
		return ""
	}
	if u.Scheme != "https" {
		return "must use https, not %v: tokens and secret values would cross the network in clear text"
	}
	return ""
}
