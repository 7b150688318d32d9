package opslist

import (
	"fmt"
	"sort"
	"strings"
)

// The permission each operation needs, per cloud. Sources:
//
//   - AWS: IAM action names equal the API operation names (Service Authorization Reference, "Actions defined
//     by <service>"); the prefix is the service's (eventbridge → events). The reference also lists
//     acm:AddTagsToCertificate for ImportCertificate (the import carries tags).
//   - Azure Key Vault: the data actions of Microsoft.KeyVault (Azure resource provider operations; the
//     built-in Key Vault roles' definitions). Event Grid publishing: Microsoft.EventGrid/events/send/action
//     (EventGrid Data Sender's only data action).
//   - Google Cloud: the permission each method's reference page names ("Authorization requires the following
//     IAM permission"); long-running operations are polled with <service>.operations.get.
//
// An operation missing here makes Permissions fail: map it (and grant it) when the code starts to call it.

var awsPrefixes = map[string]string{
	"secretsmanager": "secretsmanager",
	"ssm":            "ssm",
	"acm":            "acm",
	"kms":            "kms",
	"sns":            "sns",
	"eventbridge":    "events",
	"sts":            "sts",
}

// awsNoPermission are AWS operations that need no IAM permission of the caller.
var awsNoPermission = map[string]string{
	"sts.AssumeRoleWithWebIdentity": "unsigned; the role's trust policy decides",
	"sts.GetCallerIdentity":         "every identity may call it",
}

// awsAlsoNeeds are actions an operation needs besides its own.
var awsAlsoNeeds = map[string][]string{
	"acm:ImportCertificate": {"acm:AddTagsToCertificate"}, // tags given on import
}

const kv = "Microsoft.KeyVault/vaults/"

var azureDataActions = map[string]string{
	"azsecrets.GetSecret":                    kv + "secrets/getSecret/action",
	"azsecrets.SetSecret":                    kv + "secrets/setSecret/action",
	"azsecrets.UpdateSecretProperties":       kv + "secrets/update/action",
	"azsecrets.DeleteSecret":                 kv + "secrets/delete",
	"azsecrets.GetDeletedSecret":             kv + "secrets/readMetadata/action",
	"azsecrets.ListDeletedSecretProperties":  kv + "secrets/readMetadata/action",
	"azsecrets.PurgeDeletedSecret":           kv + "secrets/purge/action",
	"azsecrets.RecoverDeletedSecret":         kv + "secrets/recover/action",
	"azsecrets.ListSecretProperties":         kv + "secrets/readMetadata/action",
	"azsecrets.ListSecretPropertiesVersions": kv + "secrets/readMetadata/action",
	"azsecrets.BackupSecret":                 kv + "secrets/backup/action",
	"azsecrets.RestoreSecret":                kv + "secrets/restore/action",

	"azcertificates.GetCertificate":                    kv + "certificates/read",
	"azcertificates.ListCertificateProperties":         kv + "certificates/read",
	"azcertificates.ListCertificatePropertiesVersions": kv + "certificates/read",
	"azcertificates.ImportCertificate":                 kv + "certificates/import/action",
	"azcertificates.UpdateCertificate":                 kv + "certificates/update/action",
	"azcertificates.CreateCertificate":                 kv + "certificates/create/action",
	"azcertificates.DeleteCertificate":                 kv + "certificates/delete",

	"azkeys.GetKey":            kv + "keys/read",
	"azkeys.ListKeyProperties": kv + "keys/read",
	"azkeys.Sign":              kv + "keys/sign/action",
	"azkeys.Verify":            kv + "keys/verify/action",

	AzureTokenService + ".https://eventgrid.azure.net/.default": "Microsoft.EventGrid/events/send/action",
}

// azureNoPermission are token scopes that grant nothing by themselves (federation audiences).
var azureNoPermission = map[string]string{
	AzureTokenService + ".api://AzureADTokenExchange": "a federation audience, not a data-plane call",
}

var gcpPermissions = map[string]string{
	"secretmanager/apiv1/secretmanagerpb.AccessSecretVersion":  "secretmanager.versions.access",
	"secretmanager/apiv1/secretmanagerpb.AddSecretVersion":     "secretmanager.versions.add",
	"secretmanager/apiv1/secretmanagerpb.CreateSecret":         "secretmanager.secrets.create",
	"secretmanager/apiv1/secretmanagerpb.DeleteSecret":         "secretmanager.secrets.delete",
	"secretmanager/apiv1/secretmanagerpb.GetSecret":            "secretmanager.secrets.get",
	"secretmanager/apiv1/secretmanagerpb.UpdateSecret":         "secretmanager.secrets.update",
	"secretmanager/apiv1/secretmanagerpb.ListSecrets":          "secretmanager.secrets.list",
	"secretmanager/apiv1/secretmanagerpb.ListSecretVersions":   "secretmanager.versions.list",
	"secretmanager/apiv1/secretmanagerpb.GetSecretVersion":     "secretmanager.versions.get",
	"secretmanager/apiv1/secretmanagerpb.DestroySecretVersion": "secretmanager.versions.destroy",
	"secretmanager/apiv1/secretmanagerpb.DisableSecretVersion": "secretmanager.versions.disable",
	"secretmanager/apiv1/secretmanagerpb.EnableSecretVersion":  "secretmanager.versions.enable",

	"certificatemanager/apiv1/certificatemanagerpb.CreateCertificate": "certificatemanager.certs.create",
	"certificatemanager/apiv1/certificatemanagerpb.GetCertificate":    "certificatemanager.certs.get",
	"certificatemanager/apiv1/certificatemanagerpb.UpdateCertificate": "certificatemanager.certs.update",
	"certificatemanager/apiv1/certificatemanagerpb.ListCertificates":  "certificatemanager.certs.list",
	"certificatemanager/apiv1/certificatemanagerpb.DeleteCertificate": "certificatemanager.certs.delete",
	"certificatemanager/apiv1.GetOperation":                           "certificatemanager.operations.get",

	"kms/apiv1/kmspb.AsymmetricSign":      "cloudkms.cryptoKeyVersions.useToSign",
	"kms/apiv1/kmspb.GetPublicKey":        "cloudkms.cryptoKeyVersions.viewPublicKey",
	"kms/apiv1/kmspb.GetCryptoKey":        "cloudkms.cryptoKeys.get",
	"kms/apiv1/kmspb.GetCryptoKeyVersion": "cloudkms.cryptoKeyVersions.get",

	"pubsub/v2.Publish": "pubsub.topics.publish",
}

// opKey is the key of an operation in the tables above.
func opKey(o Op) string {
	switch o.Cloud {
	case GCP:
		return strings.TrimPrefix(o.Service, googleCloud) + "." + o.Name
	case Azure:
		return path(o.Service) + "." + o.Name
	}
	return path(o.Service) + "." + o.Name
}

// Needs maps permissions to the operations (with their call sites) that need them.
type Needs map[string][]string

// Permissions returns the permissions the given operations of cloud c need. It fails for an operation
// without a known permission, naming it and where it is called.
func Permissions(c Cloud, ops []Op) (Needs, error) {
	needs := Needs{}
	var unknown []string
	add := func(perm string, o Op) {
		needs[perm] = append(needs[perm], o.String())
	}
	for _, o := range ops {
		if o.Cloud != c {
			continue
		}
		k := opKey(o)
		switch c {
		case AWS:
			if _, free := awsNoPermission[k]; free {
				continue
			}
			prefix, ok := awsPrefixes[path(o.Service)]
			if !ok {
				unknown = append(unknown, o.String())
				continue
			}
			action := prefix + ":" + o.Name
			add(action, o)
			for _, a := range awsAlsoNeeds[action] {
				add(a, o)
			}
		case Azure:
			if _, free := azureNoPermission[k]; free {
				continue
			}
			p, ok := azureDataActions[k]
			if !ok {
				unknown = append(unknown, o.String())
				continue
			}
			add(p, o)
		case GCP:
			p, ok := gcpPermissions[k]
			if !ok {
				unknown = append(unknown, o.String())
				continue
			}
			add(p, o)
		default:
			return nil, fmt.Errorf("opslist: no permissions are kept for %s", c)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("opslist: no %s permission is known for these operations; add them to infra/opslist/permissions.go (and grant them):\n  %s",
			c, strings.Join(unknown, "\n  "))
	}
	return needs, nil
}

// Role is a built-in role and the permissions it carries.
type Role struct {
	Name        string
	Permissions []string // Azure: data actions, expanded; GCP: permissions
}

// AzureRoles are the built-in Azure roles keyferry's templates assign to the functions' identities, by role
// definition id, with their data actions (wildcards expanded). Source: the role definitions
// (az role definition list --name <id>; Azure built-in roles reference).
var AzureRoles = map[string]Role{
	"b86a8fe4-44ce-4948-aee5-eccb2c155cd7": {Name: "Key Vault Secrets Officer", Permissions: expand(kv+"secrets/",
		"delete", "backup/action", "purge/action", "update/action", "recover/action", "restore/action",
		"readMetadata/action", "getSecret/action", "setSecret/action")},
	"4633458b-17de-408a-b874-0445c86b69e6": {Name: "Key Vault Secrets User", Permissions: expand(kv+"secrets/",
		"getSecret/action", "readMetadata/action")},
	"a4417e6f-fecd-4de8-b567-7b0420556985": {Name: "Key Vault Certificates Officer", Permissions: append(append(
		expand(kv+"certificates/", "read", "delete", "backup/action", "purge/action", "update/action", "create/action",
			"import/action", "recover/action", "restore/action"),
		expand(kv+"certificatecas/", "read", "write", "delete")...), kv+"certificatecontacts/write")},
	"12338af0-0e69-4776-bea7-57ae8d297424": {Name: "Key Vault Crypto User", Permissions: expand(kv+"keys/",
		"read", "update/action", "backup/action", "encrypt/action", "decrypt/action", "wrap/action", "unwrap/action",
		"sign/action", "verify/action")},
	"d5a91429-5739-47e2-a06b-3470a27159e7": {Name: "EventGrid Data Sender", Permissions: []string{"Microsoft.EventGrid/events/send/action"}},
	"1d8c3fe3-8864-474b-8749-01e3783e8157": {Name: "EventGrid Data Contributor", Permissions: []string{"Microsoft.EventGrid/events/send/action", "Microsoft.EventGrid/events/receive/action"}},
}

// GCPRoles are the predefined GCP roles keyferry's Terraform grants the function's service account, with
// their permissions (gcloud iam roles describe <role>; IAM predefined roles reference).
var GCPRoles = map[string]Role{
	"roles/pubsub.publisher": {Name: "Pub/Sub Publisher", Permissions: []string{"pubsub.topics.publish"}},
}

func expand(prefix string, suffixes ...string) []string {
	out := make([]string, len(suffixes))
	for i, s := range suffixes {
		out[i] = prefix + s
	}
	return out
}

// Extra is a permission granted on purpose although no SDK operation of keyferry's needs it.
type Extra struct {
	Permission string
	Why        string
}

// Diff is what Compare found.
type Diff struct {
	Missing []string // needed, not granted: "<permission>: needed by <operation> (<sites>)"
	Unused  []string // granted, neither needed nor a deliberate extra: "<permission>: granted by <where>"
	Stale   []string // deliberate extras nothing grants any more
}

// OK reports whether grants and needs agree.
func (d Diff) OK() bool { return len(d.Missing)+len(d.Unused)+len(d.Stale) == 0 }

func (d Diff) String() string {
	var b strings.Builder
	for _, m := range d.Missing {
		fmt.Fprintf(&b, "used but not granted: %s\n", m)
	}
	for _, u := range d.Unused {
		fmt.Fprintf(&b, "granted but unused: %s\n", u)
	}
	for _, s := range d.Stale {
		fmt.Fprintf(&b, "deliberate extra that nothing grants (remove it from the list): %s\n", s)
	}
	return b.String()
}

// Compare checks grants against needs: every needed permission granted, every granted permission needed or
// a deliberate extra, every deliberate extra still granted. granted maps a permission to where it is
// granted (statement ids, role assignments).
func Compare(needs Needs, granted map[string][]string, extras []Extra) Diff {
	var d Diff
	isExtra := map[string]bool{}
	for _, e := range extras {
		isExtra[e.Permission] = true
		if _, ok := granted[e.Permission]; !ok {
			d.Stale = append(d.Stale, e.Permission+" ("+e.Why+")")
		}
	}
	for p, ops := range needs {
		if _, ok := granted[p]; !ok {
			d.Missing = append(d.Missing, fmt.Sprintf("%s: needed by %s", p, strings.Join(ops, "; ")))
		}
	}
	for p, where := range granted {
		if _, ok := needs[p]; !ok && !isExtra[p] {
			d.Unused = append(d.Unused, fmt.Sprintf("%s: granted by %s", p, strings.Join(uniq(where), ", ")))
		}
	}
	sort.Strings(d.Missing)
	sort.Strings(d.Unused)
	sort.Strings(d.Stale)
	return d
}

func uniq(l []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range l {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}
