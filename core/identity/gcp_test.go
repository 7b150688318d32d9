package identity

import (
	"strings"
	"testing"
	"time"

	"github.com/keyferry/keyferry/localtest/idp"
)

// TestAzureToGCP: the managed identity's token for the provider's allowed audience → Google STS,
// optionally impersonating a service account.
func TestAzureToGCP(t *testing.T) {
	w := newWorld(t)
	sub, iss := w.mi.PrincipalID(), w.mi.Issuer()
	provider := idp.WorkloadIdentityProvider{Audience: gcpAzureProv, Issuer: iss, AllowedAudiences: []string{gcpTokenAud}, Subject: sub}
	members := []string{"principal://iam.googleapis.com/" + gcpPool + "/subject/" + sub}
	peer := Peer{GCPAudience: gcpAzureProv, GCPTokenAudience: gcpTokenAud, AzureManagedIdentityClientID: w.mi.ClientID()}
	start := func(p idp.WorkloadIdentityProvider, now func() time.Time, ttl time.Duration) *idp.GoogleSTS {
		return w.googleSTS(idp.GoogleSTSConfig{Providers: []idp.WorkloadIdentityProvider{p}, Now: now, TokenTTL: ttl,
			ServiceAccounts: []idp.GoogleServiceAccount{{Email: replicatorSA, Members: members}}})
	}

	for _, sa := range []string{"", replicatorSA} {
		name := "success, cached, federated token"
		if sa != "" {
			name = "success, cached, impersonating"
		}
		t.Run(name, func(t *testing.T) {
			g := start(provider, nil, 0)
			p := peer
			p.GCPServiceAccount = sa
			creds, opts, err := GCP(tctx(t), HomeAzure, p, w.endpoints(nil, nil, g, nil))
			if err != nil {
				t.Fatal(err)
			}
			if len(opts) != 1 {
				t.Errorf("%d client options", len(opts))
			}
			tok, err := creds.Token(tctx(t))
			if err != nil {
				t.Fatalf("Token: %v", err)
			}
			info, ok := g.LookupAccessToken(tok.Value)
			if !ok || info.ServiceAccount != sa || info.Principal != members[0] {
				t.Fatalf("token %+v (known %v)", info, ok)
			}
			if _, err := creds.Token(tctx(t)); err != nil {
				t.Fatal(err)
			}
			if ok, _ := g.Counts(idp.OpGoogleSTSToken); ok != 1 {
				t.Errorf("%d STS exchanges, want 1 (cached)", ok)
			}
			if want := map[bool]int64{true: 1, false: 0}[sa != ""]; func() int64 { ok, _ := g.Counts(idp.OpGenerateAccessToken); return ok }() != want {
				t.Errorf("generateAccessToken calls != %d", want)
			}
		})
	}

	t.Run("refreshed near expiry", func(t *testing.T) {
		// 200-second tokens are inside the library's 225-second early-refresh window: the second Token
		// returns the still-valid token and refreshes in the background.
		g := start(provider, nil, 200*time.Second)
		creds, _, err := GCP(tctx(t), HomeAzure, peer, w.endpoints(nil, nil, g, nil))
		if err != nil {
			t.Fatal(err)
		}
		t1, err := creds.Token(tctx(t))
		if err != nil {
			t.Fatal(err)
		}
		t2, err := creds.Token(tctx(t))
		if err != nil || t2.Value != t1.Value {
			t.Fatalf("second Token: %v", err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for ok, _ := g.Counts(idp.OpGoogleSTSToken); ok < 2; ok, _ = g.Counts(idp.OpGoogleSTSToken) {
			if time.Now().After(deadline) {
				t.Fatalf("no refresh of a token about to expire (%d exchanges)", ok)
			}
			time.Sleep(20 * time.Millisecond)
		}
		deadline = time.Now().Add(10 * time.Second)
		for {
			t3, err := creds.Token(tctx(t))
			if err != nil {
				t.Fatal(err)
			}
			if t3.Value != t1.Value {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the refreshed token is not used")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	for _, tc := range []struct {
		name     string
		prov     func(p *idp.WorkloadIdentityProvider)
		peer     func(p *Peer)
		stsNow   func() time.Time
		status   int
		code     string
		mentions []string
	}{
		{name: "wrong audience", peer: func(p *Peer) { p.GCPTokenAudience = "api://not-gcp" }, status: 400, code: "invalid_grant",
			mentions: []string{"The audience in ID Token [api://not-gcp] does not match", presentedJWT(iss, sub, "api://not-gcp")}},
		{name: "wrong subject", prov: func(p *idp.WorkloadIdentityProvider) { p.Subject = "00000000-0000-4000-8000-000000000bad" }, status: 400, code: "unauthorized_client",
			mentions: []string{"rejected by the attribute condition", presentedJWT(iss, sub, gcpTokenAud)}},
		{name: "wrong issuer", prov: func(p *idp.WorkloadIdentityProvider) { p.Issuer = w.stranger.Issuer() }, status: 400, code: "invalid_grant",
			mentions: []string{"The issuer in ID Token " + iss + " does not match the expected ones: " + w.stranger.Issuer(), presentedJWT(iss, sub, gcpTokenAud)}},
		{name: "expired token", stsNow: shifted(2 * time.Hour), status: 400, code: "invalid_grant",
			mentions: []string{"The ID Token has expired", presentedJWT(iss, sub, gcpTokenAud)}},
		{name: "impersonation denied", peer: func(p *Peer) { p.GCPServiceAccount = "other@keyferry-test.iam.gserviceaccount.com" }, status: 403, code: "PERMISSION_DENIED",
			mentions: []string{"impersonation of other@keyferry-test.iam.gserviceaccount.com (generateAccessToken)", "iam.serviceAccounts.getAccessToken", presentedJWT(iss, sub, gcpTokenAud)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pr, p := provider, peer
			if tc.prov != nil {
				tc.prov(&pr)
			}
			if tc.peer != nil {
				tc.peer(&p)
			}
			g := start(pr, tc.stsNow, 0)
			creds, _, err := GCP(tctx(t), HomeAzure, p, w.endpoints(nil, nil, g, nil))
			if err != nil {
				t.Fatal(err)
			}
			_, err = creds.Token(tctx(t))
			step := "Google STS token exchange for " + gcpAzureProv
			if tc.code == "PERMISSION_DENIED" {
				step = "impersonation of"
			}
			wantRefusal(t, err, "azure → gcp", tc.status, tc.code, append(tc.mentions, step)...)
		})
	}
}

// TestAWSToGCP: the Lambda's role credentials sign GetCallerIdentity; the Google STS fake replays it to
// the AWS STS fake, which verifies the signature.
func TestAWSToGCP(t *testing.T) {
	w := newWorld(t)
	members := []string{"principalSet://iam.googleapis.com/" + gcpPool + "/attribute.aws_role/arn:aws:sts::" + testAccount + ":assumed-role/keyferry-lambda"}
	peer := Peer{GCPAudience: gcpAWSProv, GCPServiceAccount: replicatorSA}
	start := func(a *awsSide, account string, subject string) *idp.GoogleSTS {
		return w.googleSTS(idp.GoogleSTSConfig{
			Providers:       []idp.WorkloadIdentityProvider{{Audience: gcpAWSProv, AWSAccountID: account, AWSVerifyURL: a.URL, Subject: subject}},
			ServiceAccounts: []idp.GoogleServiceAccount{{Email: replicatorSA, Members: members}}})
	}

	t.Run("success, cached", func(t *testing.T) {
		a := w.aws(nil, nil)
		a.lambdaEnv(t)
		g := start(a, testAccount, "")
		creds, _, err := GCP(tctx(t), HomeAWS, peer, w.endpoints(a, nil, g, nil))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := creds.Token(tctx(t))
		if err != nil {
			t.Fatalf("Token: %v", err)
		}
		info, ok := g.LookupAccessToken(tok.Value)
		if !ok || info.ServiceAccount != replicatorSA || info.Principal != "principal://iam.googleapis.com/"+gcpPool+"/subject/"+lambdaCaller {
			t.Fatalf("token %+v (known %v)", info, ok)
		}
		if _, err := creds.Token(tctx(t)); err != nil {
			t.Fatal(err)
		}
		if ok, _ := g.Counts(idp.OpGoogleSTSToken); ok != 1 {
			t.Errorf("%d STS exchanges, want 1 (cached)", ok)
		}
		if ok, no := a.Counts(idp.OpGetCallerIdentity); ok != 1 || no != 0 {
			t.Errorf("GetCallerIdentity replays accepted/refused %d/%d, want 1/0", ok, no)
		}
	})

	for _, tc := range []struct {
		name, account, subject string
		env                    func(t *testing.T)
		mentions               []string
	}{
		{name: "wrong account", account: "999999999999",
			mentions: []string{"The AWS account " + testAccount + " of caller " + lambdaCaller + " does not match the AWS account 999999999999"}},
		{name: "wrong subject", account: testAccount, subject: "arn:aws:sts::" + testAccount + ":assumed-role/other/*",
			mentions: []string{"rejected by the attribute condition", lambdaCaller}},
		{name: "signature does not verify", account: testAccount, env: func(t *testing.T) { t.Setenv("AWS_SECRET_ACCESS_KEY", strings.Repeat("x", 40)) },
			mentions: []string{"SignatureDoesNotMatch"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := w.aws(nil, nil)
			creds := a.lambdaEnv(t)
			if tc.env != nil {
				tc.env(t)
			}
			g := start(a, tc.account, tc.subject)
			c, _, err := GCP(tctx(t), HomeAWS, peer, w.endpoints(a, nil, g, nil))
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Token(tctx(t))
			code := "invalid_grant"
			if tc.subject != "" {
				code = "unauthorized_client"
			}
			wantRefusal(t, err, "aws → gcp", 400, code, append(tc.mentions, "Google STS token exchange for "+gcpAWSProv,
				"presented aws4_request (SigV4-signed sts:GetCallerIdentity, region us-east-1, access key "+maskKey(creds.AccessKeyID)+")")...)
		})
	}
}

// TestGCPFromGCP: a GCP home uses Application Default Credentials (here: the metadata server's token).
func TestGCPFromGCP(t *testing.T) {
	w := newWorld(t)
	md := w.metadata(nil)
	t.Setenv("GCE_METADATA_HOST", md.Host()) // ADC finds the metadata server through the environment
	creds, opts, err := GCP(tctx(t), HomeGCP, Peer{}, Endpoints{})
	if err != nil || len(opts) != 1 {
		t.Fatal(err)
	}
	tok, err := creds.Token(tctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if !md.ValidAccessToken(tok.Value) {
		t.Error("the token is not the metadata server's")
	}
}
