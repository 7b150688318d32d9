package dispatch

import (
	"slices"
	"testing"

	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/event"
)

func TestResolve(t *testing.T) {
	cfg, err := config.Parse("keyferry.yaml", []byte(`
stores:
  aws-eu: {type: aws-secretsmanager, region: eu-west-1}
  aws-us: {type: aws-secretsmanager, region: us-east-1}
  params: {type: aws-ssm, region: eu-west-1}
  azure: {type: azure-keyvault, vault: https://kf-prod.vault.azure.net}
  azure-local: {type: azure-keyvault, vault: "https://127.0.0.1:8443", local: true}
  gcp: {type: gcp-secretmanager, project: kf-prod}
  files: {type: file, path: /tmp/x}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		ch   event.Change
		want []string
	}{
		{"aws region", event.Change{Service: event.ServiceSecretsManager, Region: "us-east-1"}, []string{"aws-us"}},
		{"aws other region", event.Change{Service: event.ServiceSecretsManager, Region: "ap-south-1"}, nil},
		{"ssm", event.Change{Service: event.ServiceSSM, Region: "eu-west-1"}, []string{"params"}},
		{"azure by name, any case", event.Change{Service: event.ServiceKeyVault, Vault: "KF-Prod"}, []string{"azure", "azure-local"}},
		{"azure other vault: only the local one", event.Change{Service: event.ServiceKeyVault, Vault: "other"}, []string{"azure-local"}},
		{"gcp by id", event.Change{Service: event.ServiceSecretManager, Project: "kf-prod"}, []string{"gcp"}},
		{"gcp by number, one store", event.Change{Service: event.ServiceSecretManager, Project: "123456789"}, []string{"gcp"}},
		{"gcp other project", event.Change{Service: event.ServiceSecretManager, Project: "kf-dev"}, nil},
		{"unknown service", event.Change{Service: "s3"}, nil},
	} {
		if got := Resolve(cfg, c.ch); !slices.Equal(got, c.want) {
			t.Errorf("%s: Resolve = %v, want %v", c.name, got, c.want)
		}
	}
}
