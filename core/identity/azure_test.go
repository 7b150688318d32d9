package identity

import (
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/keyferry/keyferry/localtest/idp"
	"github.com/keyferry/keyferry/localtest/oidc"
)

var kvScope = policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}}

// TestGCPToAzure: the metadata server's ID token (aud api://AzureADTokenExchange) as Entra client assertion.
func TestGCPToAzure(t *testing.T) {
	w := newWorld(t)
	good := idp.FederatedCredential{Issuer: w.google.Issuer(), Subject: w.saID}
	iss := w.google.Issuer()

	t.Run("success, cached", func(t *testing.T) {
		md, entra := w.metadata(nil), w.entra([]idp.FederatedCredential{good}, nil, 0)
		cred, err := Azure(tctx(t), HomeGCP, Peer{AzureTenantID: w.tenant, AzureClientID: entraClientID}, w.endpoints(nil, entra, nil, md))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := cred.GetToken(tctx(t), kvScope)
		if err != nil {
			t.Fatalf("GetToken: %v", err)
		}
		claims, err := oidc.NewVerifier(w.aad.Issuer(), []string{"https://vault.azure.net"}, oidc.WithHTTPClient(w.ca.Client())).Verify(tctx(t), tok.Token)
		if err != nil || claims.AppID != entraClientID || claims.TenantID != w.tenant {
			t.Fatalf("the access token: %v %+v", err, claims)
		}
		tok2, err := cred.GetToken(tctx(t), kvScope)
		if err != nil || tok2.Token != tok.Token {
			t.Fatalf("second GetToken: %v (new token: %v)", err, tok2.Token != tok.Token)
		}
		if ok, no := entra.Counts(idp.OpEntraToken); ok != 1 || no != 0 {
			t.Errorf("Entra accepted/refused %d/%d, want 1/0 (cached)", ok, no)
		}
		if ok, _ := md.Counts(idp.OpMetadataIdentity); ok != 1 {
			t.Errorf("%d ID tokens fetched, want 1", ok)
		}
	})

	t.Run("refreshed near expiry", func(t *testing.T) {
		// 4-minute tokens are inside azidentity's 5-minute refresh margin: each GetToken exchanges anew.
		md, entra := w.metadata(nil), w.entra([]idp.FederatedCredential{good}, nil, 4*time.Minute)
		cred, err := Azure(tctx(t), HomeGCP, Peer{AzureTenantID: w.tenant, AzureClientID: entraClientID}, w.endpoints(nil, entra, nil, md))
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if _, err := cred.GetToken(tctx(t), kvScope); err != nil {
				t.Fatal(err)
			}
		}
		if ok, _ := entra.Counts(idp.OpEntraToken); ok != 2 {
			t.Errorf("%d exchanges, want 2", ok)
		}
	})

	for _, tc := range []struct {
		name     string
		fic      func(f *idp.FederatedCredential)
		peer     func(p *Peer)
		mdNow    func() time.Time
		status   int
		code     string
		mentions []string
	}{
		{name: "wrong audience", peer: func(p *Peer) { p.AzureAudience = "api://not-entra" }, status: 400, code: "invalid_request",
			mentions: []string{"AADSTS70021", "No matching federated identity record", presentedJWT(iss, w.saID, "api://not-entra")}},
		{name: "wrong subject", fic: func(f *idp.FederatedCredential) { f.Subject = "100000000000000000099" }, status: 400, code: "invalid_request",
			mentions: []string{"AADSTS70021", "100000000000000000099", presentedJWT(iss, w.saID, DefaultAzureAudience)}},
		{name: "wrong issuer", fic: func(f *idp.FederatedCredential) { f.Issuer = "https://accounts.google.com" }, status: 400, code: "invalid_request",
			mentions: []string{"AADSTS70021", "Assertion Issuer: '" + iss + "'", presentedJWT(iss, w.saID, DefaultAzureAudience)}},
		{name: "expired token", mdNow: shifted(-2 * time.Hour), status: 401, code: "invalid_client",
			mentions: []string{"AADSTS700024", "not within its valid time range", presentedJWT(iss, w.saID, DefaultAzureAudience) + " exp="}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fic, p := good, Peer{AzureTenantID: w.tenant, AzureClientID: entraClientID}
			if tc.fic != nil {
				tc.fic(&fic)
			}
			if tc.peer != nil {
				tc.peer(&p)
			}
			md, entra := w.metadata(tc.mdNow), w.entra([]idp.FederatedCredential{fic}, nil, 0)
			cred, err := Azure(tctx(t), HomeGCP, p, w.endpoints(nil, entra, nil, md))
			if err != nil {
				t.Fatal(err)
			}
			_, err = cred.GetToken(tctx(t), kvScope)
			wantRefusal(t, err, "gcp → azure", tc.status, tc.code, append(tc.mentions,
				"Entra token for client "+entraClientID+" in tenant "+w.tenant)...)
			if ok, _ := entra.Counts(idp.OpEntraToken); ok != 0 {
				t.Errorf("Entra accepted %d", ok)
			}
		})
	}

	t.Run("metadata server refuses", func(t *testing.T) {
		md, entra := w.metadata(nil), w.entra([]idp.FederatedCredential{good}, nil, 0)
		e := w.endpoints(nil, entra, nil, md)
		e.HTTPClient.Transport = stripHeader{next: e.HTTPClient.Transport, header: "Metadata-Flavor"}
		cred, err := Azure(tctx(t), HomeGCP, Peer{AzureTenantID: w.tenant, AzureClientID: entraClientID}, e)
		if err != nil {
			t.Fatal(err)
		}
		_, err = cred.GetToken(tctx(t), kvScope)
		wantRefusal(t, err, "gcp → azure", 403, "", "metadata-server ID token for audience \""+DefaultAzureAudience+"\"", "Missing Metadata-Flavor")
		if entra.Accepted()+entra.Refused() != 0 {
			t.Error("Entra was called without an assertion")
		}
	})
}

// TestAWSToAzure: sts:GetWebIdentityToken (IAM outbound identity federation) as Entra client assertion.
// GetWebIdentityToken is served by the test-local extension of the idp STS fake (awsSide).
func TestAWSToAzure(t *testing.T) {
	w := newWorld(t)
	good := idp.FederatedCredential{Issuer: w.outbound.Issuer(), Subject: lambdaRole}
	iss := w.outbound.Issuer()
	peer := Peer{AzureTenantID: w.tenant, AzureClientID: entraClientID}

	t.Run("success, cached", func(t *testing.T) {
		a, entra := w.aws(nil, nil), w.entra([]idp.FederatedCredential{good}, nil, 0)
		a.lambdaEnv(t)
		cred, err := Azure(tctx(t), HomeAWS, peer, w.endpoints(a, entra, nil, nil))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := cred.GetToken(tctx(t), kvScope)
		if err != nil {
			t.Fatalf("GetToken: %v", err)
		}
		if _, err := cred.GetToken(tctx(t), kvScope); err != nil {
			t.Fatal(err)
		}
		if tok.ExpiresOn.Before(time.Now().Add(50 * time.Minute)) {
			t.Errorf("ExpiresOn %v", tok.ExpiresOn)
		}
		if ok, _ := entra.Counts(idp.OpEntraToken); ok != 1 {
			t.Errorf("%d Entra exchanges, want 1 (cached)", ok)
		}
		if n := a.gwitOK.Load(); n != 1 {
			t.Errorf("%d GetWebIdentityToken calls, want 1", n)
		}
	})

	for _, tc := range []struct {
		name     string
		fic      func(f *idp.FederatedCredential)
		peer     func(p *Peer)
		entraNow func() time.Time
		disabled bool
		status   int
		code     string
		mentions []string
		noEntra  bool
	}{
		{name: "wrong audience", peer: func(p *Peer) { p.AzureAudience = "api://not-entra" }, status: 400, code: "invalid_request",
			mentions: []string{"AADSTS70021", presentedJWT(iss, lambdaRole, "api://not-entra")}},
		{name: "wrong subject", fic: func(f *idp.FederatedCredential) { f.Subject = "arn:aws:iam::" + testAccount + ":role/other" }, status: 400, code: "invalid_request",
			mentions: []string{"AADSTS70021", "role/other", presentedJWT(iss, lambdaRole, DefaultAzureAudience)}},
		{name: "wrong issuer", fic: func(f *idp.FederatedCredential) { f.Issuer = w.stranger.Issuer() }, status: 400, code: "invalid_request",
			mentions: []string{"AADSTS70021", presentedJWT(iss, lambdaRole, DefaultAzureAudience)}},
		{name: "expired token", entraNow: shifted(10 * time.Minute), status: 401, code: "invalid_client",
			mentions: []string{"AADSTS700024", presentedJWT(iss, lambdaRole, DefaultAzureAudience)}},
		{name: "outbound federation disabled", disabled: true, status: 403, code: "OutboundWebIdentityFederationDisabledException",
			mentions: []string{"sts:GetWebIdentityToken (IAM outbound identity federation) for audience \"" + DefaultAzureAudience + "\"", "not enabled"}, noEntra: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fic, p := good, peer
			if tc.fic != nil {
				tc.fic(&fic)
			}
			if tc.peer != nil {
				tc.peer(&p)
			}
			a, entra := w.aws(nil, nil), w.entra([]idp.FederatedCredential{fic}, tc.entraNow, 0)
			a.disabled.Store(tc.disabled)
			a.lambdaEnv(t)
			cred, err := Azure(tctx(t), HomeAWS, p, w.endpoints(a, entra, nil, nil))
			if err != nil {
				t.Fatal(err)
			}
			_, err = cred.GetToken(tctx(t), kvScope)
			wantRefusal(t, err, "aws → azure", tc.status, tc.code, tc.mentions...)
			if n := entra.Accepted() + entra.Refused(); tc.noEntra != (n == 0) {
				t.Errorf("Entra saw %d requests", n)
			}
		})
	}

	t.Run("GetWebIdentityToken is SigV4-verified", func(t *testing.T) {
		a, entra := w.aws(nil, nil), w.entra([]idp.FederatedCredential{good}, nil, 0)
		a.lambdaEnv(t)
		t.Setenv("AWS_SECRET_ACCESS_KEY", strings.Repeat("x", 40))
		cred, err := Azure(tctx(t), HomeAWS, peer, w.endpoints(a, entra, nil, nil))
		if err != nil {
			t.Fatal(err)
		}
		_, err = cred.GetToken(tctx(t), kvScope)
		wantRefusal(t, err, "aws → azure", 403, "SignatureDoesNotMatch")
	})
}

// TestAzureFromAzure: the managed identity itself (same cloud).
func TestAzureFromAzure(t *testing.T) {
	w := newWorld(t)
	cred, err := Azure(tctx(t), HomeAzure, Peer{AzureManagedIdentityClientID: w.mi.ClientID()}, Endpoints{HTTPClient: w.ca.Client()})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cred.GetToken(tctx(t), policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	if p := presentJWT(tok.Token); p.Subject != w.mi.PrincipalID() || p.Audience[0] != "https://vault.azure.net" {
		t.Errorf("token claims %+v", p)
	}
}
