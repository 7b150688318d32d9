// Fixture for the syntax check itself: a parameters file with an unterminated array.
using '../../main.bicep'

param environmentName = 'dev'
param vaults = [
  {
    name: 'kf-dev-secrets'
