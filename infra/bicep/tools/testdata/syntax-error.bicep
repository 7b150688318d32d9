// Fixture for the syntax check itself (bicep.mk runs check.js on it and expects it to fail): an unclosed
// object, a property without a value and a stray token.
param location string = resourceGroup().location

resource sa 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'kfbad'
  location: location
  sku: {
    name:
  }
  kind 'StorageV2'
