variable "project_id" {
  description = "GCP project of the function, its topic, its pool and the managed secrets."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID (6-30 lower-case letters, digits and hyphens), not a number."
  }
}

variable "region" {
  description = "Region of the function, its trigger, the scheduler jobs and the source bucket."
  type        = string
  default     = "europe-west1"
}

variable "environment" {
  description = "Environment name (dev, test, prod): part of every resource name."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,7}$", var.environment))
    error_message = "environment must be 2-8 lower-case letters and digits, starting with a letter."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name."
  type        = string
  default     = "keyferry"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,11}$", var.name_prefix))
    error_message = "name_prefix must be 2-12 lower-case letters, digits and hyphens, starting with a letter."
  }
}

variable "function_source_zip" {
  description = "Path of the function's source archive, made by infra/gcp/package.sh (the repository's module with a root package that registers SecretEvents)."
  type        = string
  default     = "build/keyferry-gcp-function.zip"
}

variable "go_runtime" {
  description = "Cloud Functions Go runtime; go.mod needs Go 1.26, so go126 or later."
  type        = string
  default     = "go126"

  validation {
    condition     = can(regex("^go1[0-9]{2}$", var.go_runtime))
    error_message = "go_runtime must look like go126."
  }
}

variable "build_service_account" {
  description = "Service account (full resource name projects/P/serviceAccounts/EMAIL) Cloud Build runs the function build as; null: the project's default build service account."
  type        = string
  default     = null
}

variable "keyferry_config_yaml" {
  description = "keyferry.yaml itself (docs/configuration.md), given to the function as KEYFERRY_CONFIG_YAML. It holds no credentials: keyferry refuses any."
  type        = string
}

variable "secrets" {
  description = <<-EOT
    The Secret Manager secrets (IDs, in project_id) keyferry works with; IAM is granted on each of them only.
    access: "write" (a replica keyferry writes: new versions, labels and annotations, delete for delete: propagate)
    or "read" (a source: values and metadata, plus labels and annotations for keyferry's synced mark; no new
    versions). create: true makes Terraform create the secret, with the notification topic attached; false means
    it exists already (attach the topic yourself: docs/deploy.md). keyferry cannot create secrets that are not
    listed here: it has no project-wide secret permission.
  EOT
  type = map(object({
    access                = string
    create                = optional(bool, false)
    labels                = optional(map(string), {})
    replication_locations = optional(list(string), [])
  }))
  default = {}

  validation {
    condition     = alltrue([for s in values(var.secrets) : contains(["read", "write"], s.access)])
    error_message = "Each secret's access must be \"read\" or \"write\"."
  }

  validation {
    condition     = alltrue([for id in keys(var.secrets) : can(regex("^[A-Za-z0-9_-]{1,255}$", id))])
    error_message = "Secret IDs are 1-255 letters, digits, hyphens and underscores."
  }
}

variable "allow_secret_listing" {
  description = "Grant the function the one project-level permission a sweep needs, secretmanager.secrets.list (names, labels and annotations; no values, no writes), through a custom role. false: no sweeps of this project (events only)."
  type        = bool
  default     = true
}

variable "rotation_siblings" {
  description = "keyferry.yaml rotates secrets held in this project (a rotation policy's store, or a replica of a rotated secret): grant the project-level, name-conditioned role for the pending siblings (<secret>--keyferry-pending) rotation creates and deletes. The rotated secrets themselves need access = \"write\" in secrets."
  type        = bool
  default     = false
}

variable "renew_certificates" {
  description = "keyferry.yaml has certificates: schedule the renew job ({\"job\":\"renew\"})."
  type        = bool
  default     = false
}

variable "renew_schedule" {
  description = "Cloud Scheduler cron of the renew job. Renewal is due at 2/3 of a certificate's life unless renew_before says otherwise: run it well within the shortest renewal window."
  type        = string
  default     = "41 */6 * * *"
}

variable "certificate_manager" {
  description = "keyferry.yaml has certificate_manager targets in this project: grant creating, reading and updating Certificate Manager certificates (project-level: Certificate Manager has no per-certificate IAM)."
  type        = bool
  default     = false
}

variable "ca_signing_crypto_key" {
  description = "The CryptoKey (projects/P/locations/L/keyRings/R/cryptoKeys/K) of the builtin issuer's key in Cloud KMS (certificates.issuer.builtin.key.gcp_kms, whose key_version is a version of this key); empty: none."
  type        = string
  default     = ""

  validation {
    condition     = var.ca_signing_crypto_key == "" || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", var.ca_signing_crypto_key))
    error_message = "ca_signing_crypto_key must be projects/P/locations/L/keyRings/R/cryptoKeys/K (the key, not a version), or empty."
  }
}

variable "notify_pubsub_topics" {
  description = "Pub/Sub topics (projects/P/topics/T) of keyferry.yaml notify: routes the function publishes alerts to."
  type        = list(string)
  default     = []
}

variable "sweep_schedule" {
  description = "Cloud Scheduler cron of the sweep ({\"job\":\"sweep\"})."
  type        = string
  default     = "*/15 * * * *"
}

variable "deep_sweep_schedule" {
  description = "Cloud Scheduler cron of the deep sweep ({\"job\":\"deep-sweep\"}), which ignores the synced marks."
  type        = string
  default     = "30 3 * * *"
}

variable "scheduler_time_zone" {
  description = "Time zone of the scheduler jobs."
  type        = string
  default     = "Etc/UTC"
}

variable "max_instances" {
  description = "Most function instances at once."
  type        = number
  default     = 10
}

variable "memory" {
  description = "Memory of a function instance."
  type        = string
  default     = "256Mi"
}

variable "timeout_seconds" {
  description = "Function timeout; 540 is the most an event-triggered function gets."
  type        = number
  default     = 540
}

# ---- AWS → GCP: the keyferry Lambda federates through the pool's AWS provider ----

variable "aws_account_id" {
  description = "AWS account of the keyferry Lambda; empty: no AWS provider in the pool."
  type        = string
  default     = ""

  validation {
    condition     = var.aws_account_id == "" || can(regex("^[0-9]{12}$", var.aws_account_id))
    error_message = "aws_account_id must be 12 digits, or empty."
  }
}

variable "aws_lambda_role_name" {
  description = "Name of the keyferry Lambda's execution role (infra/cdk output); only its sessions are accepted."
  type        = string
  default     = ""
}

# ---- Azure → GCP: the Function App's managed identity federates through the pool's OIDC provider ----

variable "azure_tenant_id" {
  description = "Entra tenant (GUID) of the Function App; empty: no Azure provider in the pool."
  type        = string
  default     = ""
}

variable "azure_token_version" {
  description = "Version of the Entra tokens the managed identity gets for the keyferry app (entra.bicep accessTokenVersion): 1 (issuer https://sts.windows.net/<tenant>/, audience = the app's identifier URI) or 2 (issuer https://login.microsoftonline.com/<tenant>/v2.0, audience = the app's client id)."
  type        = number
  default     = 1

  validation {
    condition     = contains([1, 2], var.azure_token_version)
    error_message = "azure_token_version must be 1 or 2."
  }
}

variable "azure_audience" {
  description = "The aud of those tokens (entra.bicep output tokenAudience): the keyferry Entra app's identifier URI (v1) or client id (v2)."
  type        = string
  default     = ""
}

variable "azure_principal_object_id" {
  description = "Object id of the Function App's managed identity (main.bicep output functionPrincipalId): the only subject accepted."
  type        = string
  default     = ""
}
