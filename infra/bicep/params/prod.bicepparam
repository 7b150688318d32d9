// prod: az deployment group create -g rg-keyferry-prod -f infra/bicep/main.bicep -p infra/bicep/params/prod.bicepparam
// (first time with -p subscribeEvents=false, then again after publishing the code: docs/deploy.md)
using '../main.bicep'

param namePrefix = 'kf'
param environmentName = 'prod'
param location = 'westeurope'

// The vaults of keyferry.prod.yaml; the DR vault lives in another subscription and region.
param vaults = [
  {
    name: 'kf-prod-secrets'
    resourceGroup: 'rg-keyferry-prod'
    location: 'westeurope'
    access: 'write'
  }
  {
    name: 'kf-prod-dr'
    resourceGroup: 'rg-keyferry-prod-dr'
    subscriptionId: '00000000-0000-0000-0000-000000000000'
    location: 'northeurope'
    access: 'write'
    events: true
  }
]

param keyferryConfigYaml = loadTextContent('keyferry.prod.yaml')

// The Event Grid topic of keyferry.prod.yaml's eventgrid notify route: EventGrid Data Sender for the function.
param alertTopics = [
  {
    name: 'keyferry-prod-alerts'
    resourceGroup: 'rg-keyferry-prod'
  }
]

// Every 15 minutes (NCRONTAB, six fields, UTC).
param reconcileSchedule = '0 */15 * * * *'

// keyferry.prod.yaml has no certificates: the Renew timer stays disabled. With certificates, set true; the
// schedule must run well within the shortest renewal window (every 6 hours here).
param renewCertificates = false
param renewSchedule = '0 41 */6 * * *'

// entra.bicep output servicePrincipalId (required in prod: the AWS and GCP functions write the vaults).
param federatedPrincipalId = readEnvironmentVariable('KEYFERRY_FEDERATED_PRINCIPAL_ID')

param maximumInstanceCount = 40
param instanceMemoryMB = 2048
param logRetentionDays = 90

param tags = {
  owner: 'platform'
  costCenter: 'prod'
}
