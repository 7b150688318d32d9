// az deployment group create -g rg-keyferry-dev -f infra/bicep/entra.bicep -p infra/bicep/params/entra-dev.bicepparam
// The values come from the other clouds' deployments (docs/deploy.md, "Order"); empty ones are skipped.
using '../entra.bicep'

param environmentName = 'dev'

// aws iam get-outbound-web-identity-federation-info --query IssuerIdentifier
param awsIssuer = readEnvironmentVariable('KEYFERRY_AWS_ISSUER', '')

// The keyferry Lambda's execution role (infra/cdk output).
param awsRoleArns = empty(readEnvironmentVariable('KEYFERRY_AWS_ROLE_ARN', '')) ? [] : [
  readEnvironmentVariable('KEYFERRY_AWS_ROLE_ARN')
]

// terraform -chdir=infra/gcp output -raw function_service_account_unique_id
param gcpServiceAccountUniqueIds = empty(readEnvironmentVariable('KEYFERRY_GCP_SA_UNIQUE_ID', '')) ? [] : [
  readEnvironmentVariable('KEYFERRY_GCP_SA_UNIQUE_ID')
]
