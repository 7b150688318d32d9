# keyferry on GCP: the Cloud Functions (gen2) function SecretEvents (functions/gcp) with its own service account,
# the Pub/Sub topic that is both the managed secrets' notification topic and the scheduler's, the Secret Manager
# service agent's publisher binding on it, the function's Pub/Sub trigger, Cloud Scheduler sweeps (and renewals
# with certificates), IAM on each listed secret (never project-wide for secret access; rotation's pending
# siblings only through a condition on their names), Certificate Manager and the CA's Cloud KMS key when
# certificates use them, and the Workload Identity Pool the keyferry functions in AWS and Azure federate through
# (impersonating the function's service account).

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  name           = "${var.name_prefix}-${var.environment}"
  project_number = data.google_project.this.number

  # Google-managed service agents of this project.
  secretmanager_agent = "serviceAccount:service-${local.project_number}@gcp-sa-secretmanager.iam.gserviceaccount.com"
  pubsub_agent        = "serviceAccount:service-${local.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  managed_secrets = { for id, s in var.secrets : id => s if s.create }

  aws_enabled   = var.aws_account_id != "" && var.aws_lambda_role_name != ""
  azure_enabled = var.azure_tenant_id != "" && var.azure_audience != "" && var.azure_principal_object_id != ""
  azure_issuer = (var.azure_token_version == 2
    ? "https://login.microsoftonline.com/${var.azure_tenant_id}/v2.0"
  : "https://sts.windows.net/${var.azure_tenant_id}/")
}

resource "google_project_service" "apis" {
  for_each = toset(concat([
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com",
    "eventarc.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
    "sts.googleapis.com",
    ],
    var.certificate_manager ? ["certificatemanager.googleapis.com"] : [],
    var.ca_signing_crypto_key != "" ? ["cloudkms.googleapis.com"] : [],
  ))
  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

# ---- identities ----

resource "google_service_account" "function" {
  project      = var.project_id
  account_id   = "${local.name}-fn"
  display_name = "keyferry ${var.environment} function"
  description  = "Runs the SecretEvents function; the AWS and Azure keyferry functions impersonate it through the workload identity pool."
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "trigger" {
  project      = var.project_id
  account_id   = "${local.name}-trigger"
  display_name = "keyferry ${var.environment} trigger"
  description  = "Identity Eventarc pushes the topic's messages to the function with (run.invoker on that service only)."
  depends_on   = [google_project_service.apis]
}

# The Pub/Sub service agent signs the push requests' OIDC tokens as the trigger account (needed in projects
# created before April 2021, harmless after).
resource "google_service_account_iam_member" "pubsub_signs_for_trigger" {
  service_account_id = google_service_account.trigger.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}

# ---- events: one topic for Secret Manager notifications and scheduler messages ----

resource "google_pubsub_topic" "secret_events" {
  project                    = var.project_id
  name                       = "${local.name}-secret-events"
  message_retention_duration = "86400s"
  depends_on                 = [google_project_service.apis]
}

# Secret Manager publishes a secret's notifications as its service agent, which needs publisher on the topic
# before a secret names it. (The agent exists once created: `gcloud beta services identity create
# --service=secretmanager.googleapis.com`, docs/deploy.md.)
resource "google_pubsub_topic_iam_member" "secretmanager_publishes" {
  project = var.project_id
  topic   = google_pubsub_topic.secret_events.name
  role    = "roles/pubsub.publisher"
  member  = local.secretmanager_agent
}

resource "google_pubsub_topic_iam_member" "function_notifies" {
  for_each = toset(var.notify_pubsub_topics)
  topic    = each.value
  role     = "roles/pubsub.publisher"
  member   = google_service_account.function.member
}

# Cloud Scheduler publishes with its service agent (roles/cloudscheduler.serviceAgent includes publishing).
resource "google_cloud_scheduler_job" "sweep" {
  project     = var.project_id
  region      = var.region
  name        = "${local.name}-sweep"
  description = "keyferry sweep: sources whose synced mark is stale"
  schedule    = var.sweep_schedule
  time_zone   = var.scheduler_time_zone

  pubsub_target {
    topic_name = google_pubsub_topic.secret_events.id
    data       = base64encode(jsonencode({ job = "sweep" }))
  }
}

resource "google_cloud_scheduler_job" "deep_sweep" {
  project     = var.project_id
  region      = var.region
  name        = "${local.name}-deep-sweep"
  description = "keyferry deep sweep: every source and replica, ignoring the synced marks"
  schedule    = var.deep_sweep_schedule
  time_zone   = var.scheduler_time_zone

  pubsub_target {
    topic_name = google_pubsub_topic.secret_events.id
    data       = base64encode(jsonencode({ job = "deep-sweep" }))
  }
}

# The renew job, only when keyferry.yaml has certificates.
resource "google_cloud_scheduler_job" "renew" {
  count       = var.renew_certificates ? 1 : 0
  project     = var.project_id
  region      = var.region
  name        = "${local.name}-renew"
  description = "keyferry renew: re-issue the certificates of keyferry.yaml that are due and write them to their targets"
  schedule    = var.renew_schedule
  time_zone   = var.scheduler_time_zone

  pubsub_target {
    topic_name = google_pubsub_topic.secret_events.id
    data       = base64encode(jsonencode({ job = "renew" }))
  }
}

# ---- the function ----

resource "google_storage_bucket" "source" {
  project                     = var.project_id
  name                        = "${var.project_id}-${local.name}-source"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  lifecycle_rule {
    condition {
      age = 30
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_storage_bucket_object" "source" {
  # A new name for new contents, so the function is rebuilt exactly when the code changed.
  name   = "keyferry-gcp-${filesha256(var.function_source_zip)}.zip"
  bucket = google_storage_bucket.source.name
  source = var.function_source_zip
}

resource "google_cloudfunctions2_function" "secret_events" {
  project     = var.project_id
  location    = var.region
  name        = "${local.name}-secret-events"
  description = "keyferry: Secret Manager notifications and scheduled sweeps (functions/gcp)"

  build_config {
    runtime         = var.go_runtime
    entry_point     = "SecretEvents"
    service_account = var.build_service_account

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email          = google_service_account.function.email
    max_instance_count             = var.max_instances
    min_instance_count             = 0
    available_memory               = var.memory
    timeout_seconds                = var.timeout_seconds
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true

    environment_variables = {
      KEYFERRY_CONFIG_YAML = var.keyferry_config_yaml
    }
  }

  event_trigger {
    trigger_region        = var.region
    event_type            = "google.cloud.pubsub.topic.v1.messagePublished"
    pubsub_topic          = google_pubsub_topic.secret_events.id
    retry_policy          = "RETRY_POLICY_RETRY" # the function returns an error only for transient failures
    service_account_email = google_service_account.trigger.email
  }

  depends_on = [google_project_service.apis]
}

resource "google_cloud_run_v2_service_iam_member" "trigger_invokes" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.secret_events.service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.trigger.member
}

# ---- secrets: roles defined once, granted on each listed secret only ----

resource "google_project_iam_custom_role" "secret_reader" {
  project     = var.project_id
  role_id     = "keyferry_${var.environment}_secret_reader"
  title       = "keyferry ${var.environment} secret reader"
  description = "A keyferry source: read values and metadata, write labels and annotations (keyferry's synced mark). Granted per secret."
  permissions = [
    "secretmanager.secrets.get",
    "secretmanager.secrets.update",
    "secretmanager.versions.access",
    "secretmanager.versions.list",
  ]
}

resource "google_project_iam_custom_role" "secret_writer" {
  project     = var.project_id
  role_id     = "keyferry_${var.environment}_secret_writer"
  title       = "keyferry ${var.environment} secret writer"
  description = "A keyferry replica or rotated secret: the reader's permissions plus new versions and delete (delete: propagate). Granted per secret."
  permissions = [
    "secretmanager.secrets.delete",
    "secretmanager.secrets.get",
    "secretmanager.secrets.update",
    "secretmanager.versions.access",
    "secretmanager.versions.add",
    "secretmanager.versions.list",
  ]
}

# The one project-level grant: listing secret names and metadata (a sweep lists its source), no values.
resource "google_project_iam_custom_role" "secret_lister" {
  count       = var.allow_secret_listing ? 1 : 0
  project     = var.project_id
  role_id     = "keyferry_${var.environment}_secret_lister"
  title       = "keyferry ${var.environment} secret lister"
  description = "List secrets (names, labels, annotations); no value, no write."
  permissions = ["secretmanager.secrets.list"]
}

resource "google_project_iam_member" "function_lists_secrets" {
  count   = var.allow_secret_listing ? 1 : 0
  project = var.project_id
  role    = google_project_iam_custom_role.secret_lister[0].name
  member  = google_service_account.function.member
}

# Rotation writes a secret's pending value to a sibling, <secret>--keyferry-pending, created for the rotation and
# deleted after it. A secret that does not exist yet has no IAM policy, so the sibling's grant is on the project,
# restricted by a condition to names ending in --keyferry-pending; creating is checked on the project (the new
# name is not visible to the condition), so the function may create secrets of any name, but read, write and
# delete only the siblings.
resource "google_project_iam_custom_role" "rotation_sibling" {
  count       = var.rotation_siblings ? 1 : 0
  project     = var.project_id
  role_id     = "keyferry_${var.environment}_rotation_sibling"
  title       = "keyferry ${var.environment} rotation sibling"
  description = "Create, write, read and delete rotation's pending siblings (granted with a condition on their names)."
  permissions = [
    "secretmanager.secrets.create",
    "secretmanager.secrets.delete",
    "secretmanager.secrets.get",
    "secretmanager.secrets.update",
    "secretmanager.versions.access",
    "secretmanager.versions.add",
    "secretmanager.versions.list",
  ]
}

resource "google_project_iam_member" "function_rotation_siblings" {
  count   = var.rotation_siblings ? 1 : 0
  project = var.project_id
  role    = google_project_iam_custom_role.rotation_sibling[0].name
  member  = google_service_account.function.member

  condition {
    title       = "keyferry pending siblings"
    description = "Secrets named <secret>--keyferry-pending and their versions; secret creation (checked on the project)."
    expression  = "resource.type == \"cloudresourcemanager.googleapis.com/Project\" || resource.name.endsWith(\"--keyferry-pending\") || resource.name.extract(\"/secrets/{name}/\").endsWith(\"--keyferry-pending\")"
  }
}

resource "google_secret_manager_secret" "managed" {
  for_each  = local.managed_secrets
  project   = var.project_id
  secret_id = each.key
  labels    = each.value.labels

  replication {
    dynamic "auto" {
      for_each = length(each.value.replication_locations) == 0 ? [1] : []
      content {}
    }
    dynamic "user_managed" {
      for_each = length(each.value.replication_locations) > 0 ? [1] : []
      content {
        dynamic "replicas" {
          for_each = each.value.replication_locations
          content {
            location = replicas.value
          }
        }
      }
    }
  }

  topics {
    name = google_pubsub_topic.secret_events.id
  }

  lifecycle {
    # keyferry keeps its provenance and synced mark in labels and annotations.
    ignore_changes = [labels, annotations]
  }

  depends_on = [google_pubsub_topic_iam_member.secretmanager_publishes]
}

locals {
  # Every listed secret's ID; the created ones through their resource, so grants follow creation.
  secret_ids = merge(
    { for id in keys(var.secrets) : id => id },
    { for id, s in google_secret_manager_secret.managed : id => s.secret_id },
  )
}

resource "google_secret_manager_secret_iam_member" "function" {
  for_each  = var.secrets
  project   = var.project_id
  secret_id = local.secret_ids[each.key]
  role      = each.value.access == "write" ? google_project_iam_custom_role.secret_writer.name : google_project_iam_custom_role.secret_reader.name
  member    = google_service_account.function.member
}

# ---- certificates ----

# Certificate Manager targets: self-managed certificates keyferry creates and replaces. Certificate Manager has no
# IAM on individual certificates, so this is granted on the project; it reads no secret (a certificate's private
# key cannot be read back) and deletes nothing.
resource "google_project_iam_custom_role" "cert_writer" {
  count       = var.certificate_manager ? 1 : 0
  project     = var.project_id
  role_id     = "keyferry_${var.environment}_cert_writer"
  title       = "keyferry ${var.environment} certificate writer"
  description = "Create, read and update Certificate Manager certificates, and wait for those operations."
  permissions = [
    "certificatemanager.certs.create",
    "certificatemanager.certs.get",
    "certificatemanager.certs.update",
    "certificatemanager.operations.get",
  ]
}

resource "google_project_iam_member" "function_writes_certificates" {
  count   = var.certificate_manager ? 1 : 0
  project = var.project_id
  role    = google_project_iam_custom_role.cert_writer[0].name
  member  = google_service_account.function.member
}

# The builtin issuer's intermediate key in Cloud KMS (certificates.issuer.builtin.key.gcp_kms): sign and read the
# public key, on that CryptoKey only.
resource "google_project_iam_custom_role" "ca_signer" {
  count       = var.ca_signing_crypto_key != "" ? 1 : 0
  project     = var.project_id
  role_id     = "keyferry_${var.environment}_ca_signer"
  title       = "keyferry ${var.environment} CA signer"
  description = "Sign with the CA's key and read its public key."
  permissions = [
    "cloudkms.cryptoKeyVersions.useToSign",
    "cloudkms.cryptoKeyVersions.viewPublicKey",
  ]
}

resource "google_kms_crypto_key_iam_member" "function_signs" {
  count         = var.ca_signing_crypto_key != "" ? 1 : 0
  crypto_key_id = var.ca_signing_crypto_key
  role          = google_project_iam_custom_role.ca_signer[0].name
  member        = google_service_account.function.member
}

# ---- workload identity federation: the AWS and Azure keyferry functions impersonate the function's SA ----

resource "google_iam_workload_identity_pool" "keyferry" {
  project                   = var.project_id
  workload_identity_pool_id = local.name
  display_name              = "keyferry ${var.environment}"
  description               = "The keyferry functions in AWS and Azure."
  depends_on                = [google_project_service.apis]
}

resource "google_iam_workload_identity_pool_provider" "aws" {
  count                              = local.aws_enabled ? 1 : 0
  project                            = var.project_id
  workload_identity_pool_id          = google_iam_workload_identity_pool.keyferry.workload_identity_pool_id
  workload_identity_pool_provider_id = "keyferry-aws"
  display_name                       = "AWS ${var.aws_account_id}"
  description                        = "The keyferry Lambda's execution role in AWS account ${var.aws_account_id}."

  attribute_mapping = {
    "google.subject"        = "assertion.arn"
    "attribute.aws_account" = "assertion.account"
    "attribute.aws_role"    = "assertion.arn.contains('assumed-role') ? assertion.arn.extract('{account_arn}assumed-role/') + 'assumed-role/' + assertion.arn.extract('assumed-role/{role_name}/') : assertion.arn"
  }
  # Only sessions of the Lambda's role (arn:aws:sts::ACCOUNT:assumed-role/ROLE/FUNCTION).
  attribute_condition = "assertion.arn.startsWith('arn:aws:sts::${var.aws_account_id}:assumed-role/${var.aws_lambda_role_name}/')"

  aws {
    account_id = var.aws_account_id
  }
}

resource "google_iam_workload_identity_pool_provider" "azure" {
  count                              = local.azure_enabled ? 1 : 0
  project                            = var.project_id
  workload_identity_pool_id          = google_iam_workload_identity_pool.keyferry.workload_identity_pool_id
  workload_identity_pool_provider_id = "keyferry-azure"
  display_name                       = "Azure ${var.azure_tenant_id}"
  description                        = "The keyferry Function App's managed identity (Entra v${var.azure_token_version} tokens)."

  attribute_mapping = {
    "google.subject" = "assertion.sub"
    "attribute.tid"  = "assertion.tid"
    "attribute.oid"  = "assertion.oid"
  }
  # Only the Function App's managed identity, in its tenant.
  attribute_condition = "assertion.tid == '${var.azure_tenant_id}' && assertion.oid == '${var.azure_principal_object_id}'"

  oidc {
    issuer_uri        = local.azure_issuer
    allowed_audiences = [var.azure_audience]
  }
}

resource "google_service_account_iam_member" "aws_impersonates" {
  count              = local.aws_enabled ? 1 : 0
  service_account_id = google_service_account.function.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.keyferry.name}/attribute.aws_role/arn:aws:sts::${var.aws_account_id}:assumed-role/${var.aws_lambda_role_name}"
}

resource "google_service_account_iam_member" "azure_impersonates" {
  count              = local.azure_enabled ? 1 : 0
  service_account_id = google_service_account.function.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principal://iam.googleapis.com/${google_iam_workload_identity_pool.keyferry.name}/subject/${var.azure_principal_object_id}"
}
