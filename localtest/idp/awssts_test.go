package idp

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"
	"github.com/keyferry/keyferry/localtest/oidc"
)

const (
	testAccount  = "111122223333"
	testRoleArn  = "arn:aws:iam::" + testAccount + ":role/keyferry-from-azure"
	testAudience = "api://aws-federation"
)

func startSTS(t *testing.T, cfg AWSSTSConfig) *AWSSTS {
	t.Helper()
	s, err := StartAWSSTS(cfg)
	if err != nil {
		t.Fatalf("StartAWSSTS: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// stsClient is the real SDK client pointed at the fake. No retries, so each call is one request.
func stsClient(fake *AWSSTS, creds aws.CredentialsProvider) *sts.Client {
	return sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(fake.URL), Credentials: creds,
		HTTPClient: fake.HTTPClient(), RetryMaxAttempts: 1})
}

type tokenFunc func() ([]byte, error)

func (f tokenFunc) GetIdentityToken() ([]byte, error) { return f() }

func TestAWSSTSAssumeRoleWithSDK(t *testing.T) {
	iss := startIssuer(t, oidc.Options{TLS: true}) // HTTPS: the fake fetches the JWKS with the CA's client
	sub := iss.PrincipalID()
	fake := startSTS(t, AWSSTSConfig{HTTPClient: iss.HTTPClient(), Roles: []AWSRole{
		{RoleArn: testRoleArn, Provider: iss.Issuer(), Audience: testAudience, Subject: sub},
	}})
	tok := mint(t, iss, iss.ManagedIdentityClaims(testAudience), nil)

	out, err := stsClient(fake, aws.AnonymousCredentials{}).AssumeRoleWithWebIdentity(tctx(t), &sts.AssumeRoleWithWebIdentityInput{
		RoleArn: aws.String(testRoleArn), RoleSessionName: aws.String("keyferry-azure"),
		WebIdentityToken: aws.String(tok), DurationSeconds: aws.Int32(1800)})
	if err != nil {
		t.Fatalf("AssumeRoleWithWebIdentity: %v", err)
	}
	c := out.Credentials
	if !strings.HasPrefix(aws.ToString(c.AccessKeyId), "ASIA") || aws.ToString(c.SecretAccessKey) == "" || aws.ToString(c.SessionToken) == "" {
		t.Fatalf("credentials %+v", c)
	}
	if d := time.Until(aws.ToTime(c.Expiration)); d < 29*time.Minute || d > 31*time.Minute {
		t.Errorf("Expiration in %v, want 30m (DurationSeconds=1800)", d)
	}
	if got := aws.ToString(out.SubjectFromWebIdentityToken); got != sub {
		t.Errorf("SubjectFromWebIdentityToken %q, want %q", got, sub)
	}
	if got := aws.ToString(out.Audience); got != testAudience {
		t.Errorf("Audience %q", got)
	}
	if got, want := aws.ToString(out.Provider), "arn:aws:iam::"+testAccount+":oidc-provider/"+strings.TrimPrefix(iss.Issuer(), "https://"); got != want {
		t.Errorf("Provider %q, want %q", got, want)
	}
	wantArn := "arn:aws:sts::" + testAccount + ":assumed-role/keyferry-from-azure/keyferry-azure"
	if got := aws.ToString(out.AssumedRoleUser.Arn); got != wantArn {
		t.Errorf("AssumedRoleUser.Arn %q, want %q", got, wantArn)
	}
	if id := aws.ToString(out.AssumedRoleUser.AssumedRoleId); !strings.HasPrefix(id, "AROA") || !strings.HasSuffix(id, ":keyferry-azure") {
		t.Errorf("AssumedRoleId %q", id)
	}

	// The issued credentials work for GetCallerIdentity (SigV4 verified with the session's secret).
	static := credentials.NewStaticCredentialsProvider(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken))
	who, err := stsClient(fake, static).GetCallerIdentity(tctx(t), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("GetCallerIdentity: %v", err)
	}
	if aws.ToString(who.Arn) != wantArn || aws.ToString(who.Account) != testAccount {
		t.Errorf("GetCallerIdentity = %s / %s", aws.ToString(who.Arn), aws.ToString(who.Account))
	}
	if a, r := fake.Counts(OpAssumeRoleWithWebIdentity); a != 1 || r != 0 {
		t.Errorf("AssumeRoleWithWebIdentity counts %d/%d, want 1/0", a, r)
	}
	if a, r := fake.Counts(OpGetCallerIdentity); a != 1 || r != 0 {
		t.Errorf("GetCallerIdentity counts %d/%d, want 1/0", a, r)
	}
}

func TestAWSSTSWebIdentityRoleProvider(t *testing.T) {
	iss := startIssuer(t, oidc.Options{})
	fake := startSTS(t, AWSSTSConfig{Roles: []AWSRole{
		{RoleArn: testRoleArn, Provider: iss.Issuer(), Audience: testAudience, Subject: "repo:keyferry/*:ref:refs/heads/main"},
	}})
	retriever := tokenFunc(func() ([]byte, error) {
		tok, err := iss.Mint(map[string]any{"aud": testAudience, "sub": "repo:keyferry/keyferry:ref:refs/heads/main"})
		return []byte(tok), err
	})
	client := sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(fake.URL)})
	prov := stscreds.NewWebIdentityRoleProvider(client, testRoleArn, retriever, func(o *stscreds.WebIdentityRoleOptions) {
		o.RoleSessionName = "keyferry-gcp"
		o.Duration = time.Hour
	})
	creds, err := aws.NewCredentialsCache(prov).Retrieve(tctx(t))
	if err != nil {
		t.Fatalf("Retrieve: %v", err)
	}
	if !strings.HasPrefix(creds.AccessKeyID, "ASIA") || !creds.CanExpire || time.Until(creds.Expires) < 55*time.Minute {
		t.Fatalf("credentials %+v", creds)
	}
	if creds.AccountID != testAccount {
		t.Errorf("AccountID %q, want %q (from AssumedRoleUser.Arn)", creds.AccountID, testAccount)
	}
	sess, ok := fake.Session(creds.AccessKeyID)
	if !ok || sess.RoleArn != testRoleArn || sess.Subject != "repo:keyferry/keyferry:ref:refs/heads/main" {
		t.Fatalf("session %+v, %v", sess, ok)
	}

	// A refused token surfaces as the SDK's typed error (stscreds retries InvalidIdentityToken).
	bad := stscreds.NewWebIdentityRoleProvider(client, testRoleArn, tokenFunc(func() ([]byte, error) {
		tok, err := iss.Mint(map[string]any{"aud": "api://somewhere-else", "sub": "x"})
		return []byte(tok), err
	}), func(o *stscreds.WebIdentityRoleOptions) { o.RoleSessionName = "keyferry-gcp" })
	_, err = bad.Retrieve(tctx(t))
	var iit *types.InvalidIdentityTokenException
	if !errors.As(err, &iit) || !strings.Contains(iit.ErrorMessage(), "Incorrect token audience") {
		t.Fatalf("Retrieve with a wrong audience: %v", err)
	}
	if fake.RefusedWith("InvalidIdentityToken") < 1 || fake.Accepted() != 1 {
		t.Errorf("accepted %d, InvalidIdentityToken refusals %d", fake.Accepted(), fake.RefusedWith("InvalidIdentityToken"))
	}
}

func TestAWSSTSRefusals(t *testing.T) {
	is := newIssuers(t, oidc.Options{})
	other := startIssuer(t, oidc.Options{}) // trusted by another role only
	const sub = "system:serviceaccount:keyferry:replicator"
	otherRole := "arn:aws:iam::" + testAccount + ":role/other"
	fake := startSTS(t, AWSSTSConfig{Roles: []AWSRole{
		{RoleArn: testRoleArn, Provider: is.good.Issuer(), Audience: testAudience, Subject: "system:serviceaccount:keyferry:*"},
		{RoleArn: otherRole, Provider: is.good.Issuer(), Audience: "api://other-role"},
		{RoleArn: "arn:aws:iam::" + testAccount + ":role/third", Provider: other.Issuer(), Audience: testAudience},
	}})
	base := map[string]any{"iss": is.good.Issuer(), "aud": testAudience, "sub": sub}
	bad := refusalTokens(t, is, base, "api://not-a-client-id", "system:serviceaccount:evil:pod")
	now := time.Now()

	cases := []struct {
		name, token, role, session string
		code                       string
		status                     int
		mentions                   []string
	}{
		{"wrong audience", bad["wrong audience"], testRoleArn, "", "InvalidIdentityToken", 400,
			[]string{"Incorrect token audience", "api://not-a-client-id", testAudience}},
		{"wrong subject", bad["wrong subject"], testRoleArn, "", "AccessDenied", 403,
			[]string{"Not authorized to perform sts:AssumeRoleWithWebIdentity", "StringLike", "system:serviceaccount:keyferry:*", "system:serviceaccount:evil:pod"}},
		{"wrong issuer", bad["wrong issuer"], testRoleArn, "", "InvalidIdentityToken", 400,
			[]string{"No OpenIDConnect provider found in your account for " + is.stranger.Issuer(), is.good.Issuer()}},
		{"expired", bad["expired"], testRoleArn, "", "ExpiredTokenException", 400,
			[]string{"Token expired: current date/time", "expired"}},
		{"bad signature", bad["bad signature"], testRoleArn, "", "InvalidIdentityToken", 400,
			[]string{"could not be validated", "signature does not verify"}},
		{"audience of another role", mint(t, is.good, base, map[string]any{"aud": "api://other-role"}), testRoleArn, "", "AccessDenied", 403,
			[]string{"StringEquals", ":aud", testAudience, "api://other-role"}},
		{"provider of another role", mint(t, other, base, map[string]any{"iss": other.Issuer()}), testRoleArn, "", "AccessDenied", 403,
			[]string{"Principal.Federated", other.Issuer()}},
		{"not yet valid", mint(t, is.good, base, map[string]any{"nbf": now.Add(10 * time.Minute)}), testRoleArn, "", "InvalidIdentityToken", 400,
			[]string{"not-yet-valid"}},
		{"unknown role", mint(t, is.good, base, nil), "arn:aws:iam::" + testAccount + ":role/nope", "", "AccessDenied", 403,
			[]string{"role/nope"}},
		{"bad session name", mint(t, is.good, base, nil), testRoleArn, "has space", "ValidationError", 400,
			[]string{"roleSessionName"}},
		{"not a JWT", "not-a-jwt", testRoleArn, "", "InvalidIdentityToken", 400, []string{"not a JWT"}},
	}
	client := stsClient(fake, aws.AnonymousCredentials{})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			session := tc.session
			if session == "" {
				session = "s1"
			}
			expectOneRefusal(t, fake, func() {
				_, err := client.AssumeRoleWithWebIdentity(tctx(t), &sts.AssumeRoleWithWebIdentityInput{
					RoleArn: aws.String(tc.role), RoleSessionName: aws.String(session), WebIdentityToken: aws.String(tc.token)})
				var api smithy.APIError
				if !errors.As(err, &api) {
					t.Fatalf("want an API error, got %v", err)
				}
				if api.ErrorCode() != tc.code {
					t.Errorf("code %q (%s), want %q", api.ErrorCode(), api.ErrorMessage(), tc.code)
				}
				var re *awshttp.ResponseError
				if errors.As(err, &re) && re.HTTPStatusCode() != tc.status {
					t.Errorf("HTTP %d, want %d", re.HTTPStatusCode(), tc.status)
				}
				wantContains(t, "message", api.ErrorMessage(), tc.mentions...)
				if strings.Contains(api.ErrorMessage(), tc.token) {
					t.Error("the message contains the token")
				}
			})
		})
	}
	// The SDK maps the codes to its modeled error types.
	_, err := client.AssumeRoleWithWebIdentity(tctx(t), &sts.AssumeRoleWithWebIdentityInput{
		RoleArn: aws.String(testRoleArn), RoleSessionName: aws.String("s1"), WebIdentityToken: aws.String(bad["expired"])})
	var expired *types.ExpiredTokenException
	if !errors.As(err, &expired) {
		t.Errorf("expired token: %T %v, want *types.ExpiredTokenException", err, err)
	}
	if fake.Accepted() != 0 {
		t.Errorf("accepted %d, want 0", fake.Accepted())
	}
}

func TestAWSSTSGetCallerIdentityRefusals(t *testing.T) {
	iss := startIssuer(t, oidc.Options{})
	var skew atomic.Int64 // the fake's clock offset
	fake := startSTS(t, AWSSTSConfig{Roles: []AWSRole{{RoleArn: testRoleArn, Provider: iss.Issuer(), Audience: testAudience}},
		Now: func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }})
	out, err := stsClient(fake, nil).AssumeRoleWithWebIdentity(tctx(t), &sts.AssumeRoleWithWebIdentityInput{
		RoleArn: aws.String(testRoleArn), RoleSessionName: aws.String("s1"), WebIdentityToken: aws.String(mint(t, iss, map[string]any{"aud": testAudience, "sub": "x"}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ak, sk, st := aws.ToString(out.Credentials.AccessKeyId), aws.ToString(out.Credentials.SecretAccessKey), aws.ToString(out.Credentials.SessionToken)
	for _, tc := range []struct {
		name     string
		creds    aws.CredentialsProvider
		code     string
		mentions string
	}{
		{"wrong secret", credentials.NewStaticCredentialsProvider(ak, sk[:39]+"x", st), "SignatureDoesNotMatch", "does not match"},
		{"unknown key", credentials.NewStaticCredentialsProvider("ASIAUNKNOWNUNKNOWN12", sk, st), "InvalidClientTokenId", "was not issued by this STS"},
		{"wrong session token", credentials.NewStaticCredentialsProvider(ak, sk, st+"x"), "InvalidClientTokenId", "X-Amz-Security-Token"},
		{"unsigned", aws.AnonymousCredentials{}, "MissingAuthenticationToken", "Authentication Token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectOneRefusal(t, fake, func() {
				_, err := stsClient(fake, tc.creds).GetCallerIdentity(tctx(t), &sts.GetCallerIdentityInput{})
				var api smithy.APIError
				if !errors.As(err, &api) || api.ErrorCode() != tc.code {
					t.Fatalf("GetCallerIdentity: %v, want code %s", err, tc.code)
				}
				wantContains(t, "message", api.ErrorMessage(), tc.mentions)
			})
		})
	}
	// An expired session is refused with ExpiredToken.
	skew.Store(int64(2 * time.Hour))
	_, err = stsClient(fake, credentials.NewStaticCredentialsProvider(ak, sk, st)).GetCallerIdentity(tctx(t), &sts.GetCallerIdentityInput{})
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != "ExpiredToken" {
		t.Errorf("GetCallerIdentity with an expired session: %v", err)
	}
}

func TestAWSSTSUnsupportedAction(t *testing.T) {
	fake := startSTS(t, AWSSTSConfig{})
	status, body := postForm(t, fake.HTTPClient(), fake.URL, url.Values{"Action": {"AssumeRole"}, "Version": {"2011-06-15"}}, nil)
	code, msg, err := ParseAWSError(body)
	if status != 400 || err != nil || code != "InvalidAction" {
		t.Fatalf("HTTP %d %s %v", status, body, err)
	}
	wantContains(t, "message", msg, "AssumeRole")
}

// lambdaSession is a Lambda execution role's session, given to the fake (AWS issues it outside any call).
func lambdaSession() AWSSession {
	return AWSSession{AccessKeyID: "ASIALAMBDAEXECROLE01", SecretAccessKey: "lambda-secret-" + strings.Repeat("k", 26),
		SessionToken: "IQoJb3JpZ2luX2VjELAMBDA", RoleArn: "arn:aws:iam::" + testAccount + ":role/keyferry-lambda",
		AssumedRoleArn:    "arn:aws:sts::" + testAccount + ":assumed-role/keyferry-lambda/keyferry",
		LambdaFunctionARN: "arn:aws:lambda:us-east-1:" + testAccount + ":function:keyferry"}
}

func TestAWSSTSGetWebIdentityToken(t *testing.T) {
	outbound := startIssuer(t, oidc.Options{})
	lambda := lambdaSession()
	fake := startSTS(t, AWSSTSConfig{OutboundIssuer: outbound, Sessions: []AWSSession{lambda}})
	creds := credentials.NewStaticCredentialsProvider(lambda.AccessKeyID, lambda.SecretAccessKey, lambda.SessionToken)
	const aud = "api://AzureADTokenExchange"
	out, err := stsClient(fake, creds).GetWebIdentityToken(tctx(t), &sts.GetWebIdentityTokenInput{
		Audience: []string{aud}, SigningAlgorithm: aws.String("RS256"), DurationSeconds: aws.Int32(300),
		Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("secrets")}}})
	if err != nil {
		t.Fatalf("GetWebIdentityToken: %v", err)
	}
	if d := time.Until(aws.ToTime(out.Expiration)); d < 290*time.Second || d > 301*time.Second {
		t.Errorf("Expiration in %v, want 300s", d)
	}
	claims, err := oidc.NewVerifier(outbound.Issuer(), []string{aud}).Verify(tctx(t), aws.ToString(out.WebIdentityToken))
	if err != nil {
		t.Fatalf("the token does not verify against the outbound issuer: %v", err)
	}
	if claims.Subject != lambda.RoleArn {
		t.Errorf("sub %q, want the role ARN %q", claims.Subject, lambda.RoleArn)
	}
	awsClaims, _ := claims.Raw["https://sts.amazonaws.com/"].(map[string]any)
	if awsClaims["aws_account"] != testAccount || awsClaims["source_region"] != "us-east-1" ||
		awsClaims["lambda_source_function_arn"] != lambda.LambdaFunctionARN {
		t.Errorf("AWS claims %v", awsClaims)
	}
	if tags, _ := awsClaims["request_tags"].(map[string]any); tags["team"] != "secrets" {
		t.Errorf("request_tags %v", awsClaims["request_tags"])
	}
	if _, ok := claims.Raw["jti"].(string); !ok {
		t.Error("no jti")
	}
	if ok, no := fake.CountsFor(OpGetWebIdentityToken, aud); ok != 1 || no != 0 {
		t.Errorf("CountsFor(%s) = %d/%d, want 1/0", aud, ok, no)
	}

	// A session issued by AssumeRoleWithWebIdentity may call it too: sub is that role.
	inbound := startIssuer(t, oidc.Options{})
	if err := fake.AddRole(AWSRole{RoleArn: testRoleArn, Provider: inbound.Issuer(), Audience: testAudience}); err != nil {
		t.Fatal(err)
	}
	ar, err := stsClient(fake, nil).AssumeRoleWithWebIdentity(tctx(t), &sts.AssumeRoleWithWebIdentityInput{RoleArn: aws.String(testRoleArn),
		RoleSessionName: aws.String("s1"), WebIdentityToken: aws.String(mint(t, inbound, map[string]any{"aud": testAudience, "sub": "x"}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	c := ar.Credentials
	assumed := credentials.NewStaticCredentialsProvider(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken))
	out, err = stsClient(fake, assumed).GetWebIdentityToken(tctx(t), &sts.GetWebIdentityTokenInput{
		Audience: []string{"vault"}, SigningAlgorithm: aws.String("RS256")})
	if err != nil {
		t.Fatal(err)
	}
	if claims, err := oidc.NewVerifier(outbound.Issuer(), []string{"vault"}).Verify(tctx(t), aws.ToString(out.WebIdentityToken)); err != nil || claims.Subject != testRoleArn {
		t.Errorf("assumed session: %v %+v", err, claims)
	}
}

func TestAWSSTSGetWebIdentityTokenRefusals(t *testing.T) {
	outbound := startIssuer(t, oidc.Options{})
	lambda := lambdaSession()
	short := lambdaSession()
	short.AccessKeyID, short.Expiration = "ASIASHORTLIVEDSESS01", time.Now().Add(2*time.Minute)
	fake := startSTS(t, AWSSTSConfig{OutboundIssuer: outbound, Sessions: []AWSSession{lambda, short}})
	disabled := startSTS(t, AWSSTSConfig{Sessions: []AWSSession{lambda}})
	good := credentials.NewStaticCredentialsProvider(lambda.AccessKeyID, lambda.SecretAccessKey, lambda.SessionToken)
	in := func(mod func(*sts.GetWebIdentityTokenInput)) *sts.GetWebIdentityTokenInput {
		i := &sts.GetWebIdentityTokenInput{Audience: []string{"aud"}, SigningAlgorithm: aws.String("RS256")}
		if mod != nil {
			mod(i)
		}
		return i
	}
	for _, tc := range []struct {
		name     string
		fake     *AWSSTS
		creds    aws.CredentialsProvider
		input    *sts.GetWebIdentityTokenInput
		code     string
		mentions string
	}{
		{"federation disabled", disabled, good, in(nil), "OutboundWebIdentityFederationDisabledException", testAccount},
		{"unsigned", fake, aws.AnonymousCredentials{}, in(nil), "MissingAuthenticationToken", "Authentication Token"},
		{"unknown key", fake, credentials.NewStaticCredentialsProvider("ASIAUNKNOWNUNKNOWN12", lambda.SecretAccessKey, ""), in(nil), "InvalidClientTokenId", "was not issued"},
		{"wrong secret", fake, credentials.NewStaticCredentialsProvider(lambda.AccessKeyID, "x"+lambda.SecretAccessKey[1:], lambda.SessionToken), in(nil), "SignatureDoesNotMatch", "does not match"},
		{"duration too long", fake, good, in(func(i *sts.GetWebIdentityTokenInput) { i.DurationSeconds = aws.Int32(3601) }), "ValidationError", "between 60 and 3600"},
		{"ES384", fake, good, in(func(i *sts.GetWebIdentityTokenInput) { i.SigningAlgorithm = aws.String("ES384") }), "ValidationError", "RS256 only"},
		{"eleven audiences", fake, good, in(func(i *sts.GetWebIdentityTokenInput) { i.Audience = strings.Split("a b c d e f g h i j k", " ") }), "ValidationError", "between 1 and 10"},
		{"outlives the session", fake, credentials.NewStaticCredentialsProvider(short.AccessKeyID, short.SecretAccessKey, short.SessionToken), in(nil), "SessionDurationEscalationException", "beyond its expiration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectOneRefusal(t, tc.fake, func() {
				_, err := stsClient(tc.fake, tc.creds).GetWebIdentityToken(tctx(t), tc.input)
				var api smithy.APIError
				if !errors.As(err, &api) || api.ErrorCode() != tc.code {
					t.Fatalf("GetWebIdentityToken: %v, want code %s", err, tc.code)
				}
				wantContains(t, "message", api.ErrorMessage(), tc.mentions)
				if strings.Contains(api.ErrorMessage(), lambda.AccessKeyID) {
					t.Error("the message shows the whole access key id")
				}
			})
		})
	}
	if n := outbound.Issued(); n != 0 {
		t.Errorf("%d tokens signed for refused requests", n)
	}
}

// TestAWSSTSAuthenticate: a front of another AWS service accepts requests signed with a session the fake
// issued or was given, and refuses other keys, wrong secrets and expired sessions with AWS's codes.
func TestAWSSTSAuthenticate(t *testing.T) {
	lambda := lambdaSession()
	var skew atomic.Int64
	fake := startSTS(t, AWSSTSConfig{Sessions: []AWSSession{lambda},
		Now: func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }})
	inbound := startIssuer(t, oidc.Options{})
	if err := fake.AddRole(AWSRole{RoleArn: testRoleArn, Provider: inbound.Issuer(), Audience: testAudience}); err != nil {
		t.Fatal(err)
	}
	ar, err := stsClient(fake, nil).AssumeRoleWithWebIdentity(tctx(t), &sts.AssumeRoleWithWebIdentityInput{RoleArn: aws.String(testRoleArn),
		RoleSessionName: aws.String("keyferry-azure"), WebIdentityToken: aws.String(mint(t, inbound, map[string]any{"aud": testAudience, "sub": "x"}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	// The front: Secrets Manager's JSON protocol, answering ListSecrets for authenticated callers.
	var caller atomic.Value
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		sess, err := fake.Authenticate(r, body)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		var ae *AWSAuthError
		if errors.As(err, &ae) {
			w.WriteHeader(ae.Status)
			_ = json.NewEncoder(w).Encode(map[string]string{"__type": ae.Code, "message": ae.Message})
			return
		}
		caller.Store(sess.AssumedRoleArn)
		_, _ = io.WriteString(w, `{"SecretList":[]}`)
	}))
	t.Cleanup(front.Close)
	list := func(creds aws.CredentialsProvider) error {
		c := secretsmanager.New(secretsmanager.Options{Region: "us-east-1", BaseEndpoint: aws.String(front.URL), Credentials: creds, RetryMaxAttempts: 1})
		_, err := c.ListSecrets(tctx(t), &secretsmanager.ListSecretsInput{})
		return err
	}
	c := ar.Credentials
	for _, tc := range []struct {
		name   string
		creds  aws.CredentialsProvider
		caller string
	}{
		{"the Lambda's execution role", credentials.NewStaticCredentialsProvider(lambda.AccessKeyID, lambda.SecretAccessKey, lambda.SessionToken), lambda.AssumedRoleArn},
		{"a federated session", credentials.NewStaticCredentialsProvider(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken)),
			"arn:aws:sts::" + testAccount + ":assumed-role/keyferry-from-azure/keyferry-azure"},
	} {
		if err := list(tc.creds); err != nil || caller.Load() != tc.caller {
			t.Errorf("%s: %v (caller %v)", tc.name, err, caller.Load())
		}
	}
	for _, tc := range []struct {
		name  string
		creds aws.CredentialsProvider
		code  string
	}{
		{"any other key", credentials.NewStaticCredentialsProvider("testing", "testing", ""), "InvalidClientTokenId"},
		{"a wrong secret", credentials.NewStaticCredentialsProvider(lambda.AccessKeyID, "wrong", lambda.SessionToken), "SignatureDoesNotMatch"},
		{"no session token", credentials.NewStaticCredentialsProvider(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), ""), "InvalidClientTokenId"},
		{"unsigned", aws.AnonymousCredentials{}, "MissingAuthenticationToken"},
	} {
		var api smithy.APIError
		if err := list(tc.creds); !errors.As(err, &api) || api.ErrorCode() != tc.code {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}
	skew.Store(int64(2 * time.Hour)) // the federated session has expired
	var api smithy.APIError
	if err := list(credentials.NewStaticCredentialsProvider(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken))); !errors.As(err, &api) || api.ErrorCode() != "ExpiredToken" {
		t.Errorf("expired session: %v", err)
	}
	secrets := fake.IssuedSecrets()
	if !slices.Contains(secrets, lambda.SecretAccessKey) || !slices.Contains(secrets, aws.ToString(c.SessionToken)) {
		t.Error("IssuedSecrets misses a session's secrets")
	}
}
