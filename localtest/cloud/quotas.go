package cloud

import "github.com/keyferry/keyferry/localtest/fault"

// Quotas are the published request quotas of each store, as fault rules (shared buckets where one quota
// covers several APIs), at scale 1; the layers multiply the rates by Options.Scale. Sources: the limits in
// docs/architecture.md (Secrets Manager reference_limits, Key Vault service limits, Secret Manager
// quotas). Vault has no quota unless an operator configures one.
func Quotas() map[string][]fault.Rule {
	shared := func(bucket string, rate float64, apis ...string) []fault.Rule {
		var rs []fault.Rule
		for _, a := range apis {
			rs = append(rs, fault.Rule{API: a, Rate: rate, Burst: int(rate), Bucket: bucket})
		}
		return rs
	}
	var aws []fault.Rule
	aws = append(aws, shared("sm-value-writes", 50, "secretsmanager:PutSecretValue", "secretsmanager:UpdateSecret",
		"secretsmanager:UpdateSecretVersionStage")...)
	aws = append(aws, shared("sm-tags", 50, "secretsmanager:TagResource", "secretsmanager:UntagResource")...)
	aws = append(aws, fault.Rule{API: "secretsmanager:CreateSecret", Rate: 50, Burst: 50},
		fault.Rule{API: "secretsmanager:DeleteSecret", Rate: 50, Burst: 50},
		fault.Rule{API: "secretsmanager:ListSecrets", Rate: 100, Burst: 100})
	aws = append(aws, shared("sm-reads", 10000, "secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret")...)

	// Key Vault: 300 secret creates per 10 s (SetSecret of a new name; the layer cannot tell a new name
	// from a new version, so every SetSecret counts — stricter than the service) and 4,000 other
	// transactions per 10 s, per vault.
	azure := []fault.Rule{{API: "keyvault:SetSecret", Rate: 30, Burst: 300}}
	azure = append(azure, shared("kv-all", 400, "keyvault:*")...)
	azure[len(azure)-1].Burst = 4000

	// Secret Manager, per project per minute: 600 writes, 600 reads (get metadata, list), 90,000 access.
	gcp := shared("sm-write", 10, "secretmanager:CreateSecret", "secretmanager:UpdateSecret", "secretmanager:DeleteSecret",
		"secretmanager:AddSecretVersion", "secretmanager:EnableSecretVersion", "secretmanager:DisableSecretVersion",
		"secretmanager:DestroySecretVersion")
	gcp = append(gcp, shared("sm-read", 10, "secretmanager:GetSecret", "secretmanager:ListSecrets",
		"secretmanager:GetSecretVersion", "secretmanager:ListSecretVersions")...)
	gcp = append(gcp, fault.Rule{API: "secretmanager:AccessSecretVersion", Rate: 1500, Burst: 1500})
	return map[string][]fault.Rule{AWS: aws, Azure: azure, GCP: gcp}
}

// EnforceQuotas sets Quotas on the running parts' fault layers (replacing their rules).
func (c *Cloud) EnforceQuotas() {
	q := Quotas()
	if c.AWSFault != nil {
		c.AWSFault.SetRules(q[AWS]...)
	}
	if c.AzureFault != nil {
		c.AzureFault.SetRules(q[Azure]...)
	}
	if c.GCPFault != nil {
		c.GCPFault.SetRules(q[GCP]...)
	}
}
