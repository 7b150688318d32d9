// keyferry on Azure: the custom-handler Function App (functions/azure) on a Flex Consumption plan with a
// system-assigned managed identity, its storage (identity-based, no account keys), Application Insights on a
// Log Analytics workspace, for every configured Key Vault role assignments scoped to that vault (secrets,
// certificates) or to its CA signing keys plus an Event Grid system topic delivering the vault's secret events
// to the KeyVaultEvents function, and EventGrid Data Sender on each alert topic of keyferry.yaml's notify routes.
//
// Deploy: az deployment group create -g <rg> -f infra/bicep/main.bicep -p infra/bicep/params/<env>.bicepparam
// (docs/deploy.md gives the whole order across the clouds). The Entra app registration that the AWS and GCP
// functions sign in as is in entra.bicep (Microsoft Graph extension), a separate deployment.

targetScope = 'resourceGroup'

@description('Short prefix of every resource name.')
@minLength(2)
@maxLength(8)
param namePrefix string = 'kf'

@description('Environment name, part of resource names.')
@allowed([
  'dev'
  'test'
  'prod'
])
param environmentName string

@description('Region of the Function App and its storage; it must offer the Flex Consumption plan.')
param location string = resourceGroup().location

@description('''The Key Vaults keyferry works with. Each must use Azure RBAC. access: write (keyferry writes replicas
there, and rotation's pending siblings: Key Vault Secrets Officer), read (a read-only source: Key Vault Secrets
User) or none (no secret role: a vault that only receives certificates or holds a signing key). certificates:
true for a vault that is a keyvault target of certificates: (Key Vault Certificates Officer). signingKeys: the
keys of certificates.issuer.builtin.key.azure_key_vault in this vault (Key Vault Crypto User on each key only).
events: false skips the Event Grid topic (for a vault that has a system topic already, or a target nobody else
writes to).''')
param vaults vaultConfig[]

@description('The Event Grid custom topics of keyferry.yaml\'s eventgrid notify routes: the function publishes alerts to each with its managed identity (EventGrid Data Sender on that topic only).')
param alertTopics alertTopicConfig[] = []

@description('keyferry.yaml itself (docs/configuration.md), given to the function as KEYFERRY_CONFIG_YAML. It holds no credentials: keyferry refuses any.')
param keyferryConfigYaml string

@description('NCRONTAB schedule (six fields, UTC) of the Reconcile timer, app setting KEYFERRY_RECONCILE_SCHEDULE.')
param reconcileSchedule string = '0 */15 * * * *'

@description('keyferry.yaml has certificates: run the Renew timer (the renew job). false: the Renew function is disabled (app setting AzureWebJobs.Renew.Disabled).')
param renewCertificates bool = false

@description('NCRONTAB schedule (six fields, UTC) of the Renew timer, app setting KEYFERRY_RENEW_SCHEDULE. Renewal is due at 2/3 of a certificate\'s life unless renew_before says otherwise: run it well within the shortest renewal window.')
param renewSchedule string = '0 41 */6 * * *'

@description('Create the Event Grid subscriptions. Their endpoint is the KeyVaultEvents function, which exists only once the code is deployed: the first deployment sets false, the one after publishing the code true.')
param subscribeEvents bool = true

@description('Object id of the service principal of the keyferry Entra app (entra.bicep output servicePrincipalId): gets the same vault roles, for the AWS and GCP functions signing in through federated credentials. Empty: none.')
param federatedPrincipalId string = ''

@description('Flex Consumption scale-out limit, 40 to 1000.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Flex Consumption instance memory.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Log Analytics retention in days.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

@description('Tags for every resource.')
param tags object = {}

type vaultConfig = {
  @description('Key Vault name.')
  name: string
  @description('Resource group of the vault.')
  resourceGroup: string
  @description('Subscription of the vault; default: this deployment\'s.')
  subscriptionId: string?
  @description('Region of the vault (its system topic must be there).')
  location: string
  access: ('write' | 'read' | 'none')
  @description('The vault is a keyvault target of certificates: (Key Vault Certificates Officer on the vault); default false.')
  certificates: bool?
  @description('Keys of this vault the builtin issuer signs with (Key Vault Crypto User on each key); default none.')
  signingKeys: string[]?
  @description('Create the vault\'s system topic and event subscription; default true.')
  events: bool?
}

type alertTopicConfig = {
  @description('Event Grid custom topic name.')
  name: string
  @description('Resource group of the topic.')
  resourceGroup: string
  @description('Subscription of the topic; default: this deployment\'s.')
  subscriptionId: string?
}

var suffix = take(uniqueString(subscription().subscriptionId, resourceGroup().id, namePrefix, environmentName), 6)
var baseName = '${namePrefix}-${environmentName}'
var functionAppName = '${baseName}-fn-${suffix}'
var storageName = take(toLower('${replace(namePrefix, '-', '')}${environmentName}${suffix}st'), 24)
var packageContainer = 'app-package'
var deadLetterContainer = 'eventgrid-deadletter'
var allTags = union(tags, {
  application: 'keyferry'
  environment: environmentName
})

// Built-in role definition ids.
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${baseName}-logs-${suffix}'
  location: location
  tags: allTags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: logRetentionDays
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${baseName}-appi-${suffix}'
  location: location
  kind: 'web'
  tags: allTags
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
    DisableLocalAuth: true // telemetry only with the function's Entra identity
  }
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageName
  location: location
  tags: allTags
  sku: {
    name: 'Standard_LRS'
  }
  kind: 'StorageV2'
  properties: {
    allowSharedKeyAccess: false // the host, the deployment and Event Grid all use Entra identities
    allowBlobPublicAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }

  resource blobs 'blobServices' = {
    name: 'default'

    resource package 'containers' = {
      name: packageContainer
    }

    resource deadLetters 'containers' = {
      name: deadLetterContainer
    }
  }
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: '${baseName}-plan-${suffix}'
  location: location
  tags: allTags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true // Linux
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: functionAppName
  location: location
  tags: allTags
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      appSettings: [
        // Identity-based host storage: no connection string, the managed identity is used.
        {
          name: 'AzureWebJobsStorage__accountName'
          value: storage.name
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: insights.properties.ConnectionString
        }
        {
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'Authorization=AAD'
        }
        {
          name: 'KEYFERRY_CONFIG_YAML'
          value: keyferryConfigYaml
        }
        // Read by the Reconcile timer: its function.json says "schedule": "%KEYFERRY_RECONCILE_SCHEDULE%".
        {
          name: 'KEYFERRY_RECONCILE_SCHEDULE'
          value: reconcileSchedule
        }
        // Read by the Renew timer ("schedule": "%KEYFERRY_RENEW_SCHEDULE%"); always set, since the host resolves
        // the binding even for a disabled function.
        {
          name: 'KEYFERRY_RENEW_SCHEDULE'
          value: renewSchedule
        }
        // The renew job runs only when keyferry.yaml has certificates.
        {
          name: 'AzureWebJobs.Renew.Disabled'
          value: renewCertificates ? 'false' : 'true'
        }
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${packageContainer}'
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'custom' // custom handler: functions/azure's binary, named "handler" in host.json
        version: '1.0'
      }
    }
  }

  // No publishing with user names and passwords: deploy with an Entra identity.
  resource ftp 'basicPublishingCredentialsPolicies' = {
    name: 'ftp'
    properties: {
      allow: false
    }
  }

  resource scm 'basicPublishingCredentialsPolicies' = {
    name: 'scm'
    properties: {
      allow: false
    }
  }
}

// The host's storage (timer leases, deployment package): blob data on this account only.
resource hostStorageAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, app.id, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: app.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// Telemetry with Entra authentication (DisableLocalAuth).
resource telemetryAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(insights.id, app.id, roles.monitoringMetricsPublisher)
  scope: insights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: app.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

module vaultAccess 'modules/vault.bicep' = [
  for (v, i) in vaults: {
    name: '${baseName}-vault-${i}-${v.name}'
    scope: resourceGroup(v.?subscriptionId ?? subscription().subscriptionId, v.resourceGroup)
    params: {
      vaultName: v.name
      location: v.location
      access: v.access
      certificates: v.?certificates ?? false
      signingKeys: v.?signingKeys ?? []
      functionPrincipalId: app.identity.principalId
      federatedPrincipalId: federatedPrincipalId
      events: v.?events ?? true
      subscribeEvents: subscribeEvents
      functionAppId: app.id
      deadLetterStorageId: storage.id
      deadLetterContainer: deadLetterContainer
      subscriptionName: '${baseName}-keyvaultevents'
      tags: allTags
    }
  }
]

// Alerts: the function publishes to each notify route's Event Grid topic with its managed identity. Only the
// Azure function can (core/notify uses the managed identity for Event Grid), so the federated app gets nothing.
module alertTopicAccess 'modules/alerttopic.bicep' = [
  for (t, i) in alertTopics: {
    name: '${baseName}-alerts-${i}-${t.name}'
    scope: resourceGroup(t.?subscriptionId ?? subscription().subscriptionId, t.resourceGroup)
    params: {
      topicName: t.name
      functionPrincipalId: app.identity.principalId
    }
  }
]

// Each system topic writes its dead letters with its own identity: blob data on the dead-letter container only.
resource deadLetterAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (v, i) in vaults: if (v.?events ?? true) {
    name: guid(storage::blobs::deadLetters.id, v.?subscriptionId ?? subscription().subscriptionId, v.resourceGroup, v.name)
    scope: storage::blobs::deadLetters
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
      principalId: vaultAccess[i].outputs.topicPrincipalId
      principalType: 'ServicePrincipal'
    }
  }
]

output functionAppName string = app.name
output functionAppId string = app.id
output functionHostName string = app.properties.defaultHostName
@description('Object id of the function\'s managed identity: the subject of its Entra tokens (GCP WIF attribute condition, AWS trust policy).')
output functionPrincipalId string = app.identity.principalId
output tenantId string = tenant().tenantId
output storageAccountName string = storage.name
output packageContainerUrl string = '${storage.properties.primaryEndpoints.blob}${packageContainer}'
output deadLetterContainerName string = deadLetterContainer
output vaultUris array = [for (v, i) in vaults: vaultAccess[i].outputs.vaultUri]
