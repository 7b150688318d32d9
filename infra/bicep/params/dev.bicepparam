// dev: az deployment group create -g rg-keyferry-dev -f infra/bicep/main.bicep -p infra/bicep/params/dev.bicepparam
// (first time with -p subscribeEvents=false, then again after publishing the code: docs/deploy.md)
using '../main.bicep'

param namePrefix = 'kf'
param environmentName = 'dev'
param location = 'westeurope'

// The vaults of keyferry.dev.yaml: the replica vault is written, the team vault only read.
param vaults = [
  {
    name: 'kf-dev-secrets'
    resourceGroup: 'rg-keyferry-dev'
    location: 'westeurope'
    access: 'write'
  }
  {
    name: 'kf-dev-team'
    resourceGroup: 'rg-team-dev'
    location: 'westeurope'
    access: 'read'
  }
]

param keyferryConfigYaml = loadTextContent('keyferry.dev.yaml')

// Every 15 minutes (NCRONTAB, six fields, UTC).
param reconcileSchedule = '0 */15 * * * *'

// keyferry.dev.yaml has no certificates: the Renew timer stays disabled. With certificates, set true; the
// schedule must run well within the shortest renewal window (every 6 hours here).
param renewCertificates = false
param renewSchedule = '0 41 */6 * * *'

// entra.bicep output servicePrincipalId; empty until the app registration exists.
param federatedPrincipalId = readEnvironmentVariable('KEYFERRY_FEDERATED_PRINCIPAL_ID', '')

param maximumInstanceCount = 40
param instanceMemoryMB = 2048
param logRetentionDays = 30

param tags = {
  owner: 'platform'
  costCenter: 'dev'
}
