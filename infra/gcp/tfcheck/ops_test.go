package tfcheck

import (
	"context"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/keyferry/keyferry/infra/opslist"
)

// functionMember is how main.tf names the function's service account in a grant. The AWS and Azure functions
// impersonate it, so its grants are every keyferry function's in GCP.
const functionMember = "google_service_account.function.member"

var (
	gcpOnce  sync.Once
	gcpNeeds opslist.Needs
	gcpErr   error
)

// neededPermissions are the permissions the GCP operations of the functions' code need (infra/opslist scans
// keyferry's module, three directories up).
func neededPermissions(t *testing.T) opslist.Needs {
	t.Helper()
	gcpOnce.Do(func() {
		res, err := opslist.Scan(context.Background(), filepath.Join("..", "..", ".."))
		if err != nil {
			gcpErr = err
			return
		}
		gcpNeeds, gcpErr = opslist.Permissions(opslist.GCP, res.Ops)
	})
	if gcpErr != nil {
		t.Fatal(gcpErr)
	}
	return gcpNeeds
}

// withOverrides applies Terraform override files: a block of an override replaces the arguments it sets in
// the block of the same type and labels; a block without a match is added.
func withOverrides(base, overrides []*block) []*block {
	byKey := map[string]*block{}
	key := func(b *block) string { return b.typ + "\x00" + strings.Join(b.labels, "\x00") }
	out := make([]*block, 0, len(base))
	for _, b := range base {
		c := *b
		c.attrs = map[string][]token{}
		for k, v := range b.attrs {
			c.attrs[k] = v
		}
		byKey[key(&c)] = &c
		out = append(out, &c)
	}
	for _, o := range overrides {
		if b, ok := byKey[key(o)]; ok {
			for k, v := range o.attrs {
				b.attrs[k] = v
			}
			b.file, b.line = o.file, o.line
			continue
		}
		out = append(out, o)
	}
	return out
}

// grantedPermissions are the permissions the configuration can grant the function's service account — every
// IAM member whatever its count or condition — with the grants that carry them.
func grantedPermissions(t *testing.T, bs []*block) map[string][]string {
	t.Helper()
	customPerms := map[string][]string{}
	for _, b := range bs {
		if b.typ == "resource" && len(b.labels) == 2 && strings.HasSuffix(b.labels[0], "_iam_custom_role") {
			customPerms[b.labels[1]] = stringList(b.attrs["permissions"])
		}
	}
	out := map[string][]string{}
	for _, b := range bs {
		if b.typ != "resource" || len(b.labels) != 2 || !resourceIAM.MatchString(b.labels[0]) {
			continue
		}
		if !strings.Contains(text(b.attrs["member"])+text(b.attrs["members"]), functionMember) {
			continue
		}
		where := filepath.Base(b.file) + ":" + b.labels[0] + "." + b.labels[1]
		literals, custom := roleCandidates(b.attrs["role"])
		for _, r := range literals {
			if !strings.HasPrefix(r, "roles/") {
				continue // another string of the expression, such as the "write" a conditional compares
			}
			role, ok := opslist.GCPRoles[r]
			if !ok {
				t.Errorf("%s grants %s, which is not in opslist.GCPRoles: add it with its permissions", where, r)
				continue
			}
			for _, p := range role.Permissions {
				out[p] = append(out[p], where+" ("+r+")")
			}
		}
		for _, c := range custom {
			perms, ok := customPerms[c]
			if !ok {
				t.Errorf("%s grants custom role %s, which this configuration does not define", where, c)
			}
			for _, p := range perms {
				out[p] = append(out[p], where+" (custom "+c+")")
			}
		}
	}
	return out
}

// TestGrantsMatchTheCode is the least-privilege check against the code: the IAM the Terraform can give the
// function's service account (the per-secret reader and writer roles, secret listing, rotation's pending
// siblings, Certificate Manager, the CA's Cloud KMS key, Pub/Sub alert topics) carries exactly the
// permissions the GCP operations of keyferry's code need.
func TestGrantsMatchTheCode(t *testing.T) {
	needs := neededPermissions(t)
	granted := grantedPermissions(t, load(t, configFiles(t)))
	d := opslist.Compare(needs, granted, nil)
	if !d.OK() {
		t.Errorf("grants and code disagree:\n%s", d)
	}
	names := make([]string, 0, len(needs))
	for p := range needs {
		names = append(names, p)
	}
	sort.Strings(names)
	t.Logf("%d permissions needed, %d granted: %s", len(needs), len(granted), strings.Join(names, " "))
}

// TestGrantsCheckCatchesDrift shows the check failing on main.tf with testdata/ops-drift_override.tf applied
// (Terraform's override-file merge): the certificate writer role loses certificatemanager.operations.get (the
// wait for a certificate's create or update), and a new grant gives secretmanager.versions.destroy, which no
// code of keyferry's calls.
func TestGrantsCheckCatchesDrift(t *testing.T) {
	needs := neededPermissions(t)
	bs := withOverrides(load(t, configFiles(t)), load(t, []string{filepath.Join("testdata", "ops-drift_override.tf")}))
	d := opslist.Compare(needs, grantedPermissions(t, bs), nil)
	t.Logf("reported:\n%s", d)
	if len(d.Missing) != 1 || !strings.HasPrefix(d.Missing[0], "certificatemanager.operations.get: needed by apiv1 GetOperation (core/certs/certmanager.go:") {
		t.Errorf("missing %q, want exactly certificatemanager.operations.get", d.Missing)
	}
	if len(d.Unused) != 1 || !strings.HasPrefix(d.Unused[0], "secretmanager.versions.destroy: granted by ops-drift_override.tf:") {
		t.Errorf("unused %q, want exactly secretmanager.versions.destroy", d.Unused)
	}
}
