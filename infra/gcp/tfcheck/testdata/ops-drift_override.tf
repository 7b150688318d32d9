# Fixture for TestGrantsCheckCatchesDrift, merged into main.tf the way Terraform merges override files: the
# certificate writer role without certificatemanager.operations.get, and a grant of a permission no code of
# keyferry's needs.

resource "google_project_iam_custom_role" "cert_writer" {
  permissions = [
    "certificatemanager.certs.create",
    "certificatemanager.certs.get",
    "certificatemanager.certs.update",
  ]
}

resource "google_project_iam_custom_role" "version_destroyer" {
  project     = var.project_id
  role_id     = "keyferry_${var.environment}_version_destroyer"
  title       = "destroy versions"
  permissions = ["secretmanager.versions.destroy"]
}

resource "google_secret_manager_secret_iam_member" "destroys_versions" {
  for_each  = var.secrets
  project   = var.project_id
  secret_id = each.key
  role      = google_project_iam_custom_role.version_destroyer.name
  member    = google_service_account.function.member
}
