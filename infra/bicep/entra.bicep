// The keyferry Entra app registration, with the Microsoft Graph Bicep extension (bicepconfig.json pins it). Plain
// ARM cannot create app registrations; the Graph extension can, deployed like any template, but the deploying
// user needs Application.ReadWrite.All (or to own the app) in Microsoft Graph, which is why this is a separate
// deployment from main.bicep. docs/deploy.md also gives the same objects as `az ad` commands.
//
// The app serves both directions of the cross-cloud trust:
//   - into Azure: the AWS Lambda role and the GCP function's service account sign in AS this app through its
//     federated identity credentials (no secret, no certificate); its service principal gets the Key Vault
//     roles (main.bicep parameter federatedPrincipalId);
//   - out of Azure: the Function App's managed identity asks Entra for a token for this app (scope
//     "<identifierUri>/.default"); AWS (IAM OIDC provider) and GCP (workload identity pool) trust those tokens.
//     Their shape follows accessTokenVersion: 1 (default; what core/identity expects: aud = the identifier
//     URI) gives iss https://sts.windows.net/<tenant>/, 2 gives iss https://login.microsoftonline.com/<tenant>/v2.0
//     and aud = appId; sub is the managed identity's object id either way. The outputs tokenIssuer and
//     tokenAudience are what the AWS and GCP sides must be configured with.
//
// Deploy: az deployment group create -g <rg> -f infra/bicep/entra.bicep -p infra/bicep/params/entra-<env>.bicepparam

extension microsoftGraphV1

@description('Environment name, part of the app\'s unique name.')
param environmentName string

@description('Unique name (immutable key) and display name of the app registration.')
param appName string = 'keyferry-${environmentName}'

@description('IAM outbound identity federation issuer of the AWS account (aws iam get-outbound-web-identity-federation-info: IssuerIdentifier), such as https://<uuid>.tokens.sts.global.api.aws. Empty: no AWS credential.')
param awsIssuer string = ''

@description('IAM role ARNs (arn:aws:iam::<account>:role/<name>, the `sub` of their outbound tokens) that may sign in as the app: the keyferry Lambda\'s execution role.')
param awsRoleArns string[] = []

@description('Numeric unique ids of the GCP service accounts (Terraform output function_service_account_unique_id) that may sign in as the app.')
param gcpServiceAccountUniqueIds string[] = []

@description('Version of the access tokens Entra issues for this app (to the managed identity): 1 or 2.')
@allowed([
  1
  2
])
param accessTokenVersion int = 1

var exchangeAudience = 'api://AzureADTokenExchange'
var identifierUri = 'api://${tenant().tenantId}/${appName}'

resource app 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: appName
  displayName: appName
  signInAudience: 'AzureADMyOrg'
  identifierUris: [
    identifierUri
  ]
  api: {
    requestedAccessTokenVersion: accessTokenVersion
  }
}

resource principal 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: app.appId
}

resource awsCredentials 'Microsoft.Graph/applications/federatedIdentityCredentials@v1.0' = [
  for (arn, i) in (empty(awsIssuer) ? [] : awsRoleArns): {
    name: '${app.uniqueName}/aws-${i}'
    description: 'keyferry AWS Lambda role ${arn}'
    issuer: awsIssuer
    subject: arn
    audiences: [
      exchangeAudience
    ]
  }
]

resource gcpCredentials 'Microsoft.Graph/applications/federatedIdentityCredentials@v1.0' = [
  for (id, i) in gcpServiceAccountUniqueIds: {
    name: '${app.uniqueName}/gcp-${i}'
    description: 'keyferry GCP function service account ${id}'
    issuer: 'https://accounts.google.com'
    subject: id
    audiences: [
      exchangeAudience
    ]
  }
]

@description('Client id: the AWS and GCP functions sign in as it (azidentity client assertion credential).')
output appId string = app.appId
@description('Object id of the service principal: main.bicep parameter federatedPrincipalId.')
output servicePrincipalId string = principal.id
@description('Scope the Function App\'s managed identity asks for: <identifierUri>/.default.')
output identifierUri string = identifierUri
output tenantId string = tenant().tenantId
@description('iss of the managed identity\'s tokens for this app: the issuer of the AWS IAM OIDC provider and of the GCP pool\'s Azure provider.')
output tokenIssuer string = accessTokenVersion == 1 ? 'https://sts.windows.net/${tenant().tenantId}/' : '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
@description('aud of those tokens: the AWS OIDC provider\'s client id list, the GCP provider\'s allowed audiences (Terraform azure_audience).')
output tokenAudience string = accessTokenVersion == 1 ? identifierUri : app.appId
