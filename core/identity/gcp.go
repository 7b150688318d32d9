package identity

import (
	"context"
	"fmt"
	"strings"

	"cloud.google.com/go/auth"
	"cloud.google.com/go/auth/credentials"
	"cloud.google.com/go/auth/credentials/externalaccount"
	"cloud.google.com/go/auth/credentials/impersonate"
	"github.com/aws/aws-sdk-go-v2/aws"
	"google.golang.org/api/option"
)

// Subject token types of the Google STS exchange.
const (
	subjectTokenTypeJWT = "urn:ietf:params:oauth:token-type:jwt"
	subjectTokenTypeAWS = "urn:ietf:params:aws:token-type:aws4_request"
)

// GCP returns credentials for a GCP peer and the client options that use them
// (option.WithAuthCredentials). cloud.google.com/go/auth caches the access token and refreshes it
// 3m45s before it expires (in the background while the old token is still valid).
//
//   - aws → gcp: workload identity federation with the Lambda's role credentials: a SigV4-signed
//     GetCallerIdentity (the credentials themselves never leave the function) exchanged at Google STS
//     for p.GCPAudience.
//   - azure → gcp: a managed-identity token for p.GCPTokenAudience exchanged at Google STS.
//   - both: then generateAccessToken for p.GCPServiceAccount when it is set.
//   - gcp, local: Application Default Credentials (impersonating p.GCPServiceAccount when set).
func GCP(ctx context.Context, home Home, p Peer, e Endpoints) (*auth.Credentials, []option.ClientOption, error) {
	if err := checkHome(home, "gcp"); err != nil {
		return nil, nil, err
	}
	dir := direction(home, "gcp")
	scopes := []string{CloudPlatformScope}
	if home == HomeGCP || home == HomeLocal {
		creds, err := credentials.DetectDefault(&credentials.DetectOptions{Scopes: scopes})
		if err != nil {
			return nil, nil, &Error{Direction: dir, Step: "application default credentials", Err: err}
		}
		if p.GCPServiceAccount != "" {
			if creds, err = impersonate.NewCredentials(&impersonate.CredentialsOptions{
				TargetPrincipal: p.GCPServiceAccount, Scopes: scopes, Credentials: creds}); err != nil {
				return nil, nil, &Error{Direction: dir, Step: "impersonate " + p.GCPServiceAccount, Err: err}
			}
		}
		return creds, []option.ClientOption{option.WithAuthCredentials(creds)}, nil
	}

	if err := missing(dir, "GCPAudience", p.GCPAudience); err != nil {
		return nil, nil, err
	}
	opts := &externalaccount.Options{
		Audience: p.GCPAudience,
		TokenURL: e.GoogleSTSTokenURL, // "" is https://sts.googleapis.com/v1/token
		Scopes:   scopes,
		Client:   e.httpClient(),
	}
	if p.GCPServiceAccount != "" {
		opts.ServiceAccountImpersonationURL = strings.TrimSuffix(orDefault(e.IAMCredentialsURL, defaultIAMCredentialsURL), "/") +
			"/v1/projects/-/serviceAccounts/" + p.GCPServiceAccount + ":generateAccessToken"
	}
	switch home {
	case HomeAWS:
		cfg, err := loadAWSConfig(ctx, p, e, dir)
		if err != nil {
			return nil, nil, err
		}
		creds := cfg.Credentials
		if _, ok := creds.(*aws.CredentialsCache); !ok && creds != nil {
			creds = aws.NewCredentialsCache(creds) // externalaccount does not cache what the provider returns
		}
		opts.SubjectTokenType = subjectTokenTypeAWS
		opts.AwsSecurityCredentialsProvider = &awsCredentialsSupplier{dir: dir, region: cfg.Region, creds: creds}
	case HomeAzure:
		ht, err := newHomeTokens(ctx, home, p, e, "gcp")
		if err != nil {
			return nil, nil, err
		}
		opts.SubjectTokenType = subjectTokenTypeJWT
		opts.SubjectTokenProvider = &jwtSupplier{tokens: ht, audience: orDefault(p.GCPTokenAudience, "https:"+p.GCPAudience)}
	}
	inner, err := externalaccount.NewCredentials(opts)
	if err != nil {
		return nil, nil, &Error{Direction: dir, Step: "external account credentials", Err: err}
	}
	creds := auth.NewCredentials(&auth.CredentialsOptions{
		TokenProvider:          &gcpTokenProvider{inner: inner, dir: dir, audience: p.GCPAudience, sa: p.GCPServiceAccount},
		UniverseDomainProvider: auth.CredentialsPropertyFunc(inner.UniverseDomain),
	})
	return creds, []option.ClientOption{option.WithAuthCredentials(creds)}, nil
}

// gcpTokenProvider is the cached external-account token provider with refusals turned into *Error.
type gcpTokenProvider struct {
	inner             *auth.Credentials
	dir, audience, sa string
}

func (g *gcpTokenProvider) Token(ctx context.Context) (*auth.Token, error) {
	ctx, a := withAttempt(ctx)
	t, err := g.inner.Token(ctx)
	if err != nil {
		step := "Google STS token exchange for " + g.audience
		if _, ans := a.get(); ans != nil && strings.HasSuffix(ans.url, ":generateAccessToken") {
			step = fmt.Sprintf("impersonation of %s (generateAccessToken) with the federated token of %s", g.sa, g.audience)
		}
		return nil, fail(g.dir, step, a, err)
	}
	return t, nil
}

// awsCredentialsSupplier hands the Lambda's role credentials to the library, which signs the
// GetCallerIdentity request locally.
type awsCredentialsSupplier struct {
	dir, region string
	creds       aws.CredentialsProvider
}

func (s *awsCredentialsSupplier) AwsRegion(context.Context, *externalaccount.RequestOptions) (string, error) {
	return s.region, nil
}

func (s *awsCredentialsSupplier) AwsSecurityCredentials(ctx context.Context, _ *externalaccount.RequestOptions) (*externalaccount.AwsSecurityCredentials, error) {
	if s.creds == nil {
		err := &Error{Direction: s.dir, Step: "the Lambda's AWS credentials", Err: fmt.Errorf("no AWS credentials in the environment")}
		attemptFrom(ctx).setHome(err)
		return nil, err
	}
	c, err := s.creds.Retrieve(ctx)
	if err != nil {
		e := &Error{Direction: s.dir, Step: "the Lambda's AWS credentials", Err: err}
		attemptFrom(ctx).setHome(e)
		return nil, e
	}
	attemptFrom(ctx).present(presentAWS(c, s.region, "GetCallerIdentity"))
	return &externalaccount.AwsSecurityCredentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken}, nil
}

// jwtSupplier supplies the home JWT as the subject token.
type jwtSupplier struct {
	tokens   *homeTokens
	audience string
}

func (s *jwtSupplier) SubjectToken(ctx context.Context, _ *externalaccount.RequestOptions) (string, error) {
	return s.tokens.token(ctx, s.audience)
}
