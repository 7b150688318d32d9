package idp

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/compute/metadata"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/keyferry/keyferry/localtest/oidc"
)

func startMetadata(t *testing.T, cfg MetadataConfig) *Metadata {
	t.Helper()
	m, err := StartMetadata(cfg)
	if err != nil {
		t.Fatalf("StartMetadata: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// googleIDToken is what a Cloud Function does to get its identity (reference §5).
func googleIDToken(ctx context.Context, audience string) (string, error) {
	q := url.Values{"audience": {audience}, "format": {"full"}}
	return metadata.GetWithContext(ctx, "instance/service-accounts/default/identity?"+q.Encode())
}

func TestMetadataIdentityWithComputeMetadata(t *testing.T) {
	iss := startIssuer(t, oidc.Options{})
	md := startMetadata(t, MetadataConfig{Issuer: iss, ServiceAccountEmail: replicatorSA})
	t.Setenv("GCE_METADATA_HOST", md.Host())

	tok, err := googleIDToken(tctx(t), "sts.amazonaws.com")
	if err != nil {
		t.Fatalf("identity: %v", err)
	}
	c, err := oidc.NewVerifier(iss.Issuer(), []string{"sts.amazonaws.com"}).Verify(tctx(t), tok)
	if err != nil {
		t.Fatalf("the ID token does not verify: %v", err)
	}
	uid := md.ServiceAccountUniqueID()
	if c.Subject != uid || c.Raw["azp"] != uid || c.Raw["email"] != replicatorSA || c.Raw["email_verified"] != true {
		t.Fatalf("claims %v, want sub=azp=%s email=%s", c.Raw, uid, replicatorSA)
	}
	if len(uid) != 21 || strings.Trim(uid, "0123456789") != "" {
		t.Errorf("unique id %q is not 21 digits", uid)
	}
	email, err := metadata.EmailWithContext(tctx(t), "default")
	if err != nil || email != replicatorSA {
		t.Errorf("email %q %v", email, err)
	}

	// The access-token endpoint.
	raw, err := metadata.GetWithContext(tctx(t), "instance/service-accounts/default/token")
	if err != nil {
		t.Fatal(err)
	}
	var at struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
		TokenType   string `json:"token_type"`
	}
	if err := json.Unmarshal([]byte(raw), &at); err != nil || at.TokenType != "Bearer" || at.ExpiresIn != 3600 || !md.ValidAccessToken(at.AccessToken) {
		t.Fatalf("token response %s (%v)", raw, err)
	}

	// GCP function → AWS: the ID token, through stscreds, against the validating STS fake.
	const role = "arn:aws:iam::" + testAccount + ":role/from-gcp"
	awsFake := startSTS(t, AWSSTSConfig{Roles: []AWSRole{{RoleArn: role, Provider: iss.Issuer(), Audience: "sts.amazonaws.com", Subject: uid}}})
	prov := stscreds.NewWebIdentityRoleProvider(sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(awsFake.URL)}), role,
		tokenFunc(func() ([]byte, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			t, err := googleIDToken(ctx, "sts.amazonaws.com")
			return []byte(t), err
		}), func(o *stscreds.WebIdentityRoleOptions) { o.RoleSessionName = "keyferry-gcp" })
	creds, err := prov.Retrieve(tctx(t))
	if err != nil {
		t.Fatalf("GCP → AWS: %v", err)
	}
	if sess, ok := awsFake.Session(creds.AccessKeyID); !ok || sess.Subject != uid {
		t.Fatalf("session %+v", sess)
	}
	if a, r := md.Counts(OpMetadataIdentity); a != 2 || r != 0 {
		t.Errorf("identity counts %d/%d, want 2/0", a, r)
	}
	if a, _ := md.CountsFor(OpMetadataIdentity, "sts.amazonaws.com"); a != 2 {
		t.Errorf("identity counts for sts.amazonaws.com: %d, want 2", a)
	}
	if a, _ := md.CountsFor(OpMetadataIdentity, "vault"); a != 0 {
		t.Errorf("identity counts for another audience: %d, want 0", a)
	}
}

func TestMetadataRefusals(t *testing.T) {
	iss := startIssuer(t, oidc.Options{})
	md := startMetadata(t, MetadataConfig{Issuer: iss})
	const idPath = "/computeMetadata/v1/instance/service-accounts/default/identity"
	for _, tc := range []struct {
		name, path string
		header     http.Header
		status     int
		mention    string
	}{
		{"no Metadata-Flavor", idPath + "?audience=x", nil, 403, "Missing Metadata-Flavor:Google header"},
		{"wrong Metadata-Flavor", idPath + "?audience=x", http.Header{"Metadata-Flavor": {"Amazon"}}, 403, "Metadata-Flavor"},
		{"X-Forwarded-For", idPath + "?audience=x", http.Header{"Metadata-Flavor": {"Google"}, "X-Forwarded-For": {"10.0.0.1"}}, 403, "X-Forwarded-For"},
		{"no audience", idPath, http.Header{"Metadata-Flavor": {"Google"}}, 400, "non-empty audience parameter required"},
		{"bad format", idPath + "?audience=x&format=jwt", http.Header{"Metadata-Flavor": {"Google"}}, 400, "format"},
		{"another service account", "/computeMetadata/v1/instance/service-accounts/other@p.iam.gserviceaccount.com/identity?audience=x",
			http.Header{"Metadata-Flavor": {"Google"}}, 404, "not attached"},
		{"token without header", "/computeMetadata/v1/instance/service-accounts/default/token", nil, 403, "Metadata-Flavor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectOneRefusal(t, md, func() {
				req, _ := http.NewRequestWithContext(tctx(t), http.MethodGet, md.URL+tc.path, nil)
				req.Header = tc.header
				if req.Header == nil {
					req.Header = http.Header{}
				}
				resp, err := md.HTTPClient().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != tc.status {
					t.Errorf("HTTP %d, want %d: %s", resp.StatusCode, tc.status, body)
				}
				wantContains(t, "body", string(body), tc.mention)
			})
		})
	}
	if md.Accepted() != 0 || iss.Issued() != 0 {
		t.Errorf("accepted %d, minted %d; want 0", md.Accepted(), iss.Issued())
	}
}

func TestMetadataStandardFormat(t *testing.T) {
	iss := startIssuer(t, oidc.Options{})
	md := startMetadata(t, MetadataConfig{Issuer: iss})
	req, _ := http.NewRequestWithContext(tctx(t), http.MethodGet, md.URL+"/computeMetadata/v1/instance/service-accounts/default/identity?audience=aud-x", nil)
	req.Header.Set("Metadata-Flavor", "Google")
	resp, err := md.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.Header.Get("Metadata-Flavor") != "Google" {
		t.Error("the response does not carry Metadata-Flavor: Google")
	}
	c, err := oidc.NewVerifier(iss.Issuer(), []string{"aud-x"}).Verify(tctx(t), string(body))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Raw["email"]; ok {
		t.Errorf("a standard-format token carries email: %v", c.Raw)
	}
}
