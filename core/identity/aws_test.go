package identity

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/keyferry/keyferry/localtest/idp"
)

// TestAzureToAWS: the managed identity's token for the App ID URI → AssumeRoleWithWebIdentity.
func TestAzureToAWS(t *testing.T) {
	w := newWorld(t)
	good := idp.AWSRole{RoleArn: fromAzureRole, Provider: w.mi.Issuer(), Audience: awsAppIDURI, Subject: w.mi.PrincipalID()}
	peer := Peer{AWSRoleARN: fromAzureRole, AWSRegion: testRegion, AWSAudience: awsAppIDURI, AzureManagedIdentityClientID: w.mi.ClientID()}
	sub, iss := w.mi.PrincipalID(), w.mi.Issuer()

	t.Run("success, cached", func(t *testing.T) {
		a := w.aws([]idp.AWSRole{good}, nil)
		prov, err := AWS(tctx(t), HomeAzure, peer, w.endpoints(a, nil, nil, nil))
		if err != nil {
			t.Fatal(err)
		}
		c1, err := prov.Retrieve(tctx(t))
		if err != nil {
			t.Fatalf("Retrieve: %v", err)
		}
		sess, ok := a.Session(c1.AccessKeyID)
		if !ok || sess.RoleArn != fromAzureRole || sess.Subject != sub || sess.Audience != awsAppIDURI ||
			!strings.HasSuffix(sess.AssumedRoleArn, "/keyferry-azure") {
			t.Fatalf("session %+v (found %v)", sess, ok)
		}
		if !c1.CanExpire || time.Until(c1.Expires) < 50*time.Minute {
			t.Errorf("credentials expire in %v", time.Until(c1.Expires))
		}
		c2, err := prov.Retrieve(tctx(t))
		if err != nil || c2.AccessKeyID != c1.AccessKeyID {
			t.Fatalf("second Retrieve: %v (key changed: %v)", err, c2.AccessKeyID != c1.AccessKeyID)
		}
		if ok, no := a.Counts(idp.OpAssumeRoleWithWebIdentity); ok != 1 || no != 0 {
			t.Errorf("AssumeRoleWithWebIdentity accepted/refused %d/%d, want 1/0 (the second call is cached)", ok, no)
		}
		// The credentials work: GetCallerIdentity is SigV4-verified by the fake.
		who, err := sts.New(sts.Options{Region: testRegion, BaseEndpoint: aws.String(a.URL), Credentials: prov}).GetCallerIdentity(tctx(t), &sts.GetCallerIdentityInput{})
		if err != nil || aws.ToString(who.Arn) != sess.AssumedRoleArn {
			t.Fatalf("GetCallerIdentity with the credentials: %v", err)
		}
	})

	otherSub := "00000000-0000-4000-8000-000000000bad"
	for _, tc := range []struct {
		name     string
		role     func(r *idp.AWSRole)
		peer     func(p *Peer)
		now      func() time.Time
		status   int
		code     string
		mentions []string
	}{
		{name: "wrong audience", peer: func(p *Peer) { p.AWSAudience = "api://not-aws" }, status: 400, code: "InvalidIdentityToken",
			mentions: []string{"Incorrect token audience", presentedJWT(iss, sub, "api://not-aws")}},
		{name: "wrong subject", role: func(r *idp.AWSRole) { r.Subject = otherSub }, status: 403, code: "AccessDenied",
			mentions: []string{"Not authorized to perform sts:AssumeRoleWithWebIdentity", otherSub, presentedJWT(iss, sub, awsAppIDURI)}},
		{name: "wrong issuer", role: func(r *idp.AWSRole) { r.Provider = w.stranger.Issuer() }, status: 400, code: "InvalidIdentityToken",
			mentions: []string{"No OpenIDConnect provider found in your account for " + iss, presentedJWT(iss, sub, awsAppIDURI)}},
		{name: "expired token", now: shifted(2 * time.Hour), status: 400, code: "ExpiredTokenException",
			mentions: []string{"Token expired", presentedJWT(iss, sub, awsAppIDURI)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			role, p := good, peer
			if tc.role != nil {
				tc.role(&role)
			}
			if tc.peer != nil {
				tc.peer(&p)
			}
			a := w.aws([]idp.AWSRole{role}, tc.now)
			prov, err := AWS(tctx(t), HomeAzure, p, w.endpoints(a, nil, nil, nil))
			if err != nil {
				t.Fatal(err)
			}
			_, err = prov.Retrieve(tctx(t))
			e := wantRefusal(t, err, "azure → aws", tc.status, tc.code, append(tc.mentions, "sts:AssumeRoleWithWebIdentity into "+fromAzureRole)...)
			if e.Presented == nil || e.Presented.Subject != sub {
				t.Errorf("Presented = %+v", e.Presented)
			}
			if ok, _ := a.Counts(idp.OpAssumeRoleWithWebIdentity); ok != 0 {
				t.Errorf("the fake accepted %d exchanges", ok)
			}
		})
	}

	t.Run("managed identity unavailable", func(t *testing.T) {
		// (MSAL keeps managed-identity tokens in a process-wide cache: use a resource not asked for yet.)
		t.Setenv("IDENTITY_HEADER", "not-this-instance")
		a := w.aws([]idp.AWSRole{good}, nil)
		p := peer
		p.AWSAudience = "api://aws-federation-2"
		prov, err := AWS(tctx(t), HomeAzure, p, w.endpoints(a, nil, nil, nil))
		if err != nil {
			t.Fatal(err)
		}
		_, err = prov.Retrieve(tctx(t))
		wantRefusal(t, err, "azure → aws", 401, "", "managed-identity token for audience \"api://aws-federation-2\"", "X-IDENTITY-HEADER")
		if a.Accepted()+a.Refused() != 0 {
			t.Error("STS was called without a token")
		}
	})

	t.Run("missing settings", func(t *testing.T) {
		_, err := AWS(tctx(t), HomeAzure, Peer{AWSRegion: testRegion}, Endpoints{})
		if err == nil || !strings.Contains(err.Error(), "azure → aws: configuration: Peer.AWSRoleARN must be set") {
			t.Fatalf("err = %v", err)
		}
		_, err = AWS(tctx(t), HomeAzure, Peer{AWSRoleARN: fromAzureRole, AWSRegion: testRegion}, Endpoints{})
		if err == nil || !strings.Contains(err.Error(), "azure → aws: configuration: Peer.AWSAudience must be set") {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestGCPToAWS: the runtime service account's ID token from the metadata server → AssumeRoleWithWebIdentity.
func TestGCPToAWS(t *testing.T) {
	w := newWorld(t)
	good := idp.AWSRole{RoleArn: fromGCPRole, Provider: w.google.Issuer(), Audience: DefaultAWSAudience, Subject: w.saID}
	peer := Peer{AWSRoleARN: fromGCPRole, AWSRegion: testRegion} // AWSAudience defaults to sts.amazonaws.com
	iss := w.google.Issuer()

	t.Run("success, cached", func(t *testing.T) {
		a, md := w.aws([]idp.AWSRole{good}, nil), w.metadata(nil)
		prov, err := AWS(tctx(t), HomeGCP, peer, w.endpoints(a, nil, nil, md))
		if err != nil {
			t.Fatal(err)
		}
		c1, err := prov.Retrieve(tctx(t))
		if err != nil {
			t.Fatalf("Retrieve: %v", err)
		}
		if sess, ok := a.Session(c1.AccessKeyID); !ok || sess.Subject != w.saID || sess.RoleArn != fromGCPRole {
			t.Fatalf("session %+v", sess)
		}
		if _, err := prov.Retrieve(tctx(t)); err != nil {
			t.Fatal(err)
		}
		if ok, _ := a.Counts(idp.OpAssumeRoleWithWebIdentity); ok != 1 {
			t.Errorf("%d exchanges, want 1 (cached)", ok)
		}
		if ok, _ := md.Counts(idp.OpMetadataIdentity); ok != 1 {
			t.Errorf("%d ID tokens fetched, want 1", ok)
		}
	})

	t.Run("refreshed near expiry", func(t *testing.T) {
		// Both clocks 57 minutes behind: the one-hour session ends 3 minutes from now, inside the
		// 5-minute refresh window, so every Retrieve exchanges a fresh token.
		skew := shifted(-57 * time.Minute)
		a, md := w.aws([]idp.AWSRole{good}, skew), w.metadata(skew)
		prov, err := AWS(tctx(t), HomeGCP, peer, w.endpoints(a, nil, nil, md))
		if err != nil {
			t.Fatal(err)
		}
		c1, err := prov.Retrieve(tctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Until(c1.Expires); d > 5*time.Minute {
			t.Fatalf("the session ends in %v, the test needs < 5m", d)
		}
		c2, err := prov.Retrieve(tctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if c2.AccessKeyID == c1.AccessKeyID {
			t.Error("credentials about to expire were not replaced")
		}
		if ok, _ := a.Counts(idp.OpAssumeRoleWithWebIdentity); ok != 2 {
			t.Errorf("%d exchanges, want 2", ok)
		}
	})

	for _, tc := range []struct {
		name     string
		role     func(r *idp.AWSRole)
		peer     func(p *Peer)
		mdNow    func() time.Time
		status   int
		code     string
		mentions []string
	}{
		{name: "wrong audience", peer: func(p *Peer) { p.AWSAudience = "https://example.com/not-aws" }, status: 400, code: "InvalidIdentityToken",
			mentions: []string{"Incorrect token audience", presentedJWT(iss, w.saID, "https://example.com/not-aws")}},
		{name: "wrong subject", role: func(r *idp.AWSRole) { r.Subject = "100000000000000000099" }, status: 403, code: "AccessDenied",
			mentions: []string{"100000000000000000099", presentedJWT(iss, w.saID, DefaultAWSAudience)}},
		{name: "wrong issuer", role: func(r *idp.AWSRole) { r.Provider = w.stranger.Issuer() }, status: 400, code: "InvalidIdentityToken",
			mentions: []string{"No OpenIDConnect provider found", presentedJWT(iss, w.saID, DefaultAWSAudience)}},
		{name: "expired token", mdNow: shifted(-2 * time.Hour), status: 400, code: "ExpiredTokenException",
			mentions: []string{"Token expired", presentedJWT(iss, w.saID, DefaultAWSAudience) + " exp="}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			role, p := good, peer
			if tc.role != nil {
				tc.role(&role)
			}
			if tc.peer != nil {
				tc.peer(&p)
			}
			a, md := w.aws([]idp.AWSRole{role}, nil), w.metadata(tc.mdNow)
			prov, err := AWS(tctx(t), HomeGCP, p, w.endpoints(a, nil, nil, md))
			if err != nil {
				t.Fatal(err)
			}
			_, err = prov.Retrieve(tctx(t))
			wantRefusal(t, err, "gcp → aws", tc.status, tc.code, tc.mentions...)
		})
	}
}

// TestAWSFromAWSAndLocal: the Lambda's own credentials (same cloud) need no federation.
func TestAWSFromAWSAndLocal(t *testing.T) {
	isolateEnv(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDLOCALLOCAL000001")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "local-secret")
	t.Setenv("AWS_REGION", testRegion)
	for _, home := range []Home{HomeAWS, HomeLocal} {
		prov, err := AWS(tctx(t), home, Peer{}, Endpoints{})
		if err != nil {
			t.Fatal(err)
		}
		c, err := prov.Retrieve(tctx(t))
		if err != nil || c.AccessKeyID != "AKIDLOCALLOCAL000001" {
			t.Errorf("%s: %v (source %s)", home, err, c.Source)
		}
	}
	if _, err := AWS(tctx(t), Home("moon"), Peer{}, Endpoints{}); err == nil || !strings.Contains(err.Error(), `unknown home "moon"`) {
		t.Errorf("unknown home: %v", err)
	}
}
