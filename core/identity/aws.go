package identity

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// AWS returns credentials for an AWS peer, cached by aws.CredentialsCache and refreshed
// five minutes before they expire.
//
//   - azure → aws: a managed-identity token for p.AWSAudience (required: the App ID URI the IAM OIDC
//     provider lists as a client ID) → sts:AssumeRoleWithWebIdentity into p.AWSRoleARN.
//   - gcp → aws: a metadata-server ID token for p.AWSAudience (default sts.amazonaws.com) → the same.
//   - aws, local: the ambient credentials (Lambda: the execution role), with sts:AssumeRole into
//     p.AWSRoleARN when it is set.
func AWS(ctx context.Context, home Home, p Peer, e Endpoints) (aws.CredentialsProvider, error) {
	if err := checkHome(home, "aws"); err != nil {
		return nil, err
	}
	dir := direction(home, "aws")
	window := func(o *aws.CredentialsCacheOptions) { o.ExpiryWindow = awsExpiryWindow }
	switch home {
	case HomeAWS, HomeLocal:
		cfg, err := loadAWSConfig(ctx, p, e, dir)
		if err != nil {
			return nil, err
		}
		if p.AWSRoleARN == "" {
			return cfg.Credentials, nil
		}
		prov := stscreds.NewAssumeRoleProvider(stsClient(cfg, e), p.AWSRoleARN, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = "keyferry-" + string(home)
		})
		return aws.NewCredentialsCache(prov, window), nil
	}

	if err := missing(dir, "AWSRoleARN", p.AWSRoleARN, "AWSRegion", p.AWSRegion); err != nil {
		return nil, err
	}
	aud := p.AWSAudience
	if home == HomeGCP {
		aud = orDefault(aud, DefaultAWSAudience)
	}
	if err := missing(dir, "AWSAudience", aud); err != nil {
		return nil, err
	}
	ht, err := newHomeTokens(ctx, home, p, e, "aws")
	if err != nil {
		return nil, err
	}
	o := sts.Options{Region: p.AWSRegion, HTTPClient: e.httpClient(), RetryMaxAttempts: e.AWSMaxAttempts}
	if e.AWSSTS != "" {
		o.BaseEndpoint = aws.String(e.AWSSTS)
	}
	prov := &webIdentityProvider{dir: dir, client: sts.New(o), roleARN: p.AWSRoleARN, audience: aud,
		session: "keyferry-" + string(home), tokens: ht}
	return aws.NewCredentialsCache(prov, window), nil
}

// webIdentityProvider runs stscreds' WebIdentityRoleProvider with a retriever bound to the call's
// context, and turns a refusal into an *Error.
type webIdentityProvider struct {
	dir, roleARN, audience, session string
	client                          *sts.Client
	tokens                          *homeTokens
}

func (w *webIdentityProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	ctx, a := withAttempt(ctx)
	retriever := tokenRetriever{ctx: ctx, fetch: func(ctx context.Context) (string, error) { return w.tokens.token(ctx, w.audience) }}
	prov := stscreds.NewWebIdentityRoleProvider(w.client, w.roleARN, retriever, func(o *stscreds.WebIdentityRoleOptions) {
		o.RoleSessionName = w.session
	})
	creds, err := prov.Retrieve(ctx)
	if err != nil {
		return aws.Credentials{}, fail(w.dir, fmt.Sprintf("sts:AssumeRoleWithWebIdentity into %s", w.roleARN), a, err)
	}
	return creds, nil
}

// tokenRetriever is a stscreds.IdentityTokenRetriever (which has no context) bound to one call's context.
type tokenRetriever struct {
	ctx   context.Context
	fetch func(context.Context) (string, error)
}

func (t tokenRetriever) GetIdentityToken() ([]byte, error) {
	tok, err := t.fetch(t.ctx)
	return []byte(tok), err
}
