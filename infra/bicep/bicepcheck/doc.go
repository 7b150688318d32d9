// Package bicepcheck holds only tests: they read every .bicep file under infra/bicep and assert that each
// Microsoft.Authorization/roleAssignments resource has a scope property naming a specific resource declared in
// the same file (such as an existing Key Vault), never resourceGroup(), subscription(), managementGroup(),
// tenant(), a resource group or subscription resource, a string, or nothing (which means the deployment's
// resource group). The assignments of modules/vault.bicep must be scoped to the vault itself.
//
// It parses Bicep with a small tokenizer (strings, interpolation, multi-line strings, comments, nesting)
// written for this check and tested on its own, using only the standard library. testdata/bad-scope.bicep
// shows the check failing; to see it fail as a test:
//
//	go test ./infra/bicep/bicepcheck -run TestRoleAssignmentScopes -args -bicep testdata/bad-scope.bicep
//
// The grant tests (ops_test.go) resolve each assignment's role definition id (through vars, object members
// and loop variables) and principal, take the data actions of the roles assigned to the Function App's
// managed identity and the federated Entra app from infra/opslist's table of built-in roles, and compare
// them with the data actions the Azure operations of keyferry's code need (infra/opslist scans the
// functions' code): every one granted, nothing else but the built-in roles' documented surplus. Platform
// roles (the host's storage, telemetry) are left out. testdata/ops-drift-vault.bicep shows it failing.
package bicepcheck
