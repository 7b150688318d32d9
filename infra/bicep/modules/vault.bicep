// One Key Vault keyferry works with, deployed into the vault's own resource group (main.bicep sets the module's
// scope): role assignments scoped to this vault only, and its Event Grid system topic with a subscription that
// delivers the vault's secret events to the KeyVaultEvents function.
//
// The vault must use Azure RBAC (enableRbacAuthorization: true); access policies are not managed here.

@description('Name of the existing Key Vault.')
param vaultName string

@description('Region of the vault; its system topic must be in the same region.')
param location string

@description('write: keyferry creates and updates secrets here (Key Vault Secrets Officer). read: a read-only source (Key Vault Secrets User).')
@allowed([
  'write'
  'read'
])
param access string

@description('Object id of the Function App\'s system-assigned managed identity.')
param functionPrincipalId string

@description('Object id of the service principal of the keyferry Entra app that the AWS and GCP functions sign in as (entra.bicep); empty: none.')
param federatedPrincipalId string = ''

@description('Create the system topic and the event subscription for this vault.')
param events bool = true

@description('Create the event subscription (needs the KeyVaultEvents function to exist: deploy the code first).')
param subscribeEvents bool = true

@description('Resource id of the Function App receiving the events.')
param functionAppId string

@description('Resource id of the storage account holding the dead-letter container.')
param deadLetterStorageId string

@description('Name of the dead-letter blob container.')
param deadLetterContainer string

@description('Event subscription name.')
param subscriptionName string

@description('Tags for the resources created here.')
param tags object = {}

// Built-in role definition ids (the same in every subscription).
var roleIds = {
  write: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7' // Key Vault Secrets Officer
  read: '4633458b-17de-408a-b874-0445c86b69e6' // Key Vault Secrets User
}
var roleId = roleIds[access]

resource kv 'Microsoft.KeyVault/vaults@2024-11-01' existing = {
  name: vaultName
}

resource functionAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(kv.id, functionPrincipalId, roleId)
  scope: kv
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
    description: 'keyferry Azure Function (${access})'
  }
}

resource federatedAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(federatedPrincipalId)) {
  name: guid(kv.id, federatedPrincipalId, roleId)
  scope: kv
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    principalId: federatedPrincipalId
    principalType: 'ServicePrincipal'
    description: 'keyferry functions in AWS and GCP, federated (${access})'
  }
}

// Azure allows one system topic per source resource: if the vault already has one, deploy with events: false
// for it and add the subscription below to the existing topic.
resource topic 'Microsoft.EventGrid/systemTopics@2025-02-15' = if (events) {
  name: '${vaultName}-events'
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned' // writes dead letters with its own identity, no storage key
  }
  properties: {
    source: kv.id
    topicType: 'Microsoft.KeyVault.vaults'
  }
}

resource eventSubscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = if (events && subscribeEvents) {
  parent: topic
  name: subscriptionName
  properties: {
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.KeyVault.SecretNewVersionCreated'
        'Microsoft.KeyVault.SecretNearExpiry'
        'Microsoft.KeyVault.CertificateNearExpiry'
      ]
    }
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionAppId}/functions/KeyVaultEvents'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: deadLetterStorageId
          blobContainerName: deadLetterContainer
        }
      }
    }
  }
}

output vaultId string = kv.id
output vaultUri string = kv.properties.vaultUri
output topicName string = events ? topic.name : ''
output topicPrincipalId string = events ? topic.identity.principalId : ''
