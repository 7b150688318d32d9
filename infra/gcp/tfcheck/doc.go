// Package tfcheck holds only tests: they read the Terraform of infra/gcp and assert that every IAM grant
// (google_*_iam_member/binding/policy) names a specific resource — a secret, a topic, a service account, a
// Cloud Run service, a bucket, a CryptoKey — and that nothing grants secret access project-wide:
//
//   - google_project/folder/organization_iam_* may only grant custom roles of this configuration whose
//     permissions are all listing ones (secretmanager.secrets.list, secretmanager.locations.*: a sweep lists
//     its source, and listing is a project permission) or Certificate Manager certificates' create, get,
//     update and operations.get (no IAM per certificate; no private key can be read back) — or secret
//     permissions under a condition whose every alternative names rotation's pending siblings
//     (--keyferry-pending) or admits only the project resource (where creating a secret is checked).
//     Predefined roles (roles/secretmanager.*, roles/editor, …) and roles that are not literal or a custom
//     role of this configuration are refused.
//   - resource-level grants must set their resource argument (secret_id, topic, service_account_id, …) to a
//     non-empty value without a wildcard; secretmanager roles only on secrets; *_iam_policy (authoritative:
//     it replaces every other binding) is refused.
//
// github.com/hashicorp/hcl/v2 is not in the root go.mod, so the HCL is read with a small tokenizer written
// for this check (strings with ${}/%{} templates, heredocs, comments, nesting), tested on its own, standard
// library only. testdata/bad-iam.tf shows the check failing; to see it fail as a test:
//
//	go test ./infra/gcp/tfcheck -run TestIAMGrantsNameResources -args -tf testdata/bad-iam.tf
//
// The grant tests (ops_test.go) take every permission the configuration can grant the function's service
// account (custom roles' permissions, predefined roles from infra/opslist's table; every grant whatever its
// count or condition) and compare them with the permissions the GCP operations of keyferry's code need
// (infra/opslist scans the functions' code): exactly those. testdata/ops-drift_override.tf, merged in the way
// Terraform merges override files, shows it failing.
package tfcheck
