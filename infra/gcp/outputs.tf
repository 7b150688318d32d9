output "function_name" {
  description = "The Cloud Function."
  value       = google_cloudfunctions2_function.secret_events.name
}

output "function_service_account_email" {
  description = "The function's service account; the AWS and Azure functions impersonate it."
  value       = google_service_account.function.email
}

output "function_service_account_unique_id" {
  description = "Numeric unique id of that account: the sub (and azp) of its Google ID tokens. Entra federated credential subject (entra.bicep gcpServiceAccountUniqueIds); AWS trust condition accounts.google.com:aud/sub."
  value       = google_service_account.function.unique_id
}

output "notification_topic" {
  description = "The managed secrets' notification topic: list it under topics: of the gcp-secretmanager store in keyferry.yaml."
  value       = google_pubsub_topic.secret_events.id
}

output "project_number" {
  value = local.project_number
}

output "workload_identity_pool" {
  description = "Full name of the pool."
  value       = google_iam_workload_identity_pool.keyferry.name
}

output "aws_provider_audience" {
  description = "Audience the Lambda's external-account configuration uses (empty without AWS federation)."
  value       = local.aws_enabled ? "//iam.googleapis.com/${google_iam_workload_identity_pool_provider.aws[0].name}" : ""
}

output "azure_provider_audience" {
  description = "Audience the Azure function's external-account configuration uses (empty without Azure federation)."
  value       = local.azure_enabled ? "//iam.googleapis.com/${google_iam_workload_identity_pool_provider.azure[0].name}" : ""
}

output "impersonation_url" {
  description = "service_account_impersonation_url of both external-account configurations."
  value       = "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/${google_service_account.function.email}:generateAccessToken"
}

output "secret_roles" {
  description = "Secret IDs and the role granted on each."
  value       = { for id, m in google_secret_manager_secret_iam_member.function : id => m.role }
}

output "renew_job" {
  description = "The renew job's Cloud Scheduler job (empty without renew_certificates)."
  value       = var.renew_certificates ? google_cloud_scheduler_job.renew[0].id : ""
}
