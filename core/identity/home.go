package identity

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"cloud.google.com/go/compute/metadata"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// awsOutboundTokenLifetime is the lifetime requested from sts:GetWebIdentityToken: the token is only
// exchanged at once (Entra, Vault), and a short one cannot outlive the Lambda's session.
const awsOutboundTokenLifetime = 300

// homeTokens issues JWTs for an audience as the home cloud's workload identity:
// the managed identity (Azure), the runtime service account (GCP) or the execution role through
// IAM outbound identity federation (AWS).
type homeTokens struct {
	dir  string
	what string
	fn   func(ctx context.Context, audience string) (string, error)
}

// token returns a JWT for audience. It records the claims presented in the context's attempt, and a
// failure as the attempt's home error.
func (h *homeTokens) token(ctx context.Context, audience string) (string, error) {
	outer := attemptFrom(ctx)
	tctx, cancel := withTimeout(ctx)
	defer cancel()
	tctx, a := withAttempt(tctx)
	tok, err := h.fn(tctx, audience)
	if err == nil && strings.TrimSpace(tok) == "" {
		err = fmt.Errorf("the home identity returned an empty token")
	}
	if err != nil {
		e, _ := fail(h.dir, fmt.Sprintf("%s for audience %q", h.what, audience), a, err).(*Error)
		outer.setHome(e)
		return "", e
	}
	tok = strings.TrimSpace(tok)
	outer.present(presentJWT(tok))
	return tok, nil
}

func newHomeTokens(ctx context.Context, home Home, p Peer, e Endpoints, peer string) (*homeTokens, error) {
	dir := direction(home, peer)
	switch home {
	case HomeAzure:
		mi, err := managedIdentity(p, e)
		if err != nil {
			return nil, &Error{Direction: dir, Step: "managed identity", Err: err}
		}
		return &homeTokens{dir: dir, what: "managed-identity token", fn: func(ctx context.Context, aud string) (string, error) {
			t, err := mi.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scopeFor(aud)}})
			return t.Token, err
		}}, nil
	case HomeGCP:
		mc := metadataClient(e)
		return &homeTokens{dir: dir, what: "metadata-server ID token", fn: func(ctx context.Context, aud string) (string, error) {
			q := url.Values{"audience": {aud}, "format": {"full"}}
			return mc.GetWithContext(ctx, "instance/service-accounts/default/identity?"+q.Encode())
		}}, nil
	case HomeAWS:
		cfg, err := loadAWSConfig(ctx, p, e, dir)
		if err != nil {
			return nil, err
		}
		client := stsClient(cfg, e)
		return &homeTokens{dir: dir, what: "sts:GetWebIdentityToken (IAM outbound identity federation)", fn: func(ctx context.Context, aud string) (string, error) {
			if cfg.Credentials != nil {
				if c, err := cfg.Credentials.Retrieve(ctx); err == nil {
					attemptFrom(ctx).present(presentAWS(c, cfg.Region, "GetWebIdentityToken"))
				}
			}
			out, err := client.GetWebIdentityToken(ctx, &sts.GetWebIdentityTokenInput{
				Audience: []string{aud}, SigningAlgorithm: aws.String("RS256"), DurationSeconds: aws.Int32(awsOutboundTokenLifetime)})
			if err != nil {
				return "", err
			}
			return aws.ToString(out.WebIdentityToken), nil
		}}, nil
	}
	return nil, &Error{Direction: dir, Step: "configuration", Err: fmt.Errorf("home %q has no workload identity token to federate", home)}
}

// managedIdentity is the Azure Function's managed identity (App Service identity endpoint); azidentity
// caches its tokens per resource.
func managedIdentity(p Peer, e Endpoints) (*azidentity.ManagedIdentityCredential, error) {
	o := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: azcore.ClientOptions{Transport: e.httpClient()}}
	if p.AzureManagedIdentityClientID != "" {
		o.ID = azidentity.ClientID(p.AzureManagedIdentityClientID)
	}
	return azidentity.NewManagedIdentityCredential(o)
}

// metadataClient is the metadata-server client: the package's default one unless a host or an HTTP
// client is configured.
func metadataClient(e Endpoints) *metadata.Client {
	if e.GCEMetadataHost == "" && e.HTTPClient == nil {
		return metadata.NewClient(nil)
	}
	c := e.httpClient()
	if e.GCEMetadataHost != "" {
		cc := *c
		cc.Transport = hostRewrite{host: e.GCEMetadataHost, next: c.Transport}
		c = &cc
	}
	return metadata.NewClient(c)
}

// hostRewrite sends every request to host (the metadata package only reads GCE_METADATA_HOST).
type hostRewrite struct {
	host string
	next http.RoundTripper
}

func (h hostRewrite) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.URL.Host, r.Host = h.host, h.host
	return h.next.RoundTrip(r)
}

// loadAWSConfig is the ambient AWS configuration (in Lambda: the execution role's credentials and the
// region from the environment).
func loadAWSConfig(ctx context.Context, p Peer, e Endpoints, dir string) (aws.Config, error) {
	var opts []func(*config.LoadOptions) error
	if e.AWSMaxAttempts > 0 {
		opts = append(opts, config.WithRetryMaxAttempts(e.AWSMaxAttempts))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, &Error{Direction: dir, Step: "load the AWS configuration", Err: err}
	}
	if e.HTTPClient != nil {
		// Set after loading: config.WithHTTPClient conflicts with AWS_CA_BUNDLE.
		cfg.HTTPClient = e.httpClient()
	}
	if cfg.Region == "" {
		cfg.Region = p.AWSRegion
	}
	if cfg.Region == "" {
		return aws.Config{}, &Error{Direction: dir, Step: "load the AWS configuration",
			Err: fmt.Errorf("no region: set AWS_REGION (STS is used regionally) or Peer.AWSRegion")}
	}
	return cfg, nil
}

func stsClient(cfg aws.Config, e Endpoints) *sts.Client {
	return sts.NewFromConfig(cfg, func(o *sts.Options) {
		if e.AWSSTS != "" {
			o.BaseEndpoint = aws.String(e.AWSSTS)
		}
	})
}
