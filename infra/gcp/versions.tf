terraform {
  required_version = ">= 1.6"

  required_providers {
    google = {
      source = "hashicorp/google"
      # Checked (infra-check-gcp) against the provider built from its Go module at the commit pinned in
      # provider/go.mod (main after 8.0.0).
      version = "~> 8.0"
    }
  }

  # State in a GCS bucket you create once:
  #   terraform init -backend-config="bucket=<state-bucket>" -backend-config="prefix=keyferry/<environment>"
  backend "gcs" {}
}

provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = {
    application = "keyferry"
    environment = var.environment
  }
}
