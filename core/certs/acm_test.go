package certs

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	"github.com/aws/aws-sdk-go-v2/service/acm/types"

	"github.com/keyferry/keyferry/localtest/fault"
	"github.com/keyferry/keyferry/localtest/moto"
)

// acmEnv is an ACM client talking to moto through a fault layer that counts the calls.
func acmEnv(t *testing.T) (*acm.Client, *fault.Layer) {
	t.Helper()
	srv := devMoto(t)
	layer := fault.New(1, 11)
	p, err := layer.Proxy(fault.AWS, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return acm.NewFromConfig(moto.Config(p.URL)), layer
}

func readACMTags(t *testing.T, c *acm.Client, arn string) map[string]string {
	t.Helper()
	out, err := c.ListTagsForCertificate(tctx(t), &acm.ListTagsForCertificateInput{CertificateArn: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, tg := range out.Tags {
		m[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	return m
}

// tagged lists the ARNs carrying keyferry-cert=name.
func tagged(t *testing.T, c *acm.Client, name string) []string {
	t.Helper()
	out, err := c.ListCertificates(tctx(t), &acm.ListCertificatesInput{Includes: &types.Filters{KeyTypes: allKeyTypes}})
	if err != nil {
		t.Fatal(err)
	}
	var arns []string
	for _, s := range out.CertificateSummaryList {
		if readACMTags(t, c, aws.ToString(s.CertificateArn))[TagKey] == name {
			arns = append(arns, aws.ToString(s.CertificateArn))
		}
	}
	return arns
}

func TestACMTarget(t *testing.T) {
	c, layer := acmEnv(t)
	tgt := NewACMTarget("aws-edge", c)
	r := runSuite(t, tgt, "edge-tls", func() int64 { return layer.Count("acm:*") })
	if !strings.HasPrefix(r.first.ID, "arn:aws:acm:") || r.renewed.ID != r.first.ID {
		t.Fatalf("renewal changed the ARN: %s then %s", r.first.ID, r.renewed.ID)
	}
	arn := r.first.ID
	if got := tagged(t, c, "edge-tls"); len(got) != 1 || got[0] != arn {
		t.Fatalf("certificates tagged edge-tls: %v, want just %s", got, arn)
	}
	if tags := readACMTags(t, c, arn); tags[TagKey] != "edge-tls" || tags["env"] != "test" {
		t.Fatalf("tags after re-imports: %v", tags)
	}
	d, err := c.DescribeCertificate(tctx(t), &acm.DescribeCertificateInput{CertificateArn: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	cur, _, err := tgt.Current(tctx(t), "edge-tls")
	if err != nil {
		t.Fatal(err)
	}
	if d.Certificate.Type != types.CertificateTypeImported || !aws.ToTime(d.Certificate.NotAfter).Equal(cur.NotAfter) {
		t.Fatalf("DescribeCertificate: type %s, NotAfter %v, want %v", d.Certificate.Type, aws.ToTime(d.Certificate.NotAfter), cur.NotAfter)
	}
	g, err := c.GetCertificate(tctx(t), &acm.GetCertificateInput{CertificateArn: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(aws.ToString(g.CertificateChain), "BEGIN CERTIFICATE") < 2 {
		t.Fatal("the chain (intermediate and root) was not imported")
	}

	// A fresh target (another process) finds the certificate by its tag and re-imports onto it.
	fresh := NewACMTarget("aws-edge", c)
	kf, _ := cas(t)
	b := kf.issue(t, 96*time.Hour, "app.svc.example.com")
	before := layer.Count("acm:ListCertificates")
	m, err := fresh.Put(tctx(t), "edge-tls", b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != arn || fresh.ARN("edge-tls") != arn || layer.Count("acm:ListCertificates") != before+1 {
		t.Fatalf("fresh target: ARN %s (want %s), %d listings", m.ID, arn, layer.Count("acm:ListCertificates")-before)
	}
	if _, meta, err := fresh.Current(tctx(t), "edge-tls"); err != nil || meta.ID != arn || !meta.NotAfter.Equal(b.NotAfter) {
		t.Fatalf("fresh Current: %+v %v", meta, err)
	}
	if layer.Count("acm:ListCertificates") != before+1 {
		t.Fatal("the ARN was not remembered")
	}
	if got := tagged(t, c, "edge-tls"); len(got) != 1 {
		t.Fatalf("%d certificates tagged edge-tls after a fresh target's renewal", len(got))
	}
}

func TestACMForeignAndAmbiguous(t *testing.T) {
	c, _ := acmEnv(t)
	kf, other := cas(t)
	ctx := tctx(t)
	e := &errs{}

	// A certificate imported by someone else, without keyferry's tag, is never found by the tag...
	ob := other.issue(t, 24*time.Hour, "shop.example.com")
	p, err := Check(ob, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	imp, err := c.ImportCertificate(ctx, &acm.ImportCertificateInput{Certificate: p.LeafPEM, PrivateKey: p.KeyPEM, CertificateChain: p.ChainPEM})
	if err != nil {
		t.Fatal(err)
	}
	foreignARN := aws.ToString(imp.CertificateArn)
	tgt := NewACMTarget("aws", c)
	_, _, err = tgt.Current(ctx, "shop")
	wantKind(t, "Current of an untagged certificate", e.add(err), ErrNotFound)
	// ...and a Put for the same name imports a new certificate instead of overwriting it.
	m, err := tgt.Put(ctx, "shop", kf.issue(t, 24*time.Hour, "shop.example.com"), nil)
	if err != nil {
		t.Fatal(e.add(err))
	}
	if m.ID == foreignARN {
		t.Fatal("keyferry re-imported over someone else's certificate")
	}
	// Remembering the foreign ARN shows it as not managed: NeedsRenewal leaves it alone.
	tgt2 := NewACMTarget("aws", c)
	tgt2.Remember("shop-legacy", foreignARN)
	cert, meta, err := tgt2.Current(ctx, "shop-legacy")
	if err != nil || meta.Managed || meta.ID != foreignARN || !cert.Equal(p.Leaf) {
		t.Fatalf("Current of a remembered foreign ARN: %+v %v", meta, e.add(err))
	}
	if due, why, err := NeedsRenewal(ctx, tgt2, "shop-legacy", 0, time.Now()); err != nil || due || why != ReasonNotManaged {
		t.Fatalf("NeedsRenewal of a foreign certificate: %v %q %v", due, why, err)
	}

	// Two certificates carrying the same mark: refused, not guessed.
	for range 2 {
		bb, err := Check(kf.issue(t, time.Hour, "dup.svc.example.com"), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ImportCertificate(ctx, &acm.ImportCertificateInput{Certificate: bb.LeafPEM, PrivateKey: bb.KeyPEM,
			CertificateChain: bb.ChainPEM, Tags: []types.Tag{{Key: aws.String(TagKey), Value: aws.String("dup")}}}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = NewACMTarget("aws", c).Put(ctx, "dup", kf.issue(t, time.Hour, "dup.svc.example.com"), nil)
	wantKind(t, "Put with two tagged certificates", e.add(err), ErrRefused)
	if !strings.Contains(err.Error(), "2 ACM certificates carry") {
		t.Fatalf("ambiguity: %v", err)
	}

	// A remembered ARN deleted out of band: Put imports afresh.
	gone := NewACMTarget("aws", c)
	gone.Remember("gone", "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000")
	m, err = gone.Put(ctx, "gone", kf.issue(t, time.Hour, "gone.svc.example.com"), nil)
	if err != nil {
		t.Fatal(e.add(err))
	}
	if strings.HasSuffix(m.ID, "00000000-0000-0000-0000-000000000000") || readACMTags(t, c, m.ID)[TagKey] != "gone" {
		t.Fatalf("after a deleted ARN: %s", m.ID)
	}

	// ACM's tag rules are applied before any call.
	_, err = tgt.Put(ctx, "shop", kf.issue(t, time.Hour, "shop.example.com"), map[string]string{"aws:owner": "x"})
	wantKind(t, "reserved tag", e.add(err), ErrRefused)
	e.checkNoKeys(t)
}
