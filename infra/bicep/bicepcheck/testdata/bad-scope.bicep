// Fixture: role assignments the scope check must reject (every one but vaultScoped, the last). Syntactically
// valid Bicep; never deployed.
param principalId string
param vaultName string
param someScope string = '/subscriptions/x/resourceGroups/y'

var roleId = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7')

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' existing = {
  name: 'rg-other'
  scope: subscription()
}

resource kv 'Microsoft.KeyVault/vaults@2024-11-01' existing = {
  name: vaultName
}

resource rgWide 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, 'rgWide')
  scope: resourceGroup()
  properties: {
    roleDefinitionId: roleId
    principalId: principalId
  }
}

resource subWide 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, principalId)
  scope: subscription()
  properties: {
    roleDefinitionId: roleId
    principalId: principalId
  }
}

resource rgByName 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid('rg-other', principalId)
  scope: resourceGroup('rg-other')
  properties: {
    roleDefinitionId: roleId
    principalId: principalId
  }
}

// No scope at all: the assignment lands on the deployment's resource group.
resource noScope 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(principalId, 'noScope')
  properties: {
    roleDefinitionId: roleId
    principalId: principalId
    // a scope inside properties is not the resource's scope
    scope: kv.id
  }
}

resource rgSymbol 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(rg.id, principalId)
  scope: rg
  properties: {
    roleDefinitionId: roleId
    principalId: principalId
  }
}

resource stringScope 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid('s', principalId)
  scope: '/subscriptions/x/resourceGroups/y'
  properties: {
    roleDefinitionId: roleId
    principalId: principalId
  }
}

resource paramScope 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(someScope, principalId)
  scope: someScope
  properties: {
    roleDefinitionId: roleId
    principalId: principalId
  }
}

resource idExpression 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(kv.id, principalId, 'id')
  scope: kv.id
  properties: {
    roleDefinitionId: roleId
    principalId: principalId
  }
}

resource unknownSymbol 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid('u', principalId)
  scope: otherVault
  properties: {
    roleDefinitionId: roleId
    principalId: principalId
  }
}

resource loopRgWide 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (p, i) in [principalId]: if (!empty(p)) {
    name: guid(resourceGroup().id, p, string(i))
    scope: resourceGroup()
    properties: {
      roleDefinitionId: roleId
      principalId: p
    }
  }
]

// The one right way: scoped to the vault reference.
resource vaultScoped 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(kv.id, principalId, roleId)
  scope: kv
  properties: {
    roleDefinitionId: roleId
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
