// One Event Grid custom topic of keyferry.yaml's eventgrid notify routes, deployed into the topic's own
// resource group (main.bicep sets the module's scope): the Function App's managed identity may send events
// to this topic only (core/notify publishes alerts with it).

@description('Name of the existing Event Grid custom topic.')
param topicName string

@description('Object id of the Function App\'s system-assigned managed identity.')
param functionPrincipalId string

var eventGridDataSender = 'd5a91429-5739-47e2-a06b-3470a27159e7' // EventGrid Data Sender

resource topic 'Microsoft.EventGrid/topics@2025-02-15' existing = {
  name: topicName
}

resource senderAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(topic.id, functionPrincipalId, eventGridDataSender)
  scope: topic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventGridDataSender)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
    description: 'keyferry Azure Function (alerts)'
  }
}

output topicEndpoint string = topic.properties.endpoint
