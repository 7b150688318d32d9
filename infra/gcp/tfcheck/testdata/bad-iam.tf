# Fixture: IAM grants the check must reject (every one but list_only and one_secret). Valid HCL, never
# applied; `terraform fmt -check -recursive` reads it, `terraform validate` (infra/gcp only) does not.

variable "role" {
  type = string
}

resource "google_service_account" "fn" {
  account_id = "fixture-fn"
}

resource "google_secret_manager_secret" "s" {
  secret_id = "fixture"
  replication {
    auto {}
  }
}

resource "google_project_iam_member" "project_secret_accessor" {
  project = "p"
  role    = "roles/secretmanager.secretAccessor"
  member  = google_service_account.fn.member
}

resource "google_project_iam_binding" "project_secret_admin" {
  project = "p"
  role    = "roles/secretmanager.admin"
  members = [google_service_account.fn.member]
}

resource "google_project_iam_custom_role" "too_much" {
  role_id     = "tooMuch"
  title       = "lists and reads every secret"
  permissions = ["secretmanager.secrets.list", "secretmanager.versions.access"]
}

resource "google_project_iam_member" "custom_project_wide" {
  project = "p"
  role    = google_project_iam_custom_role.too_much.name
  member  = google_service_account.fn.member
}

resource "google_project_iam_member" "editor" {
  project = "p"
  role    = "roles/editor"
  member  = google_service_account.fn.member
}

resource "google_folder_iam_member" "folder_secrets" {
  folder = "folders/1"
  role   = "roles/secretmanager.viewer"
  member = google_service_account.fn.member
}

resource "google_project_iam_member" "dynamic_role" {
  project = "p"
  role    = var.role
  member  = google_service_account.fn.member
}

resource "google_project_iam_policy" "project_policy" {
  project     = "p"
  policy_data = "{}"
}

resource "google_secret_manager_secret_iam_member" "no_secret" {
  role   = "roles/secretmanager.secretAccessor"
  member = google_service_account.fn.member
}

resource "google_secret_manager_secret_iam_member" "empty_secret" {
  secret_id = ""
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.fn.member
}

resource "google_pubsub_topic_iam_member" "secret_role_on_topic" {
  topic  = "projects/p/topics/t"
  role   = "roles/secretmanager.secretAccessor"
  member = google_service_account.fn.member
}

resource "google_storage_bucket_iam_policy" "bucket_policy" {
  bucket      = "b"
  policy_data = "{}"
}

resource "google_service_account_iam_member" "wildcard_sa" {
  service_account_id = "projects/p/serviceAccounts/*"
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/*"
}

resource "google_bigquery_dataset_iam_member" "unknown_type" {
  dataset_id = "d"
  role       = "roles/bigquery.dataViewer"
  member     = google_service_account.fn.member
}

# Rotation's pending siblings: secret permissions project-wide, refused without a condition naming the
# siblings, and with a condition that also lets other names through.
resource "google_project_iam_custom_role" "pending" {
  role_id     = "pending"
  title       = "pending siblings"
  permissions = ["secretmanager.secrets.create", "secretmanager.versions.add"]
}

resource "google_project_iam_member" "pending_unconditioned" {
  project = "p"
  role    = google_project_iam_custom_role.pending.name
  member  = google_service_account.fn.member
}

resource "google_project_iam_member" "pending_wide_condition" {
  project = "p"
  role    = google_project_iam_custom_role.pending.name
  member  = google_service_account.fn.member

  condition {
    title      = "too wide"
    expression = "resource.name.endsWith(\"--keyferry-pending\") || resource.name.startsWith(\"projects/1/secrets/\")"
  }
}

# Accepted: the same role limited to the siblings' names (and the project, where creation is checked).
resource "google_project_iam_member" "pending_conditioned" {
  project = "p"
  role    = google_project_iam_custom_role.pending.name
  member  = google_service_account.fn.member

  condition {
    title      = "pending siblings"
    expression = "resource.type == \"cloudresourcemanager.googleapis.com/Project\" || resource.name.endsWith(\"--keyferry-pending\")"
  }
}

# Accepted: Certificate Manager certificates, project-wide (no per-certificate IAM; no secret is readable).
resource "google_project_iam_custom_role" "certs" {
  role_id     = "certs"
  title       = "certificates"
  permissions = ["certificatemanager.certs.create", "certificatemanager.certs.get", "certificatemanager.certs.update", "certificatemanager.operations.get"]
}

resource "google_project_iam_member" "cert_manager" {
  project = "p"
  role    = google_project_iam_custom_role.certs.name
  member  = google_service_account.fn.member
}

# Accepted: listing only, project-wide (a sweep lists its source).
resource "google_project_iam_custom_role" "lister" {
  role_id     = "lister"
  title       = "list secrets"
  permissions = ["secretmanager.secrets.list"]
}

resource "google_project_iam_member" "list_only" {
  project = "p"
  role    = google_project_iam_custom_role.lister.name
  member  = google_service_account.fn.member
}

# Accepted: one secret.
resource "google_secret_manager_secret_iam_member" "one_secret" {
  secret_id = google_secret_manager_secret.s.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.fn.member
}
