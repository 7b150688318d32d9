# Example values: copy to <environment>.tfvars and
#   terraform -chdir=infra/gcp apply -var-file=<environment>.tfvars
# docs/deploy.md says where each value comes from (which other cloud's output).

project_id  = "kf-prod-123456"
region      = "europe-west1"
environment = "prod"

# infra/gcp/package.sh writes it (path relative to infra/gcp).
function_source_zip = "build/keyferry-gcp-function.zip"
go_runtime          = "go126"

# The same keyferry.yaml the other clouds' functions get (KEYFERRY_CONFIG_YAML); the topic of the
# gcp-secretmanager store is this configuration's notification_topic output.
keyferry_config_yaml = <<-EOT
  stores:
    aws:
      type: aws-secretsmanager
      region: eu-west-1
    azure:
      type: azure-keyvault
      vault: https://kf-prod-secrets.vault.azure.net
    gcp:
      type: gcp-secretmanager
      project: kf-prod-123456
      topics:
        - projects/kf-prod-123456/topics/keyferry-prod-secret-events
  replicate:
    - name: prod-dr
      from: {store: aws, match: ["prod/**"], tags: {replicate: "true"}}
      to:
        - store: azure
          name: "{{ .Dir | replace \"/\" \"-\" }}-{{ .Base }}"
        - gcp
      on_conflict: alert
EOT

# IAM is granted on these secrets only. Replicas keyferry writes must be listed (create = true makes them
# here, with the notification topic); keyferry cannot create other secrets.
secrets = {
  "prod-db-password" = { access = "write", create = true, labels = { team = "payments" } }
  "prod-api-key" = {
    access                = "write"
    create                = true
    replication_locations = ["europe-west1", "europe-west4"]
  }
  "team-shared-token" = { access = "read" } # exists already, owned by another team
}

allow_secret_listing = true
notify_pubsub_topics = []

sweep_schedule      = "*/15 * * * *"
deep_sweep_schedule = "30 3 * * *"

# Rotation and certificates (this example's keyferry.yaml has neither).
rotation_siblings     = false
renew_certificates    = false
renew_schedule        = "41 */6 * * *"
certificate_manager   = false
ca_signing_crypto_key = ""

# AWS → GCP (infra/cdk outputs).
aws_account_id       = "111122223333"
aws_lambda_role_name = "keyferry-prod-lambda"

# Azure → GCP (infra/bicep outputs: main.bicep functionPrincipalId and tenantId, entra.bicep tokenAudience).
azure_tenant_id           = "00000000-0000-0000-0000-000000000000"
azure_token_version       = 1
azure_audience            = "api://00000000-0000-0000-0000-000000000000/keyferry-prod"
azure_principal_object_id = "22222222-2222-2222-2222-222222222222"
