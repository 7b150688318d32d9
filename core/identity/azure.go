package identity

import (
	"context"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// Azure returns a credential for an Azure peer (pass it to azsecrets.NewClient). azidentity caches the
// Entra access tokens per scope and replaces them before they expire; the assertion is only fetched
// when a new token is needed.
//
//   - aws → azure: sts:GetWebIdentityToken (aud p.AzureAudience, default api://AzureADTokenExchange)
//     as the client assertion of app p.AzureClientID in tenant p.AzureTenantID.
//   - gcp → azure: a metadata-server ID token for the same audience, as the client assertion.
//   - azure: the managed identity. local: azidentity's DefaultAzureCredential.
func Azure(ctx context.Context, home Home, p Peer, e Endpoints) (azcore.TokenCredential, error) {
	if err := checkHome(home, "azure"); err != nil {
		return nil, err
	}
	dir := direction(home, "azure")
	switch home {
	case HomeLocal:
		cred, err := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{ClientOptions: azureClientOptions(e)})
		if err != nil {
			return nil, &Error{Direction: dir, Step: "DefaultAzureCredential", Err: err}
		}
		return cred, nil
	case HomeAzure:
		mi, err := managedIdentity(p, e)
		if err != nil {
			return nil, &Error{Direction: dir, Step: "managed identity", Err: err}
		}
		return mi, nil
	}

	if err := missing(dir, "AzureTenantID", p.AzureTenantID, "AzureClientID", p.AzureClientID); err != nil {
		return nil, err
	}
	ht, err := newHomeTokens(ctx, home, p, e, "azure")
	if err != nil {
		return nil, err
	}
	aud := orDefault(p.AzureAudience, DefaultAzureAudience)
	cred, err := azidentity.NewClientAssertionCredential(p.AzureTenantID, p.AzureClientID,
		func(ctx context.Context) (string, error) { return ht.token(ctx, aud) }, // goroutine-safe
		&azidentity.ClientAssertionCredentialOptions{ClientOptions: azureClientOptions(e), DisableInstanceDiscovery: e.EntraAuthorityHost != ""})
	if err != nil {
		return nil, &Error{Direction: dir, Step: "ClientAssertionCredential", Err: err}
	}
	return &assertionCredential{inner: cred, dir: dir, tenant: p.AzureTenantID, client: p.AzureClientID}, nil
}

func azureClientOptions(e Endpoints) azcore.ClientOptions {
	o := azcore.ClientOptions{Transport: e.httpClient()}
	if e.EntraAuthorityHost != "" {
		o.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: strings.TrimSuffix(e.EntraAuthorityHost, "/") + "/"}
	}
	return o
}

// assertionCredential is azidentity's ClientAssertionCredential with refusals turned into *Error.
type assertionCredential struct {
	inner               *azidentity.ClientAssertionCredential
	dir, tenant, client string
}

// GetToken implements azcore.TokenCredential.
func (c *assertionCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	ctx, a := withAttempt(ctx)
	tok, err := c.inner.GetToken(ctx, opts)
	if err != nil {
		return azcore.AccessToken{}, fail(c.dir, fmt.Sprintf("Entra token for client %s in tenant %s (scopes %s)",
			c.client, c.tenant, strings.Join(opts.Scopes, " ")), a, err)
	}
	return tok, nil
}
