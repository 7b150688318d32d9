package inventory

import (
	"context"
	"slices"
	"testing"
	"time"

	certificatemanager "cloud.google.com/go/certificatemanager/apiv1"
	"cloud.google.com/go/certificatemanager/apiv1/certificatemanagerpb"

	"github.com/keyferry/keyferry/localtest/gcpcert"
)

func TestCertificateManagerSource(t *testing.T) {
	srv, err := gcpcert.Start(gcpcert.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	c, err := certificatemanager.NewClient(context.Background(), srv.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })

	const parent = "projects/kf-inv/locations/global"
	p := newTestPKI(t, "gcp")
	create := func(id string, chain, key []byte, labels map[string]string) {
		t.Helper()
		op, err := c.CreateCertificate(tctx(t), &certificatemanagerpb.CreateCertificateRequest{
			Parent: parent, CertificateId: id,
			Certificate: &certificatemanagerpb.Certificate{Labels: labels, Type: &certificatemanagerpb.Certificate_SelfManaged{
				SelfManaged: &certificatemanagerpb.Certificate_SelfManagedCertificate{PemCertificate: string(chain), PemPrivateKey: string(key)}}},
		})
		if err != nil {
			t.Fatalf("CreateCertificate(%s): %v", id, err)
		}
		if _, err := op.Wait(tctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	web := p.issue(t, "web.example.test", "ec-p256", 100*24*time.Hour)
	create("web", append(web.CertPEM, web.ChainPEM...), web.KeyPEM, map[string]string{ManagedTag: "web", "env": "prod"})
	old := p.issue(t, "old.example.test", "rsa-2048", 3*24*time.Hour)
	create("old", old.CertPEM, old.KeyPEM, nil) // leaf only
	// Another location is not scanned.
	other := p.issue(t, "other.example.test", "ec-p256", 24*time.Hour)
	op, err := c.CreateCertificate(tctx(t), &certificatemanagerpb.CreateCertificateRequest{Parent: "projects/kf-inv/locations/europe-west1",
		CertificateId: "other", Certificate: &certificatemanagerpb.Certificate{Type: &certificatemanagerpb.Certificate_SelfManaged{
			SelfManaged: &certificatemanagerpb.Certificate_SelfManagedCertificate{PemCertificate: string(other.CertPEM), PemPrivateKey: string(other.KeyPEM)}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.Wait(tctx(t)); err != nil {
		t.Fatal(err)
	}

	entries, err := Collect(tctx(t), Options{Roots: p.roots()}, CertificateManagerSource{Client: c, Parent: parent})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("%d entries: %+v", len(entries), entries)
	}
	got := byName(entries)
	w, o := got["web"], got["old"]
	if w.Cloud != "gcp" || w.Location != parent || !w.Managed || w.Subject != "CN=web.example.test" || w.KeyType != "ec-p256" ||
		w.Serial != web.Serial || len(w.Findings) != 0 {
		t.Errorf("web: %+v", w)
	}
	// old was uploaded without its chain, so it does not chain to the root on its own.
	if o.Managed || o.KeyType != "rsa-2048" || !slices.Equal(kinds(o), []string{KindExpiring7, KindUntrustedChain}) {
		t.Errorf("old: %+v", o)
	}

	// A failing source (a bad parent) does not stop the others.
	entries, err = Collect(tctx(t), Options{}, CertificateManagerSource{Client: c, Parent: "projects/kf-inv"}, CertificateManagerSource{Client: c, Parent: parent})
	if len(entries) != 2 || err == nil {
		t.Fatalf("entries %d, err %v", len(entries), err)
	}
	if want := "source gcp-certificatemanager projects/kf-inv: ListCertificates"; !contains(err.Error(), want) {
		t.Fatalf("error %v, want %q", err, want)
	}
}
