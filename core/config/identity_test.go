package config

import (
	"strings"
	"testing"
)

func TestIdentity(t *testing.T) {
	cfg, err := Parse("keyferry.yaml", []byte(doc(`
stores:
  aws:
    type: aws-secretsmanager
    region: eu-west-1
    identity:
      role_arn: arn:aws:iam::123456789012:role/keyferry-peer
      audience: api://keyferry-aws
      gcp: {audience: sts.amazonaws.com}
  azure:
    type: azure-keyvault
    vault: https://kf-prod.vault.azure.net
    identity: {tenant_id: 11111111-2222-3333-4444-555555555555, client_id: 66666666-7777-8888-9999-000000000000}
  gcp:
    type: gcp-secretmanager
    project: kf-prod
    identity:
      aws: {audience: //iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/keyferry/providers/from-aws}
      azure: {audience: //iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/keyferry/providers/from-azure, service_account: keyferry@kf-prod.iam.gserviceaccount.com}
  vault:
    type: vault-kv
    address: https://vault.example.com:8200
    identity: {role: keyferry, audience: vault}
`)))
	if err != nil {
		t.Fatal(err)
	}
	aws := cfg.Store("aws").Identity
	if s := aws.For("azure"); s.RoleARN != "arn:aws:iam::123456789012:role/keyferry-peer" || s.Audience != "api://keyferry-aws" {
		t.Errorf("aws from azure: %+v", s)
	}
	if s := aws.For("gcp"); s.Audience != "sts.amazonaws.com" || s.RoleARN == "" {
		t.Errorf("aws from gcp: %+v", s)
	}
	if s := cfg.Store("gcp").Identity.For("azure"); s.ServiceAccount == "" || !strings.HasSuffix(s.Audience, "from-azure") {
		t.Errorf("gcp from azure: %+v", s)
	}
	if s := cfg.Store("vault").Identity.For("gcp"); s.Role != "keyferry" {
		t.Errorf("vault from gcp: %+v", s)
	}
}

func TestIdentityErrors(t *testing.T) {
	for _, c := range []struct {
		name, input string
		wants       []want
	}{
		{"bad-role", "stores:\n  a: {type: aws-secretsmanager, region: eu-west-1, identity: {role_arn: admin}}\n",
			[]want{w("2:63", "stores.a.identity.role_arn", `"admin" is not an IAM role ARN`)}},
		{"no-role", "stores:\n  a: {type: aws-secretsmanager, region: eu-west-1, identity: {audience: x}}\n",
			[]want{w("2:52", "stores.a.identity", "role_arn is required")}},
		{"file", "stores:\n  a: {type: file, path: /x, identity: {role: r}}\n",
			[]want{w("2:29", "stores.a.identity", "not of file stores")}},
		{"wrong-key", "stores:\n  a: {type: vault-kv, address: https://v.example.com, identity: {role: r, role_arn: x}}\n",
			[]want{w("2:75", "stores.a.identity.role_arn", `unknown key "role_arn"`)}},
		{"bad-wif", "stores:\n  a: {type: gcp-secretmanager, project: kf-prod, identity: {audience: sts.amazonaws.com}}\n",
			[]want{w("2:61", "stores.a.identity.audience", "is not a Workload Identity provider")}},
		{"client-secret", "stores:\n  a: {type: azure-keyvault, vault: https://kf-prod.vault.azure.net, identity: {tenant_id: 11111111-2222-3333-4444-555555555555, client_id: 66666666-7777-8888-9999-000000000000, client_secret: hunter2}}\n",
			[]want{w("2:178", "stores.a.identity.client_secret", "static credentials are not allowed", "federated credential")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("keyferry.yaml", []byte(c.input))
			checkErrors(t, c.input, err, c.wants)
		})
	}
}
