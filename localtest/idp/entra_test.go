package idp

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/keyferry/keyferry/localtest/oidc"
)

const awsRoleSubject = "arn:aws:iam::" + testAccount + ":role/keyferry-replicator"

// entraSetup: aad mints the access tokens (an HTTPS issuer shaped like https://sts.windows.net/<tenant>/),
// is.good plays the AWS account's outbound-federation issuer that signs the assertions.
func entraSetup(t *testing.T) (is issuers, aad *oidc.Issuer, fake *Entra, tenant, clientID string) {
	t.Helper()
	tenant, clientID = oidc.NewUUID(), oidc.NewUUID()
	aad = startIssuer(t, oidc.Options{TLS: true, TenantID: tenant, IssuerPath: "/" + tenant + "/"})
	is = newIssuers(t, oidc.Options{TLS: true, CA: aad.CA()})
	fake, err := StartEntra(EntraConfig{TokenIssuer: aad, HTTPClient: aad.CA().Client(), Credentials: []FederatedCredential{
		{TenantID: tenant, ClientID: clientID, Issuer: is.good.Issuer(), Subject: awsRoleSubject},
	}})
	if err != nil {
		t.Fatalf("StartEntra: %v", err)
	}
	t.Cleanup(func() { _ = fake.Close() })
	return is, aad, fake, tenant, clientID
}

func entraCredential(t *testing.T, fake *Entra, tenant, clientID string, assertion func(context.Context) (string, error)) *azidentity.ClientAssertionCredential {
	t.Helper()
	cred, err := azidentity.NewClientAssertionCredential(tenant, clientID, assertion, &azidentity.ClientAssertionCredentialOptions{
		ClientOptions: azcore.ClientOptions{
			Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: fake.URL + "/"},
			Transport: fake.HTTPClient(),
			Retry:     policy.RetryOptions{MaxRetries: -1},
		},
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

func TestEntraClientAssertionCredential(t *testing.T) {
	is, aad, fake, tenant, clientID := entraSetup(t)
	cred := entraCredential(t, fake, tenant, clientID, func(context.Context) (string, error) {
		return is.good.Mint(map[string]any{"aud": DefaultFICAudience, "sub": awsRoleSubject})
	})
	tok, err := cred.GetToken(tctx(t), policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	if d := time.Until(tok.ExpiresOn); d < 55*time.Minute || d > time.Hour {
		t.Errorf("ExpiresOn in %v, want ~3599s", d)
	}
	claims, err := oidc.NewVerifier(aad.Issuer(), []string{"https://vault.azure.net"}, oidc.WithHTTPClient(aad.HTTPClient())).Verify(tctx(t), tok.Token)
	if err != nil {
		t.Fatalf("the access token does not verify against the token issuer: %v", err)
	}
	sp := fake.ServicePrincipalID(tenant, clientID)
	if claims.TenantID != tenant || claims.ObjectID != sp || claims.Subject != sp || claims.AppID != clientID || sp == "" {
		t.Errorf("claims tid=%s oid=%s sub=%s appid=%s; want tid=%s oid=sub=%s appid=%s", claims.TenantID, claims.ObjectID, claims.Subject, claims.AppID, tenant, sp, clientID)
	}
	if a, r := fake.Counts(OpEntraToken); a != 1 || r != 0 {
		t.Errorf("counts %d/%d, want 1/0", a, r)
	}
	if a, r := fake.CountsFor(OpEntraToken, is.good.Issuer()); a != 1 || r != 0 {
		t.Errorf("counts for the assertion's issuer %d/%d, want 1/0", a, r)
	}

	// A refusal reaches the caller through azidentity with Entra's AADSTS text.
	wrong := entraCredential(t, fake, tenant, clientID, func(context.Context) (string, error) {
		return is.good.Mint(map[string]any{"aud": DefaultFICAudience, "sub": "arn:aws:iam::" + testAccount + ":role/intruder"})
	})
	expectOneRefusal(t, fake, func() {
		_, err = wrong.GetToken(tctx(t), policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
		if err == nil {
			t.Fatal("GetToken with a wrong subject succeeded")
		}
		wantContains(t, "azidentity error", err.Error(), "AADSTS70021", "role/intruder", "invalid_request")
	})
}

func TestEntraRefusals(t *testing.T) {
	is, _, fake, tenant, clientID := entraSetup(t)
	base := map[string]any{"iss": is.good.Issuer(), "aud": DefaultFICAudience, "sub": awsRoleSubject}
	bad := refusalTokens(t, is, base, "api://wrong-audience", "arn:aws:iam::"+testAccount+":role/other")
	good := mint(t, is.good, base, nil)
	form := func(assertion string, mod func(url.Values)) url.Values {
		f := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID},
			"client_assertion_type": {jwtBearerAssertion}, "client_assertion": {assertion},
			"scope": {"https://vault.azure.net/.default openid offline_access profile"}}
		if mod != nil {
			mod(f)
		}
		return f
	}
	cases := []struct {
		name     string
		tenant   string
		form     url.Values
		status   int
		errCode  string
		aadsts   float64
		mentions []string
	}{
		{"wrong audience", tenant, form(bad["wrong audience"], nil), 400, "invalid_request", 70021,
			[]string{"No matching federated identity record found", "Assertion Audience: 'api://wrong-audience'", "audience '" + DefaultFICAudience + "'"}},
		{"wrong subject", tenant, form(bad["wrong subject"], nil), 400, "invalid_request", 70021,
			[]string{"Assertion Subject: 'arn:aws:iam::" + testAccount + ":role/other'", "subject '" + awsRoleSubject + "'"}},
		{"wrong issuer", tenant, form(bad["wrong issuer"], nil), 400, "invalid_request", 70021,
			[]string{"Assertion Issuer: '" + is.stranger.Issuer() + "'", "issuer '" + is.good.Issuer() + "'"}},
		{"expired", tenant, form(bad["expired"], nil), 401, "invalid_client", 700024,
			[]string{"Client assertion is not within its valid time range", "expiry time of assertion"}},
		{"bad signature", tenant, form(bad["bad signature"], nil), 401, "invalid_client", 700027,
			[]string{"invalid signature", "Key was found, but use of the key to verify the signature failed"}},
		{"unknown client", tenant, form(good, func(f url.Values) { f.Set("client_id", "00000000-0000-0000-0000-000000000000") }), 400, "unauthorized_client", 700016,
			[]string{"00000000-0000-0000-0000-000000000000"}},
		{"unknown tenant", "not-a-tenant", form(good, nil), 400, "invalid_request", 90002, []string{"not-a-tenant"}},
		{"no .default scope", tenant, form(good, func(f url.Values) { f.Set("scope", "https://vault.azure.net/secrets.read") }), 400, "invalid_scope", 1002012,
			[]string{"/.default"}},
		{"no assertion", tenant, form("", nil), 401, "invalid_client", 7000218, []string{"client_assertion"}},
		{"client secret grant", tenant, form(good, func(f url.Values) { f.Set("grant_type", "password") }), 400, "unsupported_grant_type", 70003, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			expectOneRefusal(t, fake, func() {
				status, body := postForm(t, fake.HTTPClient(), fake.URL+"/"+tc.tenant+"/oauth2/v2.0/token", tc.form, nil)
				m := decodeJSON(t, body)
				if status != tc.status || m["error"] != tc.errCode {
					t.Errorf("HTTP %d error %v, want %d %s", status, m["error"], tc.status, tc.errCode)
				}
				codes, _ := m["error_codes"].([]any)
				if len(codes) != 1 || codes[0] != tc.aadsts {
					t.Errorf("error_codes %v, want [%v]", m["error_codes"], tc.aadsts)
				}
				desc, _ := m["error_description"].(string)
				wantContains(t, "error_description", desc, append(tc.mentions, fmt.Sprintf("AADSTS%d:", int(tc.aadsts)))...)
				if a := tc.form.Get("client_assertion"); a != "" && strings.Contains(string(body), a) {
					t.Error("the response contains the assertion")
				}
			})
		})
	}
	if fake.Accepted() != 0 {
		t.Errorf("accepted %d, want 0", fake.Accepted())
	}
	if fake.RefusedWith("AADSTS70021") != 3 {
		t.Errorf("AADSTS70021 refusals %d, want 3", fake.RefusedWith("AADSTS70021"))
	}
}

func TestEntraDiscovery(t *testing.T) {
	_, _, fake, tenant, _ := entraSetup(t)
	resp, err := fake.HTTPClient().Get(fake.URL + "/" + tenant + "/v2.0/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	doc := decodeJSON(t, body)
	if doc["token_endpoint"] != fake.URL+"/"+tenant+"/oauth2/v2.0/token" || doc["issuer"] != fake.URL+"/"+tenant+"/v2.0" {
		t.Fatalf("discovery %v", doc)
	}
}
