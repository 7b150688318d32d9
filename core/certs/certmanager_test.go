package certs

import (
	"crypto"
	"strings"
	"testing"
	"time"

	certificatemanager "cloud.google.com/go/certificatemanager/apiv1"
	"cloud.google.com/go/certificatemanager/apiv1/certificatemanagerpb"

	"github.com/keyferry/keyferry/localtest/gcpcert"
)

const cmParent = "projects/kf-test/locations/global"

func newCM(t *testing.T) (*gcpcert.Server, *certificatemanager.Client) {
	t.Helper()
	srv, err := gcpcert.Start(gcpcert.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	c, err := certificatemanager.NewClient(tctx(t), srv.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return srv, c
}

func TestCertManagerTarget(t *testing.T) {
	srv, c := newCM(t)
	tgt, err := NewCertManagerTarget("gcp-lb", c, cmParent)
	if err != nil {
		t.Fatal(err)
	}
	r := runSuite(t, tgt, "lb-tls", func() int64 { return srv.Fault().Count("*") })
	name := cmParent + "/certificates/lb-tls"
	if r.first.ID != name || r.renewed.ID != name || r.first.Version == r.renewed.Version {
		t.Fatalf("metas %+v then %+v", r.first, r.renewed)
	}
	if n := srv.Fault().Count("certificatemanager:CreateCertificate"); n != 1 {
		t.Fatalf("%d creates: renewals must update in place", n)
	}
	if srv.Fault().Count("certificatemanager:UpdateCertificate") < 2 {
		t.Fatal("renewals did not go through UpdateCertificate")
	}
	got, err := c.GetCertificate(tctx(t), &certificatemanagerpb.GetCertificateRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetLabels()[TagKey] != "lb-tls" || got.GetLabels()["env"] != "test" || strings.Count(got.GetPemCertificate(), "BEGIN CERTIFICATE") != 3 ||
		strings.Contains(got.GetPemCertificate(), "PRIVATE KEY") {
		t.Fatalf("stored certificate: labels %v", got.GetLabels())
	}
	// What a load balancer would serve: the current leaf, its own key, the chain.
	tc, err := srv.TLSCertificate(name)
	if err != nil {
		t.Fatal(err)
	}
	cur, meta, err := tgt.Current(tctx(t), "lb-tls")
	if err != nil {
		t.Fatal(err)
	}
	if !tc.Leaf.Equal(cur) || len(tc.Certificate) != 3 || !got.GetExpireTime().AsTime().Equal(meta.NotAfter) {
		t.Fatal("the served chain is not the current bundle")
	}
	if signer, ok := tc.PrivateKey.(crypto.Signer); !ok || !cur.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(signer.Public()) {
		t.Fatal("the served key is not the current leaf's")
	}
}

func TestCertManagerForeign(t *testing.T) {
	srv, c := newCM(t)
	kf, other := cas(t)
	ob := other.issue(t, 24*time.Hour, "legacy.example.com")
	p, err := Check(ob, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	op, err := c.CreateCertificate(tctx(t), &certificatemanagerpb.CreateCertificateRequest{Parent: cmParent, CertificateId: "legacy",
		Certificate: &certificatemanagerpb.Certificate{Labels: map[string]string{"owner": "ops"}, Type: &certificatemanagerpb.Certificate_SelfManaged{
			SelfManaged: &certificatemanagerpb.Certificate_SelfManagedCertificate{PemCertificate: string(p.FullChainPEM()), PemPrivateKey: string(p.KeyPEM)}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.Wait(tctx(t)); err != nil {
		t.Fatal(err)
	}
	tgt, err := NewCertManagerTarget("gcp", c, cmParent)
	if err != nil {
		t.Fatal(err)
	}
	cert, meta, err := tgt.Current(tctx(t), "legacy")
	if err != nil || meta.Managed || !cert.Equal(p.Leaf) {
		t.Fatalf("Current of a foreign certificate: %+v %v", meta, err)
	}
	if due, why, err := NeedsRenewal(tctx(t), tgt, "legacy", 0, time.Now()); err != nil || due || why != ReasonNotManaged {
		t.Fatalf("NeedsRenewal: %v %q %v", due, why, err)
	}
	e := &errs{}
	_, err = tgt.Put(tctx(t), "legacy", kf.issue(t, time.Hour, "legacy.example.com"), nil)
	wantKind(t, "Put over a foreign certificate", e.add(err), ErrRefused)
	if srv.Fault().Count("certificatemanager:UpdateCertificate") != 0 {
		t.Fatal("updated a foreign certificate")
	}
	// Ids and labels Certificate Manager cannot hold: refused before any call.
	calls := srv.Fault().Count("*")
	b := kf.issue(t, time.Hour, "x.svc.example.com")
	for _, tc := range []struct {
		name string
		tags map[string]string
	}{
		{"Upper-Case", nil},
		{"ok", map[string]string{"Env": "x"}},
		{"ok", map[string]string{"env": "Has Spaces"}},
	} {
		_, err := tgt.Put(tctx(t), tc.name, b, tc.tags)
		wantKind(t, "id/labels", e.add(err), ErrRefused)
	}
	if srv.Fault().Count("*") != calls {
		t.Fatal("calls made for ids or labels Certificate Manager cannot hold")
	}
	if _, err := NewCertManagerTarget("gcp", c, "projects/x"); err == nil {
		t.Fatal("a bad parent was accepted")
	}
	// CertID maps spec names onto valid ids.
	tgt.CertID = func(n string) string { return "kf-" + strings.ToLower(strings.ReplaceAll(n, "_", "-")) }
	m, err := tgt.Put(tctx(t), "api_v2", b, nil)
	if err != nil || m.ID != cmParent+"/certificates/kf-api-v2" {
		t.Fatalf("mapped id %s: %v", m.ID, e.add(err))
	}
	// A spec name that is no valid label value cannot carry the mark: refused.
	_, err = tgt.Put(tctx(t), "API", b, nil)
	wantKind(t, "spec name not a label value", e.add(err), ErrRefused)
	e.checkNoKeys(t, b)
}
