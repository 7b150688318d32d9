package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keyferry/keyferry/core/store"
	"github.com/keyferry/keyferry/localtest/cloud"
	"github.com/keyferry/keyferry/localtest/idp"
)

// roleUntrusted is a role whose trust policy names the Entra tenant but another identity: the Azure
// function's tokens must not open it.
const roleUntrusted = "arn:aws:iam::" + cloud.Account + ":role/keyferry-untrusted"

const fedRules = `
replicate:
  - name: fed-from-aws
    from: {store: aws, match: ["fed-*"]}
    to: [azure, gcp, vault]
  - name: fed-from-azure
    from: {store: azure, match: ["fed-*"]}
    to: [aws, gcp, vault]
  - name: fed-from-gcp
    from: {store: gcp, match: ["fed-*"]}
    to: [aws, azure, vault]
  - name: untrusted
    from: {store: azure, match: ["untrusted-*"]}
    to: [aws-untrusted]
`

// federationDirection is one home → peer direction and the counters of the exchanges it needs.
type federationDirection struct {
	name   string
	checks []federationCount
}

// federationCount is one token fetched or exchanged: accepted and refused at the service that issues it.
type federationCount struct {
	what  string
	count func() (accepted, refused int64)
}

func federationDirections(f *cloud.Federation) []federationDirection {
	at := func(c interface {
		CountsFor(op, key string) (int64, int64)
	}, op, key string) func() (int64, int64) {
		return func() (int64, int64) { return c.CountsFor(op, key) }
	}
	mi := func(resource string) func() (int64, int64) {
		return func() (int64, int64) { return f.Tenant.ManagedIdentityTokens(resource), 0 }
	}
	login := func(home string) func() (int64, int64) {
		m := cloud.VaultMounts[home]
		return func() (int64, int64) { return f.VaultLogins.Get(m + " ok"), f.VaultLogins.Get(m + " refused") }
	}
	lambdaPrincipal := "principal://iam.googleapis.com/" + cloud.GCPPool + "/subject/" + cloud.LambdaCaller
	miPrincipal := "principal://iam.googleapis.com/" + cloud.GCPPool + "/subject/" + f.Tenant.PrincipalID()
	return []federationDirection{
		{"aws → azure", []federationCount{
			{"GetWebIdentityToken for api://AzureADTokenExchange", at(f.AWSSTS, idp.OpGetWebIdentityToken, idp.DefaultFICAudience)},
			{"Entra token for the AWS account's assertion", at(f.Entra, idp.OpEntraToken, f.Outbound.Issuer())}}},
		{"aws → gcp", []federationCount{
			{"Google STS token (provider from-aws)", at(f.GoogleSTS, idp.OpGoogleSTSToken, cloud.GCPProviderAWS)},
			{"GetCallerIdentity replayed by Google STS", at(f.AWSSTS, idp.OpGetCallerIdentity, cloud.LambdaCaller)},
			{"generateAccessToken for the Lambda's principal", at(f.GoogleSTS, idp.OpGenerateAccessToken, lambdaPrincipal)}}},
		{"aws → vault", []federationCount{
			{"GetWebIdentityToken for Vault", at(f.AWSSTS, idp.OpGetWebIdentityToken, cloud.VaultAudience)},
			{"Vault login at jwt-aws", login(cloud.AWS)}}},
		{"azure → aws", []federationCount{
			{"managed-identity token for AWS", mi(cloud.AWSAudienceFromAzure)},
			{"AssumeRoleWithWebIdentity into keyferry-from-azure", at(f.AWSSTS, idp.OpAssumeRoleWithWebIdentity, cloud.RoleFromAzure)}}},
		{"azure → gcp", []federationCount{
			{"managed-identity token for Google STS", mi(cloud.GCPTokenAudienceFromAzure)},
			{"Google STS token (provider from-azure)", at(f.GoogleSTS, idp.OpGoogleSTSToken, cloud.GCPProviderAzure)},
			{"generateAccessToken for the managed identity's principal", at(f.GoogleSTS, idp.OpGenerateAccessToken, miPrincipal)}}},
		{"azure → vault", []federationCount{
			{"managed-identity token for Vault", mi(cloud.VaultAudienceFromAzure)},
			{"Vault login at jwt-azure", login(cloud.Azure)}}},
		{"gcp → aws", []federationCount{
			{"metadata-server ID token for AWS", at(f.Metadata, idp.OpMetadataIdentity, cloud.AWSAudienceFromGCP)},
			{"AssumeRoleWithWebIdentity into keyferry-from-gcp", at(f.AWSSTS, idp.OpAssumeRoleWithWebIdentity, cloud.RoleFromGCP)}}},
		{"gcp → azure", []federationCount{
			{"metadata-server ID token for Entra", at(f.Metadata, idp.OpMetadataIdentity, idp.DefaultFICAudience)},
			{"Entra token for the service account's assertion", at(f.Entra, idp.OpEntraToken, f.Google.Issuer())}}},
		{"gcp → vault", []federationCount{
			{"metadata-server ID token for Vault", at(f.Metadata, idp.OpMetadataIdentity, cloud.VaultAudience)},
			{"Vault login at jwt-gcp", login(cloud.GCP)}}},
	}
}

// checkDirections checks that every exchange of every direction happened, was accepted, was never
// refused, and happened at most max times.
func checkDirections(t *testing.T, f *cloud.Federation, max int64) {
	t.Helper()
	for _, d := range federationDirections(f) {
		for _, c := range d.checks {
			ok, no := c.count()
			switch {
			case ok == 0:
				t.Errorf("%s: %s never happened (refused %d)", d.name, c.what, no)
			case no != 0:
				t.Errorf("%s: %s refused %d times (accepted %d)", d.name, c.what, no, ok)
			case ok > max:
				t.Errorf("%s: %s %d times, want at most %d (credentials are not cached)", d.name, c.what, ok, max)
			}
		}
	}
}

// noIssuedSecret checks that none of the tokens and keys the token services issued appears in text.
func noIssuedSecret(t *testing.T, f *cloud.Federation, what, text string) int {
	t.Helper()
	issued := f.Issued()
	leaked := 0
	for _, s := range issued {
		if len(s) >= 16 && strings.Contains(text, s) {
			leaked++
		}
	}
	if leaked > 0 {
		t.Errorf("%d of the %d tokens and keys the token services issued appear in %s", leaked, len(issued), what)
	}
	return len(issued)
}

func fedCalls(r *rig) int64 {
	var n int64
	for name, l := range r.c.Faults() {
		if name == "aws-ssm" { // shares the AWS layer
			continue
		}
		for _, c := range l.Calls() {
			n += c
		}
	}
	return n
}

// TestFederationThroughTheFunctions: in the federated local cloud, where every store accepts only what
// workload identity federation yields and each function holds its own cloud's identity only, a write in
// each of AWS, Azure and GCP reaches the other two clouds and Vault through the real function binaries
// (all nine directions); every exchange is accepted by the token services; over more than a thousand
// store calls in one function instance each direction fetched at most two tokens; none of the tokens
// and keys issued appears in a function's or the cloud's log; and a role whose trust names another
// identity fails closed, naming the direction and the presented claims.
func TestFederationThroughTheFunctions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole local cloud with its token services and builds the functions")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	untrusted := fmt.Sprintf("  aws-untrusted:\n    type: aws-secretsmanager\n    region: us-east-1\n    local: true\n    endpoint: %%s\n"+
		"    identity:\n      azure: {role_arn: %s, audience: %q}\n      gcp: {role_arn: %s}\n", roleUntrusted, cloud.AWSAudienceFromAzure, roleUntrusted)
	r := startFederatedRig(ctx, t, untrusted)
	f := r.c.Federation
	all := []string{"aws", "azure", "gcp", "vault"}

	// A write in each cloud reaches every peer, each through its own function.
	for i, from := range []string{"aws", "azure", "gcp"} {
		name := "fed-from-" + from
		val := fmt.Sprintf("%s-fed-%d-%s", canary, i, from)
		t0 := time.Now()
		r.put(ctx, from, name, val)
		r.waitValue(ctx, name, val, all...)
		t.Logf("federated: a write in %s reached every peer in %s", from, time.Since(t0).Round(time.Millisecond))
		for _, st := range all {
			if st == from {
				continue
			}
			// The value can show before its provenance (GCP and Vault write it in a second call).
			var md store.Metadata
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				var err error
				if md, err = r.stores[st].Describe(ctx, name); err != nil {
					t.Fatal(err)
				}
				if md.Provenance != nil || time.Now().After(deadline) {
					break
				}
			}
			if p := md.Provenance; p == nil || p.SourceStore != from || p.SourceName != name {
				t.Errorf("%s/%s provenance %+v, want from %s", st, name, p, from)
			}
		}
	}
	r.settle(ctx)
	checkDirections(t, f, 2)

	// More secrets, then sweeps until one function instance (the Lambda) made over a thousand store calls.
	for i := range 4 {
		for _, from := range []string{"aws", "azure", "gcp"} {
			r.put(ctx, from, fmt.Sprintf("fed-bulk-%s-%d", from, i), fmt.Sprintf("%s-bulk-%d", canary, i))
		}
	}
	r.settle(ctx)
	// Each function instance, in turn, sweeps until it has made a thousand store calls (only it runs
	// meanwhile: the stores are in sync, so sweeps write nothing and no event fires).
	for _, fn := range []struct {
		home  string
		sweep func() error
	}{
		{"aws", func() error { // EventBridge Scheduler's input
			o, err := r.fn.Lambda.Invoke(ctx, []byte(`{"job":"deep-sweep"}`))
			if err == nil && o.Err {
				err = fmt.Errorf("the invocation failed: %s", o.Payload)
			}
			return err
		}},
		{"azure", func() error { // the Reconcile timer
			st, _, err := r.fn.Azure.Timer(ctx, "Reconcile")
			if err == nil && st/100 != 2 {
				err = fmt.Errorf("HTTP %d", st)
			}
			return err
		}},
		{"gcp", func() error { // Cloud Scheduler's message
			st, err := r.fn.PushToGCP(ctx, []byte(`{"job":"deep-sweep"}`), nil)
			if err == nil && st/100 != 2 {
				err = fmt.Errorf("HTTP %d", st)
			}
			return err
		}},
	} {
		before, sweeps := fedCalls(r), 0
		for ; fedCalls(r)-before < 1000 && sweeps < 300; sweeps++ {
			if err := fn.sweep(); err != nil {
				t.Fatalf("%s sweep %d: %v\n%s", fn.home, sweeps, err, r.fn.Logs())
			}
		}
		calls := fedCalls(r) - before
		t.Logf("federated: %d sweeps of the %s function made %d store calls", sweeps, fn.home, calls)
		if calls < 1000 {
			t.Errorf("%s: %d store calls in %d sweeps, want at least 1000", fn.home, calls, sweeps)
		}
	}
	r.settle(ctx)
	checkDirections(t, f, 2)
	for _, d := range federationDirections(f) {
		var parts []string
		for _, c := range d.checks {
			ok, _ := c.count()
			parts = append(parts, fmt.Sprintf("%s %d", c.what, ok))
		}
		t.Logf("%s: %s", d.name, strings.Join(parts, "; "))
	}
	t.Logf("AWS calls by principal: %v; Vault logins: %v", f.AWSCalls.All(), f.VaultLogins.All())
	if callers, refused := r.c.SecretManager.Callers(); refused != 0 {
		t.Errorf("Secret Manager refused %d calls (callers %v)", refused, callers)
	} else {
		t.Logf("Secret Manager calls by principal: %v", callers)
	}
	for k, n := range f.AWSCalls.All() {
		if strings.HasPrefix(k, "refused") {
			t.Errorf("the AWS credential check refused %d calls (%s)", n, k)
		}
	}

	// A role that trusts another identity: the Azure function's exchange is refused, nothing is written,
	// and its log says which direction failed and what was presented.
	if err := f.AWSSTS.AddRole(idp.AWSRole{RoleArn: roleUntrusted, Provider: f.Tenant.Issuer(), Audience: cloud.AWSAudienceFromAzure,
		Subject: "00000000-0000-4000-8000-000000000000"}); err != nil {
		t.Fatal(err)
	}
	r.put(ctx, "azure", "untrusted-1", canary+"-untrusted")
	presented := fmt.Sprintf("presented JWT iss=%q sub=%q aud=%q", f.Tenant.Issuer(), f.Tenant.PrincipalID(), cloud.AWSAudienceFromAzure)
	var line string // the error of the function's log line
	for line == "" {
		for _, l := range strings.Split(r.fn.Azure.Logs(), "\n") {
			var rec struct {
				Error string `json:"error"`
			}
			if json.Unmarshal([]byte(l), &rec) == nil && strings.Contains(rec.Error, "azure → aws") && strings.Contains(rec.Error, roleUntrusted) {
				line = rec.Error
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the Azure function never reported the refused exchange\n%s", r.fn.Logs())
		case <-time.After(100 * time.Millisecond):
		}
	}
	r.settle(ctx)
	t.Logf("the Azure function logged: %s", line)
	if !strings.Contains(line, presented) || !strings.Contains(line, "AccessDenied") {
		t.Errorf("the log line does not name the refusal and the presented claims (%s):\n%s", presented, line)
	}
	if got := r.value(ctx, "aws", "untrusted-1"); !strings.Contains(got, "not found") {
		t.Errorf("the untrusted role let the replica through: aws holds %q", got)
	}
	if ok, no := f.AWSSTS.CountsFor(idp.OpAssumeRoleWithWebIdentity, roleUntrusted); ok != 0 || no == 0 {
		t.Errorf("AssumeRoleWithWebIdentity into the untrusted role: %d accepted, %d refused", ok, no)
	}

	logs := r.fn.Logs() + r.c.Logs()
	n := noIssuedSecret(t, f, "the function and cloud logs", logs)
	if n < 10 {
		t.Errorf("only %d tokens and keys issued: the leak check checks little", n)
	}
	if strings.Contains(logs, canary) {
		t.Error("a secret value appears in a function's or the cloud's log")
	}
	if strings.Contains(r.fn.Logs(), "eyJ") {
		t.Error("a function's log holds something shaped like a JWT")
	}
	t.Logf("checked %d issued tokens and keys against %d bytes of logs", n, len(logs))
}

// startFederatedRig starts the federated cloud and the functions, each with its own cloud's identity.
// extraStore is a `stores:` entry with %s for the AWS endpoint.
func startFederatedRig(ctx context.Context, t *testing.T, extraStore string) *rig {
	t.Helper()
	return startRig(ctx, t, rigOptions{rules: fedRules, federation: true, extraStoresFor: func(c *cloud.Cloud) string {
		return fmt.Sprintf(extraStore, c.AWSProxy.URL)
	}})
}
