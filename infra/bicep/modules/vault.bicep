// One Key Vault keyferry works with, deployed into the vault's own resource group (main.bicep sets the module's
// scope): role assignments scoped to this vault (secrets, certificates) or to one of its keys (the CA's signing
// key), and its Event Grid system topic with a subscription that delivers the vault's secret events to the
// KeyVaultEvents function.
//
// The vault must use Azure RBAC (enableRbacAuthorization: true); access policies are not managed here.

@description('Name of the existing Key Vault.')
param vaultName string

@description('Region of the vault; its system topic must be in the same region.')
param location string

@description('write: keyferry creates, updates and deletes secrets here, rotation\'s pending siblings included (Key Vault Secrets Officer). read: a read-only source (Key Vault Secrets User). none: no secret role.')
@allowed([
  'write'
  'read'
  'none'
])
param access string

@description('keyferry imports certificates into this vault (a keyvault target of certificates:): Key Vault Certificates Officer on the vault.')
param certificates bool = false

@description('Keys of this vault the builtin issuer signs with (certificates.issuer.builtin.key.azure_key_vault): Key Vault Crypto User on each key, not on the vault.')
param signingKeys string[] = []

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
  none: ''
}
var roleId = roleIds[access]
var certificatesOfficer = 'a4417e6f-fecd-4de8-b567-7b0420556985' // Key Vault Certificates Officer
var cryptoUser = '12338af0-0e69-4776-bea7-57ae8d297424' // Key Vault Crypto User

// The identities keyferry runs as: the Function App's, and the Entra app's the AWS and GCP functions sign in as.
var principals = empty(federatedPrincipalId)
  ? [
      {
        id: functionPrincipalId
        who: 'keyferry Azure Function'
      }
    ]
  : [
      {
        id: functionPrincipalId
        who: 'keyferry Azure Function'
      }
      {
        id: federatedPrincipalId
        who: 'keyferry functions in AWS and GCP, federated'
      }
    ]
// One entry per (signing key, principal).
var keyGrants = flatten(map(range(0, length(signingKeys)), i => map(principals, p => {
  index: i
  key: signingKeys[i]
  principal: p
})))

resource kv 'Microsoft.KeyVault/vaults@2024-11-01' existing = {
  name: vaultName
}

resource signingKey 'Microsoft.KeyVault/vaults/keys@2024-11-01' existing = [
  for k in signingKeys: {
    parent: kv
    name: k
  }
]

resource functionAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (access != 'none') {
  name: guid(kv.id, functionPrincipalId, roleId)
  scope: kv
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
    description: 'keyferry Azure Function (${access})'
  }
}

resource federatedAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (access != 'none' && !empty(federatedPrincipalId)) {
  name: guid(kv.id, federatedPrincipalId, roleId)
  scope: kv
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    principalId: federatedPrincipalId
    principalType: 'ServicePrincipal'
    description: 'keyferry functions in AWS and GCP, federated (${access})'
  }
}

// Certificates: import (and read back) keyferry's certificates in this vault.
resource certificateAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for p in principals: if (certificates) {
    name: guid(kv.id, p.id, certificatesOfficer)
    scope: kv
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', certificatesOfficer)
      principalId: p.id
      principalType: 'ServicePrincipal'
      description: '${p.who} (certificates)'
    }
  }
]

// The CA's signing keys: sign and read the public key, on each key only.
resource signingKeyAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for g in keyGrants: {
    name: guid(kv.id, g.key, g.principal.id, cryptoUser)
    scope: signingKey[g.index]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', cryptoUser)
      principalId: g.principal.id
      principalType: 'ServicePrincipal'
      description: '${g.principal.who} (CA signing key ${g.key})'
    }
  }
]

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
