// Package tfcheck holds only tests: they read the Terraform of infra/gcp and assert that every IAM grant
// (google_*_iam_member/binding/policy) names a specific resource — a secret, a topic, a service account, a
// Cloud Run service, a bucket — and that nothing grants secret access project-wide:
//
//   - google_project/folder/organization_iam_* may only grant custom roles of this configuration whose
//     permissions are all listing ones (secretmanager.secrets.list, secretmanager.locations.*): a sweep lists
//     its source, and listing is a project permission. Predefined roles (roles/secretmanager.*, roles/editor,
//     …) and roles that are not literal or a custom role of this configuration are refused.
//   - resource-level grants must set their resource argument (secret_id, topic, service_account_id, …) to a
//     non-empty value without a wildcard; secretmanager roles only on secrets; *_iam_policy (authoritative:
//     it replaces every other binding) is refused.
//
// github.com/hashicorp/hcl/v2 is not in the root go.mod, so the HCL is read with a small tokenizer written
// for this check (strings with ${}/%{} templates, heredocs, comments, nesting), tested on its own, standard
// library only. testdata/bad-iam.tf shows the check failing; to see it fail as a test:
//
//	go test ./infra/gcp/tfcheck -run TestIAMGrantsNameResources -args -tf testdata/bad-iam.tf
package tfcheck
