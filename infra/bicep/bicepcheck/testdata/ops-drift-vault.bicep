// Fixture for TestGrantsCheckCatchesDrift: modules/vault.bicep as it would be after two mistakes — the
// Certificates Officer assignment is gone (keyferry can no longer import certificates) and the identities get
// EventGrid Data Contributor, whose receive action no code of keyferry's calls.

param vaultName string
param functionPrincipalId string
param federatedPrincipalId string = ''
param signingKeys string[] = []

var secretsOfficer = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7' // Key Vault Secrets Officer
var cryptoUser = '12338af0-0e69-4776-bea7-57ae8d297424' // Key Vault Crypto User
var eventGridDataContributor = '1d8c3fe3-8864-474b-8749-01e3783e8157' // EventGrid Data Contributor

resource kv 'Microsoft.KeyVault/vaults@2024-11-01' existing = {
  name: vaultName
}

resource signingKey 'Microsoft.KeyVault/vaults/keys@2024-11-01' existing = [
  for k in signingKeys: {
    parent: kv
    name: k
  }
]

resource functionAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(kv.id, functionPrincipalId, secretsOfficer)
  scope: kv
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsOfficer)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource signingKeyAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (k, i) in signingKeys: {
    name: guid(kv.id, k, functionPrincipalId, cryptoUser)
    scope: signingKey[i]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', cryptoUser)
      principalId: functionPrincipalId
      principalType: 'ServicePrincipal'
    }
  }
]

resource tooMuch 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(kv.id, federatedPrincipalId, eventGridDataContributor)
  scope: kv
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventGridDataContributor)
    principalId: federatedPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output topicPrincipalId string = ''
