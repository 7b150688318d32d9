package certmgr_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	certificatemanager "cloud.google.com/go/certificatemanager/apiv1"
	"cloud.google.com/go/certificatemanager/apiv1/certificatemanagerpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/keyferry/keyferry/core/audit"
	"github.com/keyferry/keyferry/core/certmgr"
	"github.com/keyferry/keyferry/core/certs"
	"github.com/keyferry/keyferry/core/inventory"
	"github.com/keyferry/keyferry/core/pki"
	"github.com/keyferry/keyferry/core/store"
	"github.com/keyferry/keyferry/localtest/gcpcert"
)

// TestIssueRenewAndInventory runs the feature end to end on a file store and the Certificate Manager
// emulator (reached through the configuration's local endpoint, the default client path): first renewal
// issues what is missing, a second run finds nothing due, a run inside one spec's renewal window re-issues
// that spec only (one issuance for both its targets, the Certificate Manager certificate updated in place),
// and the inventory lists every certificate as keyferry's, trusted by the builtin root.
func TestIssueRenewAndInventory(t *testing.T) {
	ctx := tctx(t)
	dir := t.TempDir()
	ca := newCA(t, dir)
	cm, err := gcpcert.Start(gcpcert.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cm.Stop)
	cfg, sts := loadConfig(t, dir, fmt.Sprintf(`stores:
  local: {type: file, path: secrets}
certificates:
%s  specs:
    - name: api
      common_name: api.svc.example.com
      dns: [api.svc.example.com]
      uris: [spiffe://prod.example/ns/app/sa/api]
      ttl: 72h
      renew_before: 24h
      ext_key_usage: [server-auth, client-auth]
      tags: {team: payments}
      targets:
        - {store: local, name: certs/api}
        - {certificate_manager: {project: kf-test, local: true, endpoint: "http://%s", name: api-lb}}
    - name: web
      dns: web.svc.example.com
      ttl: 168h
      targets: [local]
`, ca.issuerYAML(), cm.Addr()))
	now := &clock{t: time.Now()}
	mem := &audit.Memory{}
	al := &alerts{}
	logger, logs := logBuffer()
	m, err := certmgr.New(cfg, sts, certmgr.Options{Logger: logger, Audit: mem, Notifier: al, Now: now.Now, Backoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })

	// 1. Nothing anywhere: every target is missing its certificate.
	res, err := m.Renew(ctx)
	if err != nil {
		t.Fatalf("first renewal: %v", err)
	}
	if len(res) != 2 || !res[0].Issued || !res[1].Issued || res[0].Count(certmgr.ActWritten) != 2 || res[1].Count(certmgr.ActWritten) != 1 {
		t.Fatalf("first renewal: %+v", res)
	}
	if r := res[0].Targets[0]; r.Target != "local" || r.ID != "certs/api" || r.Reason != certs.ReasonMissing || !r.NotAfter.Equal(res[0].NotAfter) {
		t.Fatalf("file target result %+v", r)
	}
	if r := res[0].Targets[1]; r.Target != "certificate-manager:kf-test/global" || r.ID != "projects/kf-test/locations/global/certificates/api-lb" {
		t.Fatalf("certificate manager target result %+v", r)
	}
	doc, md, leaf := bundleIn(t, sts["local"], "certs/api")
	if md.Tags[certs.SecretMarkKey] != "api" || md.Tags["team"] != "payments" || pki.FormatSerial(leaf.SerialNumber) != res[0].Serial ||
		leaf.Subject.CommonName != "api.svc.example.com" || len(leaf.URIs) != 1 || leaf.NotAfter.Sub(leaf.NotBefore) != 72*time.Hour+time.Minute {
		t.Fatalf("the file store's bundle: tags %v, leaf %v", md.Tags, leaf.Subject)
	}
	if _, err := leaf.Verify(x509VerifyOptions(ca, doc.Chain)); err != nil {
		t.Fatalf("the issued leaf does not verify to the root: %v", err)
	}
	cmc, err := certificatemanager.NewClient(ctx, cm.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cmc.Close()
	got, err := cmc.GetCertificate(ctx, &certificatemanagerpb.GetCertificateRequest{Name: "projects/kf-test/locations/global/certificates/api-lb"})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetLabels()[certs.TagKey] != "api" || got.GetLabels()["team"] != "payments" || !strings.Contains(got.GetPemCertificate(), strings.TrimSpace(doc.Certificate)) {
		t.Fatalf("the Certificate Manager certificate: labels %v", got.GetLabels())
	}
	if tc, err := cm.TLSCertificate(got.GetName()); err != nil || len(tc.Certificate) != 3 {
		t.Fatalf("served chain: %v (%d certificates)", err, len(tc.Certificate))
	}
	firstSerial := res[0].Serial
	creates := cm.Fault().Count("certificatemanager:CreateCertificate")

	// 2. Just issued: nothing is due, nothing is written.
	res, err = m.Renew(ctx)
	if err != nil || res[0].Issued || res[1].Issued || res[0].Count(certmgr.ActNotDue) != 2 || res[1].Count(certmgr.ActNotDue) != 1 {
		t.Fatalf("second renewal: %v %+v", err, res)
	}
	if !strings.Contains(res[0].Targets[0].Reason, "renewal due at") {
		t.Fatalf("not-due reason %q", res[0].Targets[0].Reason)
	}

	// 3. 49h later: api (renew 24h before its 72h) is inside its window; web (168h, at 2/3) is not.
	now.Set(time.Now().Add(49 * time.Hour))
	res, err = m.Renew(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Issued || res[0].Serial == firstSerial || res[0].Count(certmgr.ActWritten) != 2 || res[1].Issued || res[1].Count(certmgr.ActNotDue) != 1 {
		t.Fatalf("renewal inside api's window: %+v", res)
	}
	if !strings.Contains(res[0].Targets[0].Reason, "inside the renewal window") {
		t.Fatalf("renewal reason %q", res[0].Targets[0].Reason)
	}
	if _, _, leaf2 := bundleIn(t, sts["local"], "certs/api"); pki.FormatSerial(leaf2.SerialNumber) != res[0].Serial {
		t.Fatal("the file store does not hold the renewed certificate")
	}
	if n := cm.Fault().Count("certificatemanager:CreateCertificate"); n != creates || cm.Fault().Count("certificatemanager:UpdateCertificate") < 1 {
		t.Fatalf("the renewal created a certificate (%d creates) instead of updating in place", n-creates)
	}
	// Only the named spec.
	if res, err = m.Renew(ctx, "web"); err != nil || len(res) != 1 || res[0].Spec != "web" || res[0].Issued {
		t.Fatalf("renew web: %v %+v", err, res)
	}
	if _, err := m.Renew(ctx, "nope"); err == nil || !strings.Contains(err.Error(), `no certificate named "nope"`) {
		t.Fatalf("unknown spec: %v", err)
	}

	// Audit: one issue record per issuance, one write per target written.
	issues, writes := 0, 0
	for _, r := range mem.Records() {
		switch r.Action {
		case "issue":
			issues++
		case "write":
			writes++
		}
	}
	if issues != 3 || writes != 5 {
		t.Fatalf("audit: %d issue and %d write records, want 3 and 5", issues, writes)
	}

	// 4. Inventory: the three certificates (two in the file store, one in Certificate Manager), managed,
	// trusted by the builtin root, no alerts.
	now.Set(time.Now())
	entries, errs := m.Inventory(ctx)
	if len(errs) > 0 {
		t.Fatalf("inventory errors: %v", errs)
	}
	names := map[string]inventory.Entry{}
	for _, e := range entries {
		names[e.Cloud+" "+e.Name] = e
		if !e.Managed {
			t.Errorf("entry %s %s is not managed", e.Cloud, e.Name)
		}
		for _, f := range e.Findings {
			if f.Kind == inventory.KindUntrustedChain {
				t.Errorf("entry %s: %s", e.Name, f.Detail)
			}
		}
	}
	if _, ok := names["local certs/api"]; !ok || len(entries) != 3 {
		t.Fatalf("inventory entries %v", keys(names))
	}
	if _, ok := names["gcp api-lb"]; !ok {
		t.Fatalf("inventory entries %v", keys(names))
	}
	if k := al.kinds(); len(k) != 0 {
		t.Fatalf("alerts during healthy runs: %v", k)
	}
	// A week later everything has expired: one certificate.expired per certificate.
	now.Set(time.Now().Add(8 * 24 * time.Hour))
	if _, errs := m.Inventory(ctx); len(errs) > 0 {
		t.Fatal(errs)
	}
	if k := al.kinds(); len(k) != 3 || !strings.HasPrefix(k[0], certmgr.KindExpired) {
		t.Fatalf("alerts for expired certificates: %v", k)
	}
	noKeyMaterial(t, "the logs", logs.String(), doc.PrivateKey)
	noKeyMaterial(t, "the alerts", al.text(), doc.PrivateKey)
}

func keys(m map[string]inventory.Entry) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestRetriesAndFailures: a throttled write is retried until it passes; one that keeps failing is
// reported for its target only (the other target is written), raises certificate.renewal-failed, and
// makes the run's error transient. No error or alert carries key material.
func TestRetriesAndFailures(t *testing.T) {
	ctx := tctx(t)
	dir := t.TempDir()
	ca := newCA(t, dir)
	var failCreates atomic.Int64
	throttle := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if strings.HasSuffix(info.FullMethod, "/CreateCertificate") && failCreates.Add(-1) >= 0 {
			return nil, status.Error(codes.ResourceExhausted, "quota exceeded (test)")
		}
		return h(ctx, req)
	}
	cm, err := gcpcert.Start(gcpcert.Options{Interceptors: []grpc.UnaryServerInterceptor{throttle}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cm.Stop)
	cfg, sts := loadConfig(t, dir, fmt.Sprintf(`stores:
  local: {type: file, path: secrets}
certificates:
%s  specs:
    - name: api
      dns: api.svc.example.com
      targets:
        - local
        - {certificate_manager: {project: kf-test, local: true, endpoint: "http://%s"}}
`, ca.issuerYAML(), cm.Addr()))
	al := &alerts{}
	logger, logs := logBuffer()
	m, err := certmgr.New(cfg, sts, certmgr.Options{Logger: logger, Notifier: al, Backoff: 5 * time.Millisecond, Attempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })

	// Throttled twice, written on the third try.
	failCreates.Store(2)
	res, err := m.Issue(ctx, "api")
	if err != nil {
		t.Fatalf("issue through two throttles: %v", err)
	}
	if r := res.Targets[1]; r.Action != certmgr.ActWritten || r.Attempts != 3 {
		t.Fatalf("retried target: %+v", r)
	}

	// Failing for good: the file target is written, the other fails after 3 tries.
	if _, err := cmc(t, cm).DeleteCertificate(ctx, &certificatemanagerpb.DeleteCertificateRequest{Name: "projects/kf-test/locations/global/certificates/api"}); err != nil {
		t.Fatal(err)
	}
	failCreates.Store(1000)
	res2, err := m.Renew(ctx)
	if err == nil || !errors.Is(err, certmgr.ErrTransient) {
		t.Fatalf("a run with a failed target: %v", err)
	}
	r := res2[0]
	if !r.Issued || r.Targets[0].Action != certmgr.ActNotDue || r.Targets[1].Action != certmgr.ActFailed || r.Targets[1].Attempts != 3 ||
		!strings.Contains(r.Targets[1].Error, "ResourceExhausted") || r.Targets[1].Reason != certs.ReasonMissing {
		t.Fatalf("renewal with a failing target: %+v", r.Targets)
	}
	if k := al.kinds(); len(k) != 1 || k[0] != certmgr.KindRenewalFailed+" api certificate-manager:kf-test/global" {
		t.Fatalf("alerts %v", k)
	}
	doc, _, _ := bundleIn(t, sts["local"], "api")
	noKeyMaterial(t, "the error", err.Error(), doc.PrivateKey)
	noKeyMaterial(t, "the logs", logs.String(), doc.PrivateKey)
	noKeyMaterial(t, "the alerts", al.text(), doc.PrivateKey)
}

func cmc(t *testing.T, s *gcpcert.Server) *certificatemanager.Client {
	t.Helper()
	c, err := certificatemanager.NewClient(context.Background(), s.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestForeignObjectsDryRunAndSpecChanges: keyferry leaves alone what it did not write, a dry run writes
// nothing, and a certificate whose names no longer match its spec is re-issued though not yet due.
func TestForeignObjectsDryRunAndSpecChanges(t *testing.T) {
	ctx := tctx(t)
	dir := t.TempDir()
	ca := newCA(t, dir)
	y := func(dns string) string {
		return fmt.Sprintf("stores:\n  local: {type: file, path: secrets}\ncertificates:\n%s  specs:\n"+
			"    - {name: api, dns: [%s], targets: [local]}\n    - {name: other, dns: [o.svc.example.com], targets: [{store: local, name: foreign}]}\n", ca.issuerYAML(), dns)
	}
	cfg, sts := loadConfig(t, dir, y("api.svc.example.com"))
	if _, err := sts["local"].Put(ctx, "foreign", store.Text("someone else's"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	dry, err := certmgr.New(cfg, sts, certmgr.Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	res, err := dry.Renew(ctx)
	if err != nil || res[0].Issued || res[0].Targets[0].Action != certmgr.ActWouldWrite || res[1].Targets[0].Action != certmgr.ActNotManaged {
		t.Fatalf("dry run: %v %+v", err, res)
	}
	if _, err := sts["local"].Describe(ctx, "api"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the dry run wrote: %v", err)
	}

	m, err := certmgr.New(cfg, sts, certmgr.Options{Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	res, err = m.Renew(ctx)
	if err != nil || !res[0].Issued || res[1].Issued || res[1].Targets[0].Action != certmgr.ActNotManaged {
		t.Fatalf("renew beside a foreign secret: %v %+v", err, res)
	}
	// Issue on request refuses to overwrite the foreign secret.
	r, err := m.Issue(ctx, "other")
	if err == nil || r.Targets[0].Action != certmgr.ActRefused || !strings.Contains(r.Targets[0].Error, "refusing to overwrite") {
		t.Fatalf("issue over a foreign secret: %v %+v", err, r)
	}
	if sec, _ := sts["local"].Get(ctx, "foreign"); string(sec.Value.Bytes()) != "someone else's" {
		t.Fatal("the foreign secret was overwritten")
	}

	// The spec gains a name: the certificate is re-issued at once.
	cfg2, _ := loadConfig(t, dir, y("api.svc.example.com, www.svc.example.com"))
	m2, err := certmgr.New(cfg2, sts, certmgr.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err = m2.Renew(ctx, "api")
	if err != nil || !res[0].Issued || !strings.Contains(res[0].Targets[0].Reason, "dns changed") {
		t.Fatalf("renew after a spec change: %v %+v", err, res)
	}
	if _, _, leaf := bundleIn(t, sts["local"], "api"); len(leaf.DNSNames) != 2 {
		t.Fatalf("re-issued names %v", leaf.DNSNames)
	}
}

// TestIssuerProblems: an issuer that cannot be built (a key file others can read) fails every target with
// a clear error and one renewal-failed alert, and never quotes the key.
func TestIssuerProblems(t *testing.T) {
	ctx := tctx(t)
	dir := t.TempDir()
	ca := newCA(t, dir)
	cfg, sts := loadConfig(t, dir, fmt.Sprintf("stores:\n  local: {type: file, path: secrets}\ncertificates:\n%s  specs:\n    - {name: api, dns: [api.svc.example.com], targets: [local]}\n", ca.issuerYAML()))
	if err := chmod(ca.keyFn, 0o644); err != nil {
		t.Fatal(err)
	}
	al := &alerts{}
	m, err := certmgr.New(cfg, sts, certmgr.Options{Notifier: al})
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Renew(ctx)
	if err == nil || !strings.Contains(err.Error(), "chmod 600") || res[0].Targets[0].Action != certmgr.ActFailed {
		t.Fatalf("renew with an unsafe key file: %v %+v", err, res)
	}
	if k := al.kinds(); len(k) != 1 || !strings.HasPrefix(k[0], certmgr.KindRenewalFailed+" api") {
		t.Fatalf("alerts %v", k)
	}
	key, _ := readFile(ca.keyFn)
	noKeyMaterial(t, "the error", err.Error(), key)
	if _, err := certmgr.New(cfg, nil, certmgr.Options{}); err == nil || !strings.Contains(err.Error(), "not open") {
		t.Fatalf("New without the stores: %v", err)
	}
}
